package consumer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// ErrExternalValues: an event's values travel outside its message (in the
// <stream>_VALUES object store) and could not be fetched intact — the
// object is gone (the store keeps values an hour longer than the stream
// keeps messages), or its size or SHA-256 differ from the message's
// Tidemark-External header. The cursor stops rather than deliver a row
// without its values.
var ErrExternalValues = errors.New("consumer: external value")

// fillExternal puts the values an event message carries outside itself
// (docs/feed.md, "Large values") into e: each is read from the values
// object store by its name (<Nats-Msg-Id>.<column>) and checked against
// the header's size and SHA-256. Archived events already hold them.
func (l *liveFeed) fillExternal(ctx context.Context, m *nats.Msg, def *event.Table, e *event.Event) error {
	hdr := m.Header.Get(feed.HeaderExternal)
	if hdr == "" {
		return nil
	}
	vs, err := feed.ParseExternal(hdr, len(def.Columns))
	if err != nil {
		return fmt.Errorf("%w: header %s: %w", ErrExternalValues, feed.HeaderExternal, err)
	}
	if l.values == nil {
		if l.values, err = l.js.ObjectStore(ctx, feed.ValuesBucket(l.c.cfg.Stream)); err != nil {
			return fmt.Errorf("%w: open object store %s: %w", ErrExternalValues, feed.ValuesBucket(l.c.cfg.Stream), err)
		}
	}
	msgID := m.Header.Get(nats.MsgIdHdr)
	for _, v := range vs {
		name := feed.ValueObjectName(msgID, v.Column)
		b, err := readValue(ctx, l.values, name, v.Size)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrExternalValues, name, err)
		}
		if sha256.Sum256(b) != v.SHA256 {
			return fmt.Errorf("%w: %s: SHA-256 differs from the message's header", ErrExternalValues, name)
		}
		e.Values[v.Column] = b
	}
	return nil
}

// readValue reads an object of the expected size, refusing a longer one
// without reading it whole.
func readValue(ctx context.Context, obs jetstream.ObjectStore, name string, size int64) ([]byte, error) {
	r, err := obs.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var buf bytes.Buffer
	buf.Grow(int(size))
	n, err := io.Copy(&buf, io.LimitReader(r, size+1))
	if err != nil {
		return nil, err
	}
	if n != size {
		return nil, fmt.Errorf("%d bytes, the message's header says %d", n, size)
	}
	return buf.Bytes(), nil
}
