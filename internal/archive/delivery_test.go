package archive

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/semaphore"
)

// sliceIter is a message iterator over a fixed list, closed at its end.
type sliceIter struct {
	jetstream.MessagesContext
	msgs []jetstream.Msg
}

func (it *sliceIter) Next(...jetstream.NextOpt) (jetstream.Msg, error) {
	if len(it.msgs) == 0 {
		return nil, jetstream.ErrMsgIteratorClosed
	}
	m := it.msgs[0]
	it.msgs = it.msgs[1:]
	return m, nil
}

// TestPump_DecodedBudget checks that large messages wait for room in the
// decoded budget instead of piling up between the pull goroutine and the
// session's loop, that a message larger than the whole budget still
// passes alone, and that a message waiting when the subscription is given
// back is Nak'ed.
func TestPump_DecodedBudget(t *testing.T) {
	big := func(n int) *recordedMsg { return &recordedMsg{m: &nats.Msg{Subject: "s", Data: make([]byte, n)}} }
	huge, second, third := big(2*decodedBudget), big(decodedBudget/2+1), big(decodedBudget/2+1)
	p := &pulling{msgs: make(chan *delivery, 10), errs: make(chan error, 1), pumped: make(chan struct{}),
		decoded: semaphore.NewWeighted(decodedBudget)}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		defer close(p.pumped)
		pump(&sliceIter{msgs: []jetstream.Msg{huge, second, third}}, p.msgs, p.errs,
			func(m jetstream.Msg) *delivery { return p.admit(ctx, &delivery{m: m}) })
	}()

	d := <-p.msgs
	if d.m != huge {
		t.Fatal("the message larger than the budget did not pass first")
	}
	if p.decoded.TryAcquire(1) {
		t.Fatal("a message larger than the budget should take all of it")
	}
	p.handled(d)
	if d = <-p.msgs; d.m != second {
		t.Fatal("the second message did not follow")
	}
	// The third does not fit beside the second: it waits until the
	// subscription is given back, and is then Nak'ed, not delivered.
	cancel()
	<-p.pumped
	select {
	case d := <-p.msgs:
		t.Fatalf("a message over the budget was delivered (%d bytes)", len(d.m.Data()))
	default:
	}
	if third.naked != 1 || second.naked != 0 {
		t.Fatalf("Naks: third %d (want 1), second %d (want 0)", third.naked, second.naked)
	}
	p.handled(d)
	if !p.decoded.TryAcquire(decodedBudget) {
		t.Fatal("the budget was not returned whole")
	}
}
