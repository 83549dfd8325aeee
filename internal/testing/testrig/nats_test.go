package testrig_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/testing/testrig"
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

func TestNATSProcess_KeepsStreamAcrossKill(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	node, err := testrig.StartNATSProcess(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { node.Stop() })

	publish := func() {
		nc, err := nats.Connect(node.URL)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatalf("jetstream: %v", err)
		}
		s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "KEEP", Subjects: []string{"keep.>"}})
		if err != nil {
			t.Fatalf("create stream: %v", err)
		}
		if _, err := js.Publish(ctx, "keep.a", []byte("x")); err != nil {
			t.Fatalf("publish: %v", err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatalf("info: %v", err)
		}
		if info.State.Msgs == 0 {
			t.Fatal("stream empty after publish")
		}
	}
	publish()
	if err := node.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	if err := node.Start(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	nc, err := nats.Connect(node.URL)
	if err != nil {
		t.Fatalf("reconnect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	s, err := js.Stream(ctx, "KEEP")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("info after restart: %v", err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("after kill and restart: %d messages, want 1", info.State.Msgs)
	}
}
