package archive

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark/tidemark/internal/archive/archivetest"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// ackRecorder collects the acknowledgements published on "ack.>".
func ackRecorder(t *testing.T) (*nats.Conn, func() []string) {
	t.Helper()
	srv := testrig.StartNATS(t)
	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync("ack.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return nc, func() []string {
		t.Helper()
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			m, err := sub.NextMsg(100 * time.Millisecond)
			if errors.Is(err, nats.ErrTimeout) {
				return got
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, m.Subject)
		}
	}
}

// TestCumulativeAcks_FloorOnlyOverSettled checks that the acknowledgement
// never passes a message that is not settled: only the contiguous run
// above the floor is acknowledged, once, by its last message.
func TestCumulativeAcks_FloorOnlyOverSettled(t *testing.T) {
	nc, acks := ackRecorder(t)
	c := newCumulativeAcks(nc, 10, time.Now())
	reply := func(seq int) string { return "ack." + string(rune('a'+seq-10)) }

	c.settle(12, reply(12), 0)
	c.settle(13, reply(13), 0)
	if err := c.send(); err != nil {
		t.Fatal(err)
	}
	if got := acks(); len(got) != 0 {
		t.Fatalf("acknowledged %v while 11 is not settled", got)
	}
	c.settle(11, reply(11), 0)
	c.settle(9, "ack.below", 0)      // at or below the floor: ignored
	c.settle(12, "ack.duplicate", 0) // settled twice: harmless
	if err := c.send(); err != nil {
		t.Fatal(err)
	}
	if err := c.send(); err != nil { // nothing new
		t.Fatal(err)
	}
	if got := acks(); len(got) != 1 || got[0] != reply(13) {
		t.Fatalf("acknowledgements %v, want one of 13 (%s)", got, reply(13))
	}
	if c.floor != 13 || len(c.settled) != 0 {
		t.Fatalf("floor %d with %d settled above it, want 13 and none", c.floor, len(c.settled))
	}
}

// TestCumulativeAcks_Gone checks the ways the floor moves over messages
// it will never see: deleted from the stream, below the stream's first
// sequence, or acknowledged by another writer.
func TestCumulativeAcks_Gone(t *testing.T) {
	nc, acks := ackRecorder(t)
	c := newCumulativeAcks(nc, 10, time.Now())
	c.settle(12, "ack.12", 0)
	c.gone(0, 1, []uint64{11})
	if c.floor != 12 {
		t.Fatalf("floor %d after 11 was deleted, want 12", c.floor)
	}
	c.settle(20, "ack.20", 0)
	c.gone(18, 1, nil) // another writer acknowledged up to 18
	if c.floor != 18 {
		t.Fatalf("floor %d after the consumer's floor rose to 18, want 18", c.floor)
	}
	c.gone(0, 20, nil) // the stream starts at 20 now
	if c.floor != 20 {
		t.Fatalf("floor %d when the stream starts at 20 and 20 is settled, want 20", c.floor)
	}
	c.settle(22, "ack.22", 0)
	c.gone(0, 1, []uint64{23}) // a deleted message above a missing one moves nothing
	if c.floor != 20 {
		t.Fatalf("floor %d moved past the missing 21", c.floor)
	}
	if err := c.send(); err != nil {
		t.Fatal(err)
	}
	if got := acks(); len(got) != 1 || got[0] != "ack.20" {
		t.Fatalf("acknowledgements %v, want ack.20", got)
	}
}

// TestCumulativeAcks_NewGenDropsOldReplies checks that after a consumer
// reset no acknowledgement carries a reply of an earlier delivery (its
// delivery sequence predates the reset), and that the check notices an
// acknowledgement the server did not apply.
func TestCumulativeAcks_NewGenDropsOldReplies(t *testing.T) {
	nc, acks := ackRecorder(t)
	c := newCumulativeAcks(nc, 10, time.Now())
	c.settle(12, "ack.old12", 0)
	c.newGen()
	c.settle(11, "ack.old11", 0) // delivered before the reset, settled after it
	if err := c.send(); err != nil {
		t.Fatal(err)
	}
	if got := acks(); len(got) != 0 {
		t.Fatalf("acknowledged %v with replies from before the reset", got)
	}
	c.settle(10, "ack.new10", c.generation()) // a redelivery below the floor carries it
	if err := c.send(); err != nil {
		t.Fatal(err)
	}
	if got := acks(); len(got) != 1 || got[0] != "ack.new10" {
		t.Fatalf("acknowledgements %v after a fresh delivery at the floor, want ack.new10", got)
	}
	c.settle(13, "ack.new13", c.generation())
	if err := c.send(); err != nil {
		t.Fatal(err)
	}
	if got := acks(); len(got) != 1 || got[0] != "ack.new13" || c.floor != 13 {
		t.Fatalf("acknowledgements %v with floor %d, want ack.new13 at 13", got, c.floor)
	}

	if c.ignored(0) {
		t.Fatal("ignored before a check had seen the acknowledgement")
	}
	if !c.ignored(12) {
		t.Fatal("a consumer floor of 12 a check after acknowledging 13 was not noticed")
	}
	if c.ignored(13) {
		t.Fatal("an applied acknowledgement reported as ignored")
	}
}

// consumerState returns the archiver consumer's ack floor and pending count.
func consumerState(t *testing.T, js jetstream.JetStream) (floor uint64, pending int, policy jetstream.AckPolicy) {
	t.Helper()
	c, err := js.Consumer(context.Background(), testStream, DefaultConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info := c.CachedInfo()
	return info.AckFloor.Stream, info.NumAckPending, info.Config.AckPolicy
}

// waitAllAcknowledged waits until the consumer's ack floor is the
// stream's last sequence with nothing pending.
func waitAllAcknowledged(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	end := lastSeq(t, js)
	testkit.WaitFor(t, 15*time.Second, "ack floor at the stream's end", func() bool {
		floor, pending, _ := consumerState(t, js)
		return floor == end && pending == 0
	})
}

// lastSeq returns the stream's last sequence.
func lastSeq(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), testStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// TestArchiver_Run_CumulativeAcksPassDeletedMessage deletes an item's
// message from the stream before the archiver reads it: the archive gets
// the item from capture's re-send, and the acknowledgement floor moves
// past the deleted sequence to the stream's end.
func TestArchiver_Run_CumulativeAcksPassDeletedMessage(t *testing.T) {
	srv := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, srv.URL, testStream)
	store := fileStore(t)
	items := workload(f, 12)
	const gap = 4
	f.Publish(t, false, items[:gap]...)
	before := lastSeq(t, f.JS)
	f.Publish(t, false, items[gap])
	st, err := f.JS.Stream(context.Background(), testStream)
	if err != nil {
		t.Fatal(err)
	}
	for seq := before + 1; seq <= lastSeq(t, f.JS); seq++ {
		if err := st.DeleteMsg(context.Background(), seq); err != nil {
			t.Fatal(err)
		}
	}
	f.Publish(t, false, items[gap+1:]...)

	start(t, f, store, nil, testConfig("a1"))
	testkit.WaitFor(t, 15*time.Second, "chain hole", func() bool { return testutil.ToFloat64(chainHole) == 1 })
	f.Publish(t, true, items[gap]) // capture's re-send after the rewind request
	archivetest.WaitWatermark(t, store, last(items), 20*time.Second)
	archivetest.Load(t, store, nil).Check(t, archivetest.EventIDs(items...))
	waitAllAcknowledged(t, f.JS)
	if _, _, p := consumerState(t, f.JS); p != jetstream.AckAllPolicy {
		t.Fatalf("new consumer has ack policy %s, want all", p)
	}
}

// TestArchiver_Run_UndecodableMessageTerminated publishes a message whose
// body does not decode: after a few deliveries it is terminated, the item
// comes from the re-send, and later acknowledgements are not held back.
func TestArchiver_Run_UndecodableMessageTerminated(t *testing.T) {
	old := decodeRetryDelay
	decodeRetryDelay = 100 * time.Millisecond
	t.Cleanup(func() { decodeRetryDelay = old })
	srv := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, srv.URL, testStream)
	store := fileStore(t)
	terminated := testutil.ToFloat64(undecodableTerminatedTotal)
	start(t, f, store, nil, testConfig("a1"))

	items := workload(f, 12)
	const bad = 3
	f.Publish(t, false, items[:bad]...)
	for _, m := range f.Messages(items[bad]) {
		m.Data = []byte("{not json")
		if _, err := f.JS.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	f.Publish(t, false, items[bad+1:]...)
	testkit.WaitFor(t, 15*time.Second, "undecodable message terminated", func() bool {
		return testutil.ToFloat64(undecodableTerminatedTotal) > terminated
	})
	f.Publish(t, true, items[bad]) // capture's re-send after the rewind request
	archivetest.WaitWatermark(t, store, last(items), 20*time.Second)
	archivetest.Load(t, store, nil).Check(t, archivetest.EventIDs(items...))
	waitAllAcknowledged(t, f.JS)
}

// TestArchiver_Run_KeepsPerMessageConsumer starts on a consumer an earlier
// version created (explicit acknowledgements): the archiver keeps its
// policy, since nats-server cannot change it, and acknowledges every
// message.
func TestArchiver_Run_KeepsPerMessageConsumer(t *testing.T) {
	srv := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, srv.URL, testStream)
	store := fileStore(t)
	cfg := testConfig("a1")
	a, err := New(cfg, Deps{JetStream: f.JS, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	legacy := a.consumerConfig()
	legacy.AckPolicy = jetstream.AckExplicitPolicy
	if _, err := f.JS.CreateConsumer(context.Background(), testStream, legacy); err != nil {
		t.Fatal(err)
	}
	start(t, f, store, nil, cfg)
	items := workload(f, 30)
	f.Publish(t, false, items...)
	archivetest.WaitWatermark(t, store, last(items), 20*time.Second)
	archivetest.Load(t, store, nil).Check(t, archivetest.EventIDs(items...))
	waitAllAcknowledged(t, f.JS)
	if _, _, p := consumerState(t, f.JS); p != jetstream.AckExplicitPolicy {
		t.Fatalf("consumer's ack policy became %s", p)
	}
}
