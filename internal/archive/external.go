package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"weak"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/segment"
)

// externalValue is a column value that travelled outside its message
// (feed.HeaderExternal), fetched from the values object store into an
// unlinked temporary file and checked against the header's size and
// SHA-256. It is never held in memory.
type externalValue struct {
	col  int
	size int64
	file *os.File
}

// externals maps the events holding external values to their files. The
// chain drops events in many places (duplicates, evictions, a term's
// end); the map holds them weakly and each event's files are closed — and
// with that removed, being unlinked — when the event is appended to a
// segment or collected, whichever comes first.
type externals struct {
	m map[weak.Pointer[event.Event]][]externalValue
}

func newExternals() *externals {
	return &externals{m: make(map[weak.Pointer[event.Event]][]externalValue)}
}

func (x *externals) put(e *event.Event, vs []externalValue) {
	x.m[weak.Make(e)] = vs
	runtime.AddCleanup(e, closeValues, vs)
}

func (x *externals) get(e *event.Event) []externalValue {
	if x == nil || len(x.m) == 0 {
		return nil
	}
	return x.m[weak.Make(e)]
}

// done closes e's files once its values are in a segment.
func (x *externals) done(e *event.Event) {
	k := weak.Make(e)
	closeValues(x.m[k])
	delete(x.m, k)
}

// prune forgets the entries of collected events.
func (x *externals) prune() {
	for k := range x.m {
		if k.Value() == nil {
			delete(x.m, k)
		}
	}
}

func closeValues(vs []externalValue) {
	for _, v := range vs {
		_ = v.file.Close()
	}
}

// largeValues returns the segment writer's readers for vs.
func largeValues(vs []externalValue, ncols int) []*segment.LargeValue {
	out := make([]*segment.LargeValue, ncols)
	for _, v := range vs {
		out[v.col] = &segment.LargeValue{Size: v.size, R: io.NewSectionReader(v.file, 0, v.size)}
	}
	return out
}

// errExternal marks a message whose external values could not be fetched
// or did not match its header.
var errExternal = errors.New("external value")

// fetchExternal fetches the values a message names in its
// Tidemark-External header (none: nil) and sets their columns of e to nil.
// The body must hold null for each; each object must hold exactly the
// size and SHA-256 the header states. Memory stays bounded whatever the
// size: values are streamed into temporary files under Config.TempDir.
func (s *session) fetchExternal(ctx context.Context, nm *nats.Msg, t *event.Table, e *event.Event) ([]externalValue, error) {
	hdr := nm.Header.Get(feed.HeaderExternal)
	if hdr == "" {
		return nil, nil
	}
	vs, err := feed.ParseExternal(hdr, len(t.Columns))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errExternal, err)
	}
	for _, v := range vs {
		if b := e.Values[v.Column]; b != nil && !bytes.Equal(b, []byte("null")) {
			return nil, fmt.Errorf("%w: column %s is external but the body holds a value", errExternal, t.Columns[v.Column].Name)
		}
	}
	obs, err := s.a.valueStore(ctx)
	if err != nil {
		return nil, err
	}
	msgID := nm.Header.Get(nats.MsgIdHdr)
	out := make([]externalValue, 0, len(vs))
	for _, v := range vs {
		ev, err := s.fetchValue(ctx, obs, feed.ValueObjectName(msgID, v.Column), v)
		if err != nil {
			closeValues(out)
			return nil, err
		}
		out = append(out, ev)
		externalFetchedTotal.Inc()
		externalFetchedBytes.Add(float64(v.Size))
	}
	for _, v := range vs {
		e.Values[v.Column] = nil
	}
	return out, nil
}

func (s *session) fetchValue(ctx context.Context, obs jetstream.ObjectStore, name string, v feed.ExternalValue) (externalValue, error) {
	res, err := obs.Get(ctx, name)
	if err != nil {
		return externalValue{}, fmt.Errorf("%w %s in %s: %w", errExternal, name, feed.ValuesBucket(s.a.cfg.Stream), err)
	}
	defer res.Close()
	f, err := os.CreateTemp(s.a.cfg.TempDir, "tidemark-value-*")
	if err != nil {
		return externalValue{}, fmt.Errorf("external value %s: temporary file: %w", name, err)
	}
	// Unlinked at once: the space is freed when the file is closed, even
	// if the process dies.
	_ = os.Remove(f.Name())
	h := sha256.New()
	// One byte more than the header claims, so a longer object is caught.
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(res, v.Size+1))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	switch {
	case err != nil:
		err = fmt.Errorf("%w %s: read after %d bytes: %w", errExternal, name, n, err)
	case n != v.Size:
		err = fmt.Errorf("%w %s: %d bytes, the message says %d", errExternal, name, n, v.Size)
	case sum != v.SHA256:
		err = fmt.Errorf("%w %s: SHA-256 %x, the message says %x", errExternal, name, sum, v.SHA256)
	}
	if err != nil {
		_ = f.Close()
		return externalValue{}, err
	}
	return externalValue{col: v.Column, size: v.Size, file: f}, nil
}

// valueStore returns the values object store, opened once.
func (a *Archiver) valueStore(ctx context.Context) (jetstream.ObjectStore, error) {
	a.mu.Lock()
	obs := a.values
	a.mu.Unlock()
	if obs != nil {
		return obs, nil
	}
	obs, err := a.deps.JetStream.ObjectStore(ctx, feed.ValuesBucket(a.cfg.Stream))
	if err != nil {
		return nil, fmt.Errorf("%w: open object store %s: %w", errExternal, feed.ValuesBucket(a.cfg.Stream), err)
	}
	a.mu.Lock()
	a.values = obs
	a.mu.Unlock()
	return obs, nil
}

// spillWriter is where an open segment's bytes go: memory until the
// segment takes an external value, then an unlinked temporary file (what
// was in memory moved there first), so a segment holding a value of
// hundreds of megabytes is written and uploaded from disk.
type spillWriter struct {
	buf  bytes.Buffer
	file *os.File
	size int64
}

func (w *spillWriter) Write(p []byte) (int, error) {
	w.size += int64(len(p))
	if w.file != nil {
		return w.file.Write(p)
	}
	return w.buf.Write(p)
}

// toFile moves the segment to a temporary file in dir.
func (w *spillWriter) toFile(dir string) error {
	if w.file != nil {
		return nil
	}
	f, err := os.CreateTemp(dir, "tidemark-segment-*.tms")
	if err != nil {
		return fmt.Errorf("segment temporary file: %w", err)
	}
	_ = os.Remove(f.Name())
	if _, err := f.Write(w.buf.Bytes()); err != nil {
		_ = f.Close()
		return fmt.Errorf("segment temporary file: %w", err)
	}
	w.file, w.buf = f, bytes.Buffer{}
	return nil
}

var (
	externalFetchedTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_external_values_total",
		Help: "Column values fetched from the values object store and checked (size and SHA-256).",
	})
	externalFetchedBytes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_external_value_bytes_total",
		Help: "Bytes of column values fetched from the values object store.",
	})
	externalErrorsTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_external_value_errors_total",
		Help: "Messages given back because an external value was missing, unreadable or did not match its header.",
	})
)

// confirmLarge is confirm for a segment held in a temporary file (it holds
// an external value): the existing object is copied to a temporary file
// too, and compared by SHA-256, else event by event through the events
// digest, with one event in memory at a time.
func (s *session) confirmLarge(ctx context.Context, sg *closedSegment) (*segment.Header, *segment.Trailer, error) {
	rc, info, err := s.a.deps.Store.Get(ctx, sg.key)
	if err != nil {
		uploadErrorsTotal.WithLabelValues("confirm").Inc()
		return nil, nil, fmt.Errorf("read existing segment %s: %w", sg.key, err)
	}
	defer rc.Close()
	if limit := 2*sg.size + 16<<20; info.Size > limit {
		return nil, nil, s.conflict(sg.key, fmt.Sprintf("existing object is %d bytes, ours %d", info.Size, sg.size))
	}
	f, err := os.CreateTemp(s.a.cfg.TempDir, "tidemark-existing-*.tms")
	if err != nil {
		return nil, nil, fmt.Errorf("read existing segment %s: %w", sg.key, err)
	}
	_ = os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), rc)
	if err != nil {
		uploadErrorsTotal.WithLabelValues("confirm").Inc()
		return nil, nil, fmt.Errorf("read existing segment %s: %w", sg.key, err)
	}
	if fmt.Sprintf("%x", h.Sum(nil)) == sg.trailer.SHA256 && n == sg.size {
		return nil, sg.trailer, nil
	}
	opts := segment.ReadOptions{Keyring: s.a.deps.Keyring}
	theirs, err := digestSegment(sg.key, f, n, opts)
	if err != nil {
		return nil, nil, s.conflict(sg.key, fmt.Sprintf("existing object does not decode: %v", err))
	}
	ours, err := digestSegment(sg.key, sg.file, sg.size, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("decode own segment %s: %w", sg.key, err)
	}
	switch {
	case ours.header.Table.ID() != theirs.header.Table.ID():
		return nil, nil, s.conflict(sg.key, "table definitions differ")
	case ours.header.SystemID != theirs.header.SystemID:
		return nil, nil, s.conflict(sg.key, "source system ids differ")
	case ours.digest != theirs.digest:
		return nil, nil, s.conflict(sg.key, "events differ (events digest)")
	}
	return &theirs.header, &theirs.trailer, nil
}

type segmentDigest struct {
	header  segment.Header
	trailer segment.Trailer
	digest  string
}

// digestSegment reads a segment one event at a time and returns its
// header, trailer and events digest.
func digestSegment(name string, r io.ReaderAt, size int64, opts segment.ReadOptions) (*segmentDigest, error) {
	rd, err := segment.OpenReader(name, r, size, opts)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var d segment.EventsDigest
	for {
		e, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		d.Add(e)
	}
	return &segmentDigest{header: *rd.Header(), trailer: *rd.Trailer(), digest: d.Sum()}, nil
}
