package archive

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// deliveryKind is what a message on the feed carries.
type deliveryKind int

const (
	deliveredEvent deliveryKind = iota
	deliveredHeartbeat
	deliveredTamper   // capture's tamper report: never archived
	deliveredNotEvent // a message the feed does not define
)

// delivery is one message from the consumer, decoded. Decoding is the
// archiver's largest cost after compression and needs nothing the session
// owns, so pull runs it on the goroutine that receives the messages, beside
// the session's loop (docs/benchmarks.md, "decoding beside the loop").
type delivery struct {
	m        jetstream.Msg
	nm       *nats.Msg
	kind     deliveryKind
	systemID string
	hb       event.Heartbeat
	e        *event.Event
	t        *event.Table
	// md is the delivery's metadata (mdErr: the message is not a
	// consumer's delivery).
	md    *jetstream.MsgMetadata
	mdErr error
	// err is why the message could not be decoded; the session gives it
	// back (see undecodable). A wait for its table definition cut short
	// by ctx is such an error too: the message is given back unhandled.
	err error
}

// decode decodes m. It is safe to call from any goroutine: it reads only
// the archiver's META cache, which has its own lock. It waits for a table
// definition capture has not yet written until ctx ends.
func (s *session) decode(ctx context.Context, m jetstream.Msg) *delivery {
	nm := &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
	d := &delivery{m: m, nm: nm, systemID: feed.SystemID(nm)}
	d.md, d.mdErr = m.Metadata()
	if d.mdErr == nil {
		s.backlog.Store(d.md.NumPending)
	}
	switch {
	case feed.IsTamper(nm):
		d.kind = deliveredTamper
	case feed.IsHeartbeat(nm):
		d.kind = deliveredHeartbeat
		d.hb, d.err = feed.DecodeHeartbeat(nm)
	default:
		d.t, d.err = s.table(ctx, nm.Header.Get(feed.HeaderSchemaID))
		switch {
		case d.err != nil:
		case d.t == nil:
			d.err = errors.New("message names no table definition")
		default:
			d.e, d.err = feed.DecodeEvent(nm, d.t)
			if errors.Is(d.err, feed.ErrNotEvent) {
				d.kind, d.err = deliveredNotEvent, nil
			}
		}
	}
	return d
}
