package cdc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestJetStreamStarting(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"no responders, wrapped", live, fmt.Errorf("read META system_id: %w", nats.ErrNoResponders), true},
		{"request timeout", live, nats.ErrTimeout, true},
		{"cluster not available (503)", live, &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{"bad request (400)", live, &jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use"}, false},
		{"system id changed", live, ErrSystemIDChanged, false},
		{"capture stopping", cancelled, nats.ErrNoResponders, false},
		{"other", live, errors.New("permission denied"), false},
	}
	for _, c := range cases {
		if got := jetStreamStarting(c.ctx, c.err); got != c.want {
			t.Errorf("%s: jetStreamStarting(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
