package cdc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// valueStore is what capture uses of the values object store
// (jetstream.ObjectStore).
type valueStore interface {
	GetInfo(ctx context.Context, name string, opts ...jetstream.GetObjectInfoOpt) (*jetstream.ObjectInfo, error)
	Put(ctx context.Context, meta jetstream.ObjectMeta, r io.Reader) (*jetstream.ObjectInfo, error)
}

// valuesTTLMargin is how much longer than the stream's messages the values
// are kept: a value is put before its message, and a re-send within the
// margin finds it still there.
const valuesTTLMargin = time.Hour

// ValuesStoreConfig returns the object store holding external values: file
// storage and the stream's replicas, its objects kept an hour longer than
// the stream keeps messages (unlimited when the stream is).
func ValuesStoreConfig(cfg Config) jetstream.ObjectStoreConfig {
	ttl := time.Duration(0)
	if cfg.MaxAge > 0 {
		ttl = cfg.MaxAge + valuesTTLMargin
	}
	return jetstream.ObjectStoreConfig{
		Bucket:      feed.ValuesBucket(cfg.Stream),
		Description: "Tidemark feed: column values too large for an event message (see Tidemark-External)",
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}
}

// largeValues are the values of a row left in the spill file.
type largeValues []*io.SectionReader

// decodeLargeTuple decodes a pgoutput tuple held in the spill file. Values
// up to limit bytes are read into memory; larger ones stay in the file,
// returned as sections (their Values entry is nil).
func decodeLargeTuple(sr *io.SectionReader, limit int64) (Tuple, largeValues, error) {
	var off int64
	read := func(n int) ([]byte, error) {
		if int64(n) > sr.Size()-off {
			return nil, errShort
		}
		b := make([]byte, n)
		if _, err := sr.ReadAt(b, off); err != nil {
			return nil, noEOF(err)
		}
		off += int64(n)
		return b, nil
	}
	fail := func(err error) (Tuple, largeValues, error) {
		return Tuple{}, nil, fmt.Errorf("decode spooled tuple: %w", err)
	}
	b, err := read(2)
	if err != nil {
		return fail(err)
	}
	n := int(binary.BigEndian.Uint16(b))
	t := Tuple{Values: make([][]byte, n)}
	large := make(largeValues, n)
	for i := 0; i < n; i++ {
		k, err := read(1)
		if err != nil {
			return fail(err)
		}
		switch k[0] {
		case colNull:
		case colUnchanged:
			if t.Unchanged == nil {
				t.Unchanged = make([]bool, n)
			}
			t.Unchanged[i] = true
		case colText, colBinary:
			b, err := read(4)
			if err != nil {
				return fail(err)
			}
			l := int64(binary.BigEndian.Uint32(b))
			if l > sr.Size()-off {
				return fail(errShort)
			}
			if l > limit {
				large[i] = io.NewSectionReader(sr, off, l)
				off += l
				continue
			}
			if t.Values[i], err = read(int(l)); err != nil {
				return fail(err)
			}
		default:
			return fail(fmt.Errorf("column %d: unknown kind %q", i, k[0]))
		}
	}
	if off != sr.Size() {
		return fail(fmt.Errorf("%d trailing bytes", sr.Size()-off))
	}
	return t, large, nil
}

// threshold returns the size above which a value travels outside its
// message: the configured one, and never more than a quarter of the
// server's max_payload.
func (em *emitter) threshold() int64 {
	t := em.extBytes
	if mp := em.maxPayload(); mp > 0 {
		t = min(t, mp/4)
	}
	return t
}

// encodeEvent builds the message of ev, whose values are vals (nil where
// large holds the value in the spill file). Values above the threshold,
// and more (largest first) while the message would exceed max_payload, are
// put into the values object store first and named by the message's
// Tidemark-External header; their body value is null.
func (em *emitter) encodeEvent(ctx context.Context, prefix feed.TxnPrefix, msgSystemID string, rel *relation, ev *event.Event, vals [][]byte, large largeValues) (*nats.Msg, error) {
	limit := em.threshold()
	var ext []bool
	for i, v := range vals {
		if naming(rel, i) {
			// Named in the subject and headers: always in the message.
			if i < len(large) && large[i] != nil {
				b, err := io.ReadAll(large[i])
				if err != nil {
					return nil, fmt.Errorf("read spooled value: %w", err)
				}
				vals[i], large[i] = b, nil
			}
			continue
		}
		if int64(len(v)) > limit || i < len(large) && large[i] != nil {
			if ext == nil {
				ext = make([]bool, len(vals))
			}
			ext[i] = true
		}
	}
	body := vals
	encode := func() *nats.Msg {
		if ext != nil {
			body = make([][]byte, len(vals))
			for i, v := range vals {
				if !ext[i] {
					body[i] = v
				}
			}
		}
		ev.Values = body
		return em.subjects.EncodeTxnEvent(prefix, msgSystemID, rel.enc, ev)
	}
	msg := encode()
	maxPayload := em.maxPayload()
	for maxPayload > 0 && int64(msgSize(msg)+externalHeaderSize(ext)) > maxPayload {
		i := largestInBody(rel, vals, ext)
		if i < 0 {
			return nil, fatal(fmt.Errorf("event %s (%s) is %d bytes with every movable value outside it, NATS accepts at most %d: %w",
				msg.Header.Get(nats.MsgIdHdr), msg.Subject, msgSize(msg), maxPayload, nats.ErrMaxPayload),
				"its event id, stream id, version or type column is too large for a message; raise max_payload in the NATS server configuration")
		}
		if ext == nil {
			ext = make([]bool, len(vals))
		}
		ext[i] = true
		msg = encode()
	}
	if ext == nil {
		return msg, nil
	}
	msgID := msg.Header.Get(nats.MsgIdHdr)
	var vs []feed.ExternalValue
	for i, isExt := range ext {
		if !isExt {
			continue
		}
		var src io.ReadSeeker
		if i < len(large) && large[i] != nil {
			src = large[i]
		} else {
			src = bytes.NewReader(vals[i])
		}
		v, err := em.putValue(ctx, feed.ValueObjectName(msgID, i), i, src)
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	msg.Header.Set(feed.HeaderExternal, feed.EncodeExternal(vs))
	return msg, nil
}

// externalHeaderSize bounds the bytes the Tidemark-External header adds
// for the columns marked in ext.
func externalHeaderSize(ext []bool) int {
	n := 0
	for _, e := range ext {
		if e {
			n += 4 + 1 + 10 + 1 + 64 + 1 // column=size:digest,
		}
	}
	if n == 0 {
		return 0
	}
	return len(feed.HeaderExternal) + 4 + n
}

// largestInBody returns the column of the largest value still in the body
// that may move out (ties: the lowest column), or -1. The columns that name
// the event in subjects and headers never move.
func largestInBody(rel *relation, vals [][]byte, ext []bool) int {
	best := -1
	for i, v := range vals {
		if v == nil || ext != nil && ext[i] || naming(rel, i) {
			continue
		}
		if best < 0 || len(v) > len(vals[best]) {
			best = i
		}
	}
	return best
}

// naming reports whether column i names the event in its subject and
// headers (event id, stream id, version, type): it never moves out.
func naming(rel *relation, i int) bool {
	l := rel.layout
	return i == l.EventID || i == l.StreamID || i == l.StreamVersion || i == l.EventType
}

// putValue stores one value as the object name unless an object of that
// name already holds the same bytes (a re-send: its chunks may be being
// read, so they are not rewritten). The object is complete when putValue
// returns.
func (em *emitter) putValue(ctx context.Context, name string, col int, src io.ReadSeeker) (feed.ExternalValue, error) {
	h := sha256.New()
	size, err := io.Copy(h, src)
	if err != nil {
		return feed.ExternalValue{}, fmt.Errorf("external value %s: read: %w", name, err)
	}
	v := feed.ExternalValue{Column: col, Size: size}
	h.Sum(v.SHA256[:0])
	digest := "SHA-256=" + base64.URLEncoding.EncodeToString(v.SHA256[:])
	info, err := em.values.GetInfo(ctx, name)
	switch {
	case err == nil && !info.Deleted && info.Size == uint64(size) && info.Digest == digest:
		metricExternalReused.Inc()
		return v, nil
	case err == nil:
		em.log.Warn("external value object exists with other content; replacing it",
			"object", name, "size", info.Size, "want_size", size)
	case !errors.Is(err, jetstream.ErrObjectNotFound):
		return v, fmt.Errorf("external value %s: look up: %w", name, err)
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return v, fmt.Errorf("external value %s: rewind: %w", name, err)
	}
	start := time.Now()
	info, err = em.values.Put(ctx, jetstream.ObjectMeta{Name: name}, em.ticking(src))
	if err != nil {
		return v, fmt.Errorf("external value %s: put into %s: %w", name, feed.ValuesBucket(em.stream), err)
	}
	if info.Size != uint64(size) || info.Digest != digest {
		return v, fmt.Errorf("external value %s: stored %d bytes %s, read %d bytes %s", name, info.Size, info.Digest, size, digest)
	}
	metricExternalPut.Inc()
	metricExternalBytes.Add(float64(size))
	em.log.Debug("external value stored", "object", name, "bytes", size, "seconds", time.Since(start).Seconds())
	return v, nil
}

// ticking wraps r so that the publisher's tick (the replication loop's
// standby status update) still runs while a large value is being put: the
// server would otherwise end the replication connection after
// wal_sender_timeout without feedback.
func (em *emitter) ticking(r io.Reader) io.Reader {
	if em.pub == nil || em.pub.tick == nil {
		return r
	}
	return &tickReader{r: r, tick: em.pub.tick, every: em.pub.tickEach, last: time.Now()}
}

type tickReader struct {
	r     io.Reader
	tick  func() error
	every time.Duration
	last  time.Time
}

func (t *tickReader) Read(p []byte) (int, error) {
	if time.Since(t.last) >= t.every {
		t.last = time.Now()
		if err := t.tick(); err != nil {
			return 0, err
		}
	}
	return t.r.Read(p)
}

var (
	metricExternalPut = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_capture_external_values_total",
		Help: "Column values put into the values object store (too large for an event message).",
	})
	metricExternalBytes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_capture_external_value_bytes_total",
		Help: "Bytes of column values put into the values object store.",
	})
	metricExternalReused = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_capture_external_values_reused_total",
		Help: "Re-sent events whose external value was already stored with the same size and SHA-256 (not put again).",
	})
)
