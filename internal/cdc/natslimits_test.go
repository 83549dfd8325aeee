package cdc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// TestCapture_NATSLimitsCheckedAtStart: settings that would stop capture
// later, with the slot holding WAL, stop it at start instead, with an
// error naming the setting.
func TestCapture_NATSLimitsCheckedAtStart(t *testing.T) {
	e := newEnv(t, nil)
	for _, c := range []struct {
		name     string
		conf     []string
		maxBytes int64
		want     string
	}{{
		name: "max_payload below what capture needs",
		conf: []string{"max_payload: 16384"},
		want: "max_payload",
	}, {
		name:     "stream larger than the account's storage",
		conf:     []string{`accounts { TM { jetstream { max_file: 10MB, max_mem: 1MB }, users [{user: tm, password: tm}] } }`, "no_auth_user: tm"},
		maxBytes: 100 << 20,
		want:     "max_file",
	}, {
		name: "account without file storage",
		conf: []string{`accounts { TM { jetstream { max_file: 0, max_mem: 1MB }, users [{user: tm, password: tm}] } }`, "no_auth_user: tm"},
		want: "max_file",
	}} {
		t.Run(c.name, func(t *testing.T) {
			node, err := testrig.StartNATSProcess(context.Background(), t.TempDir(), testrig.WithNATSConfig(c.conf...))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = node.Stop() })
			cfg := e.config()
			cfg.NATSURL = node.URL
			if c.maxBytes != 0 {
				cfg.MaxBytes = c.maxBytes
			}
			_, done := e.run(cfg)
			select {
			case err := <-done:
				var fe *FatalError
				if !errors.As(err, &fe) || !strings.Contains(fe.Hint, c.want) {
					t.Fatalf("capture stopped with %v; want a fatal error whose hint names %s", err, c.want)
				}
				t.Logf("%v (Try: %s)", err, fe.Hint)
			case <-time.After(60 * time.Second):
				t.Fatal("capture started")
			}
		})
	}
}

// TestLimitHint: publish errors caused by a JetStream limit are explained
// in capture's retry warning, naming the setting; others get no hint.
func TestLimitHint(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&jetstream.APIError{ErrorCode: 10047, Description: "insufficient storage resources available"}, "max_file_store"},
		{&jetstream.APIError{ErrorCode: 10023, Description: "insufficient resources"}, "max_file_store"},
		{&jetstream.APIError{ErrorCode: 10002, Description: "resource limits exceeded for account"}, "account"},
		{errors.New("nats: maximum bytes exceeded"), "--max-bytes"},
		{fmt.Errorf("publish: %w", nats.ErrMaxPayload), "max_payload"},
		{jetstream.ErrAsyncPublishTimeout, ""},
	} {
		if got := limitHint(c.err); c.want == "" && got != "" || !strings.Contains(got, c.want) {
			t.Errorf("limitHint(%v) = %q, want one naming %q", c.err, got, c.want)
		}
	}
}
