package archive

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/event"
)

// ackQueue holds the messages of items accepted into the archive but not
// yet durable, each tagged with the chain position that must be durable
// before it may be acknowledged. Duplicates of items still in memory wait
// here too: acknowledging them early would acknowledge the same stream
// message as the original.
type ackQueue struct {
	entries []ackEntry
	msgs    int
}

type ackEntry struct {
	pos  event.Position
	msgs []Msg
}

// add queues msgs until pos is durable.
func (q *ackQueue) add(pos event.Position, msgs ...Msg) {
	if len(msgs) == 0 {
		return
	}
	q.entries = append(q.entries, ackEntry{pos: pos, msgs: msgs})
	q.msgs += len(msgs)
}

// settle acknowledges every queued message whose position is at or below
// the durable watermark w and returns how many it acknowledged and the
// first acknowledgement error.
func (q *ackQueue) settle(w event.Position) (n int, firstErr error) {
	keep := q.entries[:0]
	for _, e := range q.entries {
		if e.pos > w {
			keep = append(keep, e)
			continue
		}
		for _, m := range e.msgs {
			if err := m.Ack(); err != nil && firstErr == nil {
				firstErr = err
			}
			n++
		}
	}
	clear(q.entries[len(keep):])
	q.entries = keep
	q.msgs -= n
	return n, firstErr
}

// giveBack Naks every queued message (so JetStream redelivers it to
// whoever leads next) and empties the queue.
func (q *ackQueue) giveBack() {
	for _, e := range q.entries {
		for _, m := range e.msgs {
			_ = m.Nak()
		}
	}
	q.entries, q.msgs = nil, 0
}

// len returns the number of queued messages.
func (q *ackQueue) len() int { return q.msgs }

// ackHandle settles a JetStream message by its reply subject, as
// jetstream.Msg does, without keeping the message (its payload and
// headers) alive while it waits for its segment to be durable.
type ackHandle struct {
	nc    *nats.Conn
	reply string
	// On a cumulative consumer, seq is the message's stream sequence and
	// cum records the settlement (cumulativeAcks).
	seq uint64
	cum *cumulativeAcks
	gen uint64 // the consumer reset generation it was delivered in
}

// Ack acknowledges the message, or on a cumulative consumer marks it
// settled for the next cumulative acknowledgement.
func (h ackHandle) Ack() error {
	if h.cum != nil {
		h.cum.settle(h.seq, h.reply, h.gen)
		return nil
	}
	return h.nc.Publish(h.reply, []byte("+ACK"))
}

// Nak asks for redelivery now.
func (h ackHandle) Nak() error { return h.nc.Publish(h.reply, []byte("-NAK")) }

// NakWithDelay asks for redelivery after delay.
func (h ackHandle) NakWithDelay(delay time.Duration) error {
	return h.nc.Publish(h.reply, []byte(fmt.Sprintf(`-NAK {"delay": %d}`, delay.Nanoseconds())))
}

// noSettle stands for a message that is not a consumer's delivery: there
// is nothing to acknowledge.
type noSettle struct{}

func (noSettle) Ack() error                       { return nil }
func (noSettle) Nak() error                       { return nil }
func (noSettle) NakWithDelay(time.Duration) error { return nil }
