package cdc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// fakeBatch is a jetstreamext.FastPublisher whose answers the test sets.
type fakeBatch struct {
	seq     uint64
	acked   uint64       // AckSequence returned by the next AddMsg
	addErr  error        // returned by the next AddMsg
	closeFn func() error // Close's outcome
	added   []*nats.Msg  // every message added
	closed  bool
}

func (f *fakeBatch) Add(string, []byte, ...jetstreamext.BatchMsgOpt) (*jetstreamext.FastPubAck, error) {
	panic("unused")
}

func (f *fakeBatch) AddMsg(m *nats.Msg, _ ...jetstreamext.BatchMsgOpt) (*jetstreamext.FastPubAck, error) {
	if err := f.addErr; err != nil {
		f.addErr = nil
		return nil, err
	}
	f.seq++
	f.added = append(f.added, m)
	return &jetstreamext.FastPubAck{BatchSequence: f.seq, AckSequence: f.acked}, nil
}

func (f *fakeBatch) Commit(context.Context, string, []byte, ...jetstreamext.BatchMsgOpt) (*jetstreamext.BatchAck, error) {
	panic("unused")
}

func (f *fakeBatch) CommitMsg(context.Context, *nats.Msg, ...jetstreamext.BatchMsgOpt) (*jetstreamext.BatchAck, error) {
	panic("unused")
}

func (f *fakeBatch) Close(context.Context) (*jetstreamext.BatchAck, error) {
	f.closed = true
	if f.closeFn != nil {
		if err := f.closeFn(); err != nil {
			return nil, err
		}
	}
	return &jetstreamext.BatchAck{}, nil
}

func (f *fakeBatch) IsClosed() bool { return f.closed }

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// outcome reports a future's state without blocking: "ok", "err: …" or "open".
func outcome(f jetstream.PubAckFuture) string {
	select {
	case <-f.Ok():
		return "ok"
	case err := <-f.Err():
		return "err: " + err.Error()
	default:
		return "open"
	}
}

// TestBatchSender_Futures: flow acks resolve futures in batch order; an
// error of the batch, reported by AddMsg or by the server's error message,
// fails every unacknowledged message (stored or not is unknown) and the
// next message starts a new batch; Settle ends the batch and acknowledges
// its tail.
func TestBatchSender_Futures(t *testing.T) {
	var batches []*fakeBatch
	b := newBatchSender(nil, time.Second, quietLog())
	b.newBatch = func() (jetstreamext.FastPublisher, error) {
		fb := &fakeBatch{}
		batches = append(batches, fb)
		return fb, nil
	}
	send := func(n int) jetstream.PubAckFuture {
		t.Helper()
		f, err := b.PublishMsgAsync(testMsg(n, 8))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	f1, f2 := send(1), send(2)
	batches[0].acked = 2 // the server has acknowledged 1 and 2 by the time 3 goes out
	f3 := send(3)
	if got := []string{outcome(f1), outcome(f2), outcome(f3)}; fmt.Sprint(got) != "[ok ok open]" {
		t.Fatalf("after a flow ack up to 2: %v", got)
	}
	if open, _ := b.Unsettled(); !open {
		t.Fatal("message 3 unacknowledged, Unsettled says none")
	}
	b.Settle(context.Background())
	if outcome(f3) != "ok" || !batches[0].closed {
		t.Fatalf("Settle: future 3 %s, batch closed %v", outcome(f3), batches[0].closed)
	}

	// A new batch; the server reports a gap for it.
	f4 := send(4)
	if len(batches) != 2 {
		t.Fatalf("%d batches, want a new one after Settle", len(batches))
	}
	b.onError(errors.New("gap detected"))
	f5 := send(5)
	if !strings.Contains(outcome(f4), "gap detected") {
		t.Fatalf("future 4 after the server's error: %s", outcome(f4))
	}
	if len(batches) != 3 || outcome(f5) != "open" {
		t.Fatalf("message 5 should start batch 3: %d batches, future 5 %s", len(batches), outcome(f5))
	}

	// AddMsg fails (ack timeout): the message itself and the open ones fail.
	batches[2].addErr = errors.New("ack timeout")
	f6 := send(6)
	if !strings.Contains(outcome(f5), "ack timeout") || !strings.Contains(outcome(f6), "ack timeout") {
		t.Fatalf("after AddMsg failed: future 5 %s, future 6 %s", outcome(f5), outcome(f6))
	}

	// Close fails: the tail fails, nothing is acknowledged.
	f7 := send(7)
	batches[3].closeFn = func() error { return errors.New("commit timeout") }
	b.Settle(context.Background())
	if !strings.Contains(outcome(f7), "commit timeout") {
		t.Fatalf("future 7 after a failed Settle: %s", outcome(f7))
	}
	if open, _ := b.Unsettled(); open {
		t.Fatal("failed messages still counted as open")
	}
}

// routeJS records which path a publish took and acknowledges at once.
type routeJS struct {
	name string
	log  *[]string
}

func (r routeJS) PublishMsgAsync(m *nats.Msg, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	*r.log = append(*r.log, r.name+":"+m.Subject)
	f := newFakeFuture(m)
	f.ok <- &jetstream.PubAck{}
	return f, nil
}

// TestPublisher_BatchRouting: with batches, the items the stream may hold
// already (at or below the stream's last item when the session started)
// and every re-send go on the direct path, new items into the batch.
func TestPublisher_BatchRouting(t *testing.T) {
	var sent []string
	h := newPubHarness(t, pubConfig(), 0)
	h.p.useBatches(nil, routeJS{"direct", &sent}, 100)
	h.p.js = routeJS{"batch", &sent}
	for _, c := range []struct {
		pos event.Position
		n   int
	}{{90, 1}, {100, 2}, {101, 3}} {
		h.p.beginItem(c.pos)
		if err := h.p.Publish(h.ctx, testMsg(c.n, 8), &mark{pos: c.pos}, true); err != nil {
			t.Fatal(err)
		}
	}
	// A re-send of an item above directUntil.
	e := &inflight{msg: testMsg(4, 8), pos: 200, attempts: 1}
	h.p.send(e)
	want := "[direct:test.events.1 direct:test.events.2 batch:test.events.3 direct:test.events.4]"
	if fmt.Sprint(sent) != want {
		t.Errorf("paths %v, want %v", sent, want)
	}
}

// TestFastBatch_ServerDuplicates pins what the pinned nats-server does
// with Nats-Msg-Id in a fast-ingest batch (docs/feed.md, "Batches"): a
// duplicate is skipped wherever it is in the batch, the first message
// included, the stream keeps one copy and the batch goes on, and every
// message is acknowledged. Capture still sends what the stream may hold
// on the direct path (publisher.send): nats-server's source treats a
// duplicate first message as the end of the batch in some versions, and
// the direct path does not depend on it.
func TestFastBatch_ServerDuplicates(t *testing.T) {
	node := testrig.StartNATS(t)
	nc, err := nats.Connect(node.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg := Defaults()
	cfg.Stream, cfg.SubjectPrefix = "BATCHDUP", "test"
	sc := StreamConfig(cfg)
	if !sc.AllowBatchPublish {
		t.Fatal("capture's stream does not allow fast batches")
	}
	st, err := js.CreateStream(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	b := newBatchSender(js, 5*time.Second, quietLog())
	var futs []jetstream.PubAckFuture
	for n := range 250 {
		f, err := b.PublishMsgAsync(testMsg(n, 32))
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
	}
	// Message 10 again, inside the batch.
	f, err := b.PublishMsgAsync(testMsg(10, 32))
	if err != nil {
		t.Fatal(err)
	}
	futs = append(futs, f)
	b.Settle(ctx)
	for i, f := range futs {
		if o := outcome(f); o != "ok" {
			t.Fatalf("future %d: %s", i, o)
		}
	}
	if n := msgs(t, st); n != 250 {
		t.Fatalf("stream holds %d messages, want 250 (the duplicate inside the batch skipped)", n)
	}

	// A batch starting with a duplicate, then new messages and another
	// duplicate.
	b2 := newBatchSender(js, 2*time.Second, quietLog())
	var futs2 []jetstream.PubAckFuture
	for _, n := range []int{3, 300, 301, 5, 302} {
		f, err := b2.PublishMsgAsync(testMsg(n, 32))
		if err != nil {
			t.Fatal(err)
		}
		futs2 = append(futs2, f)
	}
	b2.Settle(ctx)
	var got []string
	for _, f := range futs2 {
		got = append(got, outcome(f))
	}
	if fmt.Sprint(got) != "[ok ok ok ok ok]" || msgs(t, st) != 253 {
		t.Errorf("duplicate-first batch: futures %v, stream %d messages; want all ok and 253 (3 new)", got, msgs(t, st))
	}
}

func msgs(t *testing.T, st jetstream.Stream) uint64 {
	t.Helper()
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
