package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// maxTableDefBytes bounds a table definition read from META.
const maxTableDefBytes = 4 << 20

// meta is the archiver's view of the META key-value bucket: table
// definitions (cached), the watermark it publishes and the rewind requests
// it makes.
type meta struct {
	js     jetstream.JetStream
	bucket string

	mu     sync.Mutex
	kv     jetstream.KeyValue
	tables map[string]*event.Table
}

func newMeta(js jetstream.JetStream, stream string) *meta {
	return &meta{js: js, bucket: feed.MetaBucket(stream), tables: make(map[string]*event.Table)}
}

// open returns the bucket, creating it when capture has not yet.
func (m *meta) open(ctx context.Context) (jetstream.KeyValue, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.kv != nil {
		return m.kv, nil
	}
	kv, err := m.js.KeyValue(ctx, m.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = m.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: m.bucket, History: 1,
			Description: "Tidemark watermark, rewind requests and table definitions"})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = m.js.KeyValue(ctx, m.bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open kv bucket %s: %w", m.bucket, err)
	}
	m.kv = kv
	return kv, nil
}

// errTableMissing: the definition a message names is not (yet) in META.
var errTableMissing = errors.New("table definition not in META")

// table returns the definition with the given id, from the cache or META.
// It returns an error wrapping errTableMissing when META does not have it.
func (m *meta) table(ctx context.Context, id string) (*event.Table, error) {
	m.mu.Lock()
	t := m.tables[id]
	m.mu.Unlock()
	if t != nil {
		return t, nil
	}
	kv, err := m.open(ctx)
	if err != nil {
		return nil, err
	}
	entry, err := kv.Get(ctx, feed.TableKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("table %s: %w", id, errTableMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("get table %s: %w", id, err)
	}
	if len(entry.Value()) > maxTableDefBytes {
		return nil, fmt.Errorf("table %s: definition is %d bytes, limit %d", id, len(entry.Value()), maxTableDefBytes)
	}
	t = new(event.Table)
	if err := json.Unmarshal(entry.Value(), t); err != nil {
		return nil, fmt.Errorf("decode table %s: %w", id, err)
	}
	if t.ID() != id {
		return nil, fmt.Errorf("table %s: META holds a definition with id %s", id, t.ID())
	}
	m.mu.Lock()
	m.tables[id] = t
	m.mu.Unlock()
	return t, nil
}

// putWatermark publishes the durable watermark.
func (m *meta) putWatermark(ctx context.Context, wm feed.Watermark) error {
	kv, err := m.open(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(wm)
	if err != nil {
		return fmt.Errorf("encode watermark: %w", err)
	}
	if _, err := kv.Put(ctx, feed.KeyWatermark, b); err != nil {
		return fmt.Errorf("put watermark: %w", err)
	}
	return nil
}

// watermark reads the published watermark; ok is false when there is none.
func (m *meta) watermark(ctx context.Context) (wm feed.Watermark, ok bool, err error) {
	kv, err := m.open(ctx)
	if err != nil {
		return wm, false, err
	}
	entry, err := kv.Get(ctx, feed.KeyWatermark)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return wm, false, nil
	}
	if err != nil {
		return wm, false, fmt.Errorf("get watermark: %w", err)
	}
	if err := json.Unmarshal(entry.Value(), &wm); err != nil {
		return wm, false, fmt.Errorf("decode watermark: %w", err)
	}
	return wm, true, nil
}

// putRewind asks capture to replay from the slot.
func (m *meta) putRewind(ctx context.Context, after, missing event.Position, at time.Time) error {
	kv, err := m.open(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(feed.RewindRequest{After: after, Missing: missing, At: at.UTC()})
	if err != nil {
		return fmt.Errorf("encode rewind request: %w", err)
	}
	if _, err := kv.Put(ctx, feed.KeyRewind, b); err != nil {
		return fmt.Errorf("put rewind request: %w", err)
	}
	return nil
}
