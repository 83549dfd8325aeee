package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func newCmd(got *map[string]string) *cobra.Command {
	c := &cobra.Command{Use: "x", RunE: func(c *cobra.Command, _ []string) error {
		m := map[string]string{}
		for _, n := range []string{"nats-url", "level", "tables"} {
			f := c.Flags().Lookup(n)
			m[n] = f.Value.String()
		}
		*got = m
		return nil
	}}
	AddConfigFlag(c)
	c.Flags().String("nats-url", "nats://default", "")
	c.Flags().String("level", "info", "")
	c.Flags().StringSlice("tables", []string{"public.a"}, "")
	c.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		return ApplyConfig(c, "TM_TEST_", map[string]string{"NATS_URL": "nats-url"})
	}
	return c
}

func TestApplyConfig_Precedence(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("level: debug\nnats-url: nats://file\ntables: [public.x, public.y]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	run := func(args ...string) {
		c := newCmd(&got)
		c.SetArgs(args)
		if err := c.Execute(); err != nil {
			t.Fatal(err)
		}
	}
	run("--config", cfg)
	if got["level"] != "debug" || got["nats-url"] != "nats://file" || got["tables"] != "[public.x,public.y]" {
		t.Fatalf("file values not applied: %v", got)
	}
	t.Setenv("NATS_URL", "nats://alias")
	run("--config", cfg)
	if got["nats-url"] != "nats://alias" {
		t.Fatalf("alias env should beat file: %v", got)
	}
	t.Setenv("TM_TEST_NATS_URL", "nats://env")
	run("--config", cfg)
	if got["nats-url"] != "nats://env" {
		t.Fatalf("prefixed env should beat alias: %v", got)
	}
	run("--config", cfg, "--nats-url", "nats://flag")
	if got["nats-url"] != "nats://flag" {
		t.Fatalf("flag should win: %v", got)
	}
}

func TestReport_CodesAndHints(t *testing.T) {
	var buf bytes.Buffer
	if code := Report(&buf, WithCode(ExitOutOfWindow, errors.New("too late"), "restorer list"), false); code != ExitOutOfWindow {
		t.Fatalf("code = %d", code)
	}
	if !strings.Contains(buf.String(), "error: too late\nTry: restorer list\n") {
		t.Fatalf("output = %q", buf.String())
	}
	if code := Report(io.Discard, context.Canceled, true); code != ExitInterrupted {
		t.Fatalf("interrupted code = %d", code)
	}
	if code := Report(io.Discard, errors.New("x"), false); code != ExitFailure {
		t.Fatalf("plain code = %d", code)
	}
}

func TestOps_Endpoints(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := make(chan string, 1)
	ready := errors.New("replication not started")
	o := &Ops{Addr: "127.0.0.1:0", Ready: func() error { return ready }, Listening: func(a string) { addr <- a }}
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	base := "http://" + <-addr
	get := func(p string) (int, string) {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/livez"); code != 200 {
		t.Fatalf("livez = %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "replication not started") {
		t.Fatalf("readyz = %d %q", code, body)
	}
	ready = nil
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz when ready = %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics = %d", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ops server did not stop")
	}
}
