package archive

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// cumulativeAcks acknowledges an AckAll consumer: one acknowledgement of
// stream sequence S settles every message at or below S, so nats-server
// handles one acknowledgement per flush instead of one per message
// (docs/benchmarks.md: its CPU per event in the archiver's drain fell
// from ~8.4 to ~5.5 µs).
//
// The archiver settles messages out of order (a hole, a redelivery, a
// Nak'd message that comes back), so a message's Ack only marks it
// settled here. The floor is the highest sequence below which every
// message of the stream is settled or gone from the stream; send
// acknowledges the floor and nothing above it. Invariant 1 therefore
// holds as under per-message acknowledgements: no message is acknowledged
// before the archive holds it durably.
//
// nats-server ignores a cumulative acknowledgement whose delivery
// sequence is not above the last one's (a message redelivered late, a
// delivery from before a consumer reset, a deposed writer's late
// acknowledgement). Such an acknowledgement is lost, not wrong: the
// messages stay pending. Replies from before a reset are never used
// (gen), and check resets the consumer when its floor does not follow.
type cumulativeAcks struct {
	mu      sync.Mutex
	nc      *nats.Conn
	floor   uint64            // every stream sequence ≤ floor is settled (or gone)
	settled map[uint64]string // settled sequences above floor → reply subject
	top     string            // reply subject of the highest settled message ≤ floor
	topSeq  uint64            // its stream sequence
	sent    uint64            // the floor last acknowledged
	// acked is the sequence the last acknowledgement carried, and
	// ackedBefore what it was at the previous check (see check).
	acked, ackedBefore uint64
	// gen counts consumer resets: a reply from an earlier generation
	// carries a delivery sequence from before the reset (see repull).
	gen uint64
	// since is when the floor started waiting for floor+1 with later
	// messages settled; checked the last gap lookup.
	since, checked time.Time
}

func newCumulativeAcks(nc *nats.Conn, floor uint64, now time.Time) *cumulativeAcks {
	return &cumulativeAcks{nc: nc, floor: floor, sent: floor, settled: make(map[uint64]string), since: now}
}

// settle records that the message with stream sequence seq (delivered
// with reply subject reply in generation gen) may be acknowledged.
func (c *cumulativeAcks) settle(seq uint64, reply string, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		reply = ""
	}
	if seq <= c.floor {
		// A redelivery below the floor (after a reset) can carry the
		// floor's acknowledgement until a later message does.
		if reply != "" && seq > c.topSeq {
			c.top, c.topSeq = reply, seq
		}
		return
	}
	if old := c.settled[seq]; reply == "" && old != "" {
		reply = old
	}
	now := time.Now()
	if len(c.settled) == 0 {
		c.since = now
	}
	c.settled[seq] = reply
	c.advance(now)
}

// advance moves the floor over the settled sequences that follow it.
// Called with mu held.
func (c *cumulativeAcks) advance(now time.Time) {
	moved := false
	for {
		reply, ok := c.settled[c.floor+1]
		if !ok {
			break
		}
		delete(c.settled, c.floor+1)
		c.floor++
		if reply != "" {
			c.top, c.topSeq = reply, c.floor
		}
		moved = true
	}
	if moved {
		c.since = now
	}
	acksWaiting.Set(float64(len(c.settled)))
}

// generation returns the current reset generation.
func (c *cumulativeAcks) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// newGen starts a generation after a consumer reset: the replies of
// earlier deliveries are dropped (their messages stay settled) and the
// floor is acknowledged again by the next fresh delivery at or below it.
func (c *cumulativeAcks) newGen() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.top, c.topSeq = "", 0
	c.acked, c.ackedBefore = 0, 0
	for seq := range c.settled {
		c.settled[seq] = ""
	}
	c.sent = 0
}

// send acknowledges the floor if it moved since the last call.
func (c *cumulativeAcks) send() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.floor == c.sent || c.top == "" {
		return nil
	}
	if err := c.nc.Publish(c.top, []byte("+ACK")); err != nil {
		return err
	}
	c.sent, c.acked = c.floor, c.topSeq
	return nil
}

// due reports whether a check is due (once per grace) and the sequence
// the floor has waited for since before grace while a later message is
// settled (0 if none).
func (c *cumulativeAcks) due(grace time.Duration, now time.Time) (bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.checked) < grace {
		return false, 0
	}
	c.checked = now
	if len(c.settled) == 0 || now.Sub(c.since) < grace {
		return true, 0
	}
	return true, c.floor + 1
}

// ignored reports whether the consumer's ack floor is still below what
// the acknowledgement sent before the previous check carried: nats-server
// ignored it (a delivery sequence not above its floor's, left by a
// deposed writer's late acknowledgement) or it was lost.
func (c *cumulativeAcks) ignored(ackFloor uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	lost := c.ackedBefore > 0 && ackFloor < c.ackedBefore
	c.ackedBefore = c.acked
	return lost
}

// gone moves the floor over sequences the stream no longer holds (deleted
// messages, or below its first sequence) and to the consumer's own ack
// floor, which a deposed writer may have raised. Messages that still
// exist keep the floor waiting: they come back (a Nak's delay, AckWait).
func (c *cumulativeAcks) gone(ackFloor, firstSeq uint64, deleted []uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	lift := max(ackFloor, firstSeq-min(firstSeq, 1))
	if lift > c.floor {
		for seq := range c.settled {
			if seq <= lift {
				delete(c.settled, seq)
			}
		}
		c.floor = lift
		c.since = now
	}
	for _, seq := range deleted {
		if seq > c.floor {
			if _, ok := c.settled[seq]; !ok {
				c.settled[seq] = ""
			}
		}
	}
	c.advance(now)
}

// gapProbe is how many missing sequences one check looks up.
const gapProbe = 64

// check runs once per grace. It moves the floor over the sequences it
// has waited for since before grace that the stream no longer holds, and
// reports whether the consumer must be reset because nats-server ignores
// the acknowledgements (see ignored).
func (c *cumulativeAcks) check(ctx context.Context, js jetstream.JetStream, stream, consumer string, grace time.Duration, now time.Time) (reset bool, err error) {
	ok, next := c.due(grace, now)
	if !ok {
		return false, nil
	}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return false, err
	}
	cons, err := st.Consumer(ctx, consumer)
	if err != nil {
		return false, err
	}
	ackFloor := cons.CachedInfo().AckFloor.Stream
	if c.ignored(ackFloor) {
		return true, nil
	}
	if next == 0 {
		return false, nil
	}
	info, err := st.Info(ctx)
	if err != nil {
		return false, err
	}
	var deleted []uint64
	for seq := max(next, info.State.FirstSeq); seq < next+gapProbe && seq <= info.State.LastSeq; seq++ {
		if c.isSettled(seq) {
			continue
		}
		_, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			deleted = append(deleted, seq)
			continue
		}
		if err != nil {
			return false, err
		}
		break // present: it comes back
	}
	c.gone(ackFloor, info.State.FirstSeq, deleted)
	return false, nil
}

func (c *cumulativeAcks) isSettled(seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.settled[seq]
	return ok || seq <= c.floor
}

var acksWaiting = promauto.NewGauge(prometheus.GaugeOpts{
	Name: "tidemark_archiver_acks_waiting",
	Help: "Messages the archive holds durably whose cumulative acknowledgement waits for an earlier message (held, Nak'd or not yet redelivered).",
})
