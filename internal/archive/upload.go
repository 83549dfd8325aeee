package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// upload stores a closed segment with a conditional create. When the key
// already exists (a re-upload after a crash, or a deposed writer's upload)
// it reads the object back and accepts it if it holds the same events.
//
// A writer whose lease has lapsed by its own clock (it was paused, say) does
// not upload: a standby may lead by now, and the object would be debris
// that only the next term's sweep records.
func (s *session) upload(ctx context.Context, sg *closedSegment) (*catalog.SegmentRef, error) {
	start := time.Now()
	if exp := s.lease.Expires(); !start.Before(exp) {
		return nil, fmt.Errorf("%w: it lapsed at %s, before the upload of %s", ErrLeaseLost, exp.Format(time.RFC3339Nano), sg.key)
	}
	var body io.Reader = &hookReader{data: sg.data, hook: s.a.hook}
	if sg.file != nil {
		body = sg.body()
	}
	err := s.a.deps.Store.Put(ctx, sg.key, body, sg.storedSize(), objstore.PutOptions{IfAbsent: true})
	for try := 1; err != nil && !errors.Is(err, objstore.ErrExists) && transient(err) && try < storeTries; try++ {
		uploadErrorsTotal.WithLabelValues("put").Inc()
		s.log.Warn("upload segment; retrying", "key", sg.key, "err", err, "try", try)
		if !sleep(ctx, backoff(try)) {
			break
		}
		// A failed conditional put may still have stored the object; then
		// the retry finds it and confirms it below.
		err = s.a.deps.Store.Put(ctx, sg.key, sg.body(), sg.storedSize(), objstore.PutOptions{IfAbsent: true})
	}
	ref := segmentRef(sg, s.a.keyID(), s.a.cfg.Compression.String(), sg.trailer)
	switch {
	case err == nil:
		uploadLatency.WithLabelValues("put").Observe(time.Since(start).Seconds())
		segmentsUploadedTotal.Inc()
		bytesInTotal.Add(float64(sg.trailer.RawBytes))
		bytesOutTotal.Add(float64(sg.storedSize()))
		s.puts.add(time.Now(), 1)
	case errors.Is(err, objstore.ErrExists):
		hdr, existing, cerr := s.confirm(ctx, sg)
		if cerr != nil {
			return nil, cerr
		}
		if hdr != nil {
			ref = segmentRef(sg, hdr.KeyID, hdr.Compression.String(), existing)
		}
		s.log.Info("segment already stored with the same events; reusing it", "key", sg.key)
	default:
		uploadErrorsTotal.WithLabelValues("put").Inc()
		return nil, fmt.Errorf("upload segment %s: %w", sg.key, err)
	}
	s.a.hook(StageUploaded)
	return ref, nil
}

// confirm checks that the object stored at sg.key holds exactly the events
// of sg and returns its trailer. Headers (creation time, data key) differ
// between two writes of the same segment, so bytes are compared first and
// events second. It returns the existing object's header (nil when it is
// byte-identical to sg) and trailer.
func (s *session) confirm(ctx context.Context, sg *closedSegment) (*segment.Header, *segment.Trailer, error) {
	if sg.file != nil {
		return s.confirmLarge(ctx, sg)
	}
	limit := int64(len(sg.data))*2 + 16<<20
	data, err := objstore.ReadAll(ctx, s.a.deps.Store, sg.key, limit)
	if err != nil {
		uploadErrorsTotal.WithLabelValues("confirm").Inc()
		return nil, nil, fmt.Errorf("read existing segment %s: %w", sg.key, err)
	}
	if bytes.Equal(data, sg.data) {
		return nil, sg.trailer, nil
	}
	opts := segment.ReadOptions{Keyring: s.a.deps.Keyring, MaxRawBytes: max(2*sg.trailer.RawBytes, 64<<20)}
	theirs, err := segment.Decode(sg.key, data, opts)
	if err != nil {
		return nil, nil, s.conflict(sg.key, fmt.Sprintf("existing object does not decode: %v", err))
	}
	ours, err := segment.Decode(sg.key, sg.data, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("decode own segment %s: %w", sg.key, err)
	}
	if reason := sameEvents(ours, theirs); reason != "" {
		return nil, nil, s.conflict(sg.key, reason)
	}
	return &theirs.Header, &theirs.Trailer, nil
}

// sameEvents returns why two segments differ in content, or "".
func sameEvents(a, b *segment.Segment) string {
	if a.Header.Table.ID() != b.Header.Table.ID() {
		return "table definitions differ"
	}
	if a.Header.SystemID != b.Header.SystemID {
		return "source system ids differ"
	}
	if len(a.Events) != len(b.Events) {
		return fmt.Sprintf("%d events, existing object has %d", len(a.Events), len(b.Events))
	}
	for i := range a.Events {
		if !a.Events[i].Equal(b.Events[i]) {
			return fmt.Sprintf("event %d differs (%s vs %s)", i, a.Events[i], b.Events[i])
		}
	}
	return ""
}

// conflict raises the alarm for a key holding different content.
func (s *session) conflict(key, reason string) error {
	conflictingObjectsTotal.Inc()
	s.log.Error("ALARM: segment key holds a different object; not overwriting it and stopping",
		"key", key, "reason", reason)
	return fmt.Errorf("%w: %s: %s", ErrConflictingObject, key, reason)
}

// segmentRef describes a stored segment for its catalog entry.
func segmentRef(sg *closedSegment, keyID, compression string, tr *segment.Trailer) *catalog.SegmentRef {
	return &catalog.SegmentRef{Key: sg.key, Size: tr.StoredBytes, SHA256: tr.SHA256, Events: tr.Events,
		Transactions: tr.Transactions, Table: sg.table.QualifiedName(), TableID: sg.tableID, KeyID: keyID,
		Compression: compression, FirstEndLSN: tr.FirstEndLSN, LastEndLSN: tr.LastEndLSN,
		PrevLSN: tr.PrevLSN, MinCommitTime: tr.MinCommitTime, MaxCommitTime: tr.MaxCommitTime, RawBytes: tr.RawBytes}
}

// hookReader serves data in two halves and calls hook(StageMidUpload)
// between them, so a crash test can stop the process mid-upload.
type hookReader struct {
	data []byte
	off  int
	hook func(string)
	hit  bool
}

func (r *hookReader) Read(p []byte) (int, error) {
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	half := len(r.data) / 2
	if r.off >= half && !r.hit {
		r.hit = true
		r.hook(StageMidUpload)
	}
	end := len(r.data)
	if r.off < half {
		end = half
	}
	n := copy(p, r.data[r.off:end])
	r.off += n
	return n, nil
}

var (
	segmentsUploadedTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_segments_uploaded_total",
		Help: "Segment objects uploaded.",
	})
	bytesInTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_bytes_in_total",
		Help: "Raw (uncompressed) event bytes in uploaded segments.",
	})
	bytesOutTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_bytes_out_total",
		Help: "Stored (compressed, encrypted) bytes of uploaded segments.",
	})
	uploadErrorsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tidemark_archiver_upload_errors_total",
		Help: "Failed writes to the archive by operation (put, confirm, catalog, meta, lease).",
	}, []string{"operation"})
	uploadLatency = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tidemark_archiver_upload_latency_seconds",
		Help:    "Latency of archive writes by operation (put: segment objects, catalog: entries).",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
	}, []string{"operation"})
	conflictingObjectsTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "tidemark_archiver_conflicting_objects_total",
		Help: "Segment keys found holding different content (an alarm: the archiver stops).",
	})
)
