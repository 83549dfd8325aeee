package testrig_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/testrig"
)

func TestNATS_PublishDeduplicatesByMsgID(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := testrig.StartNATS(t)

	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DEDUP", Subjects: []string{"dedup.>"}})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	for i, wantDup := range []bool{false, true} {
		ack, err := js.Publish(ctx, "dedup.a", []byte("payload"), jetstream.WithMsgID("msg-1"))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if ack.Duplicate != wantDup {
			t.Fatalf("publish %d: duplicate = %v, want %v", i, ack.Duplicate, wantDup)
		}
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1", info.State.Msgs)
	}
}
