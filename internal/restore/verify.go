package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
)

// Report statuses of Verify.
const (
	StatusOK      = "OK"
	StatusWarning = "WARNING"
	StatusFailure = "FAILURE"
)

// Severities of a Problem.
const (
	SeverityWarning = "warning"
	SeverityFailure = "failure"
)

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// AgainstURL, when set, is the live source database: every source event
	// committed at or before the watermark must be in the archive, and
	// nothing else may be.
	AgainstURL string
	// Table is the archived table to check against the source ("" = the only one).
	Table string
	// Parallel is how many segments download at once (default DefaultParallel).
	Parallel int
	// MaxSegmentBytes bounds one segment (default DefaultMaxSegmentBytes).
	MaxSegmentBytes int64
	// Progress, when set, is updated as segments are checked.
	Progress *Progress
}

// Report is the outcome of Verify. Its JSON form is part of the --json
// contract (docs/restore.md): fields are only ever added.
type Report struct {
	// Status is OK, WARNING or FAILURE.
	Status string `json:"status"`
	// Store describes the archive's location (no secrets).
	Store string `json:"store"`
	// Window is the restorable window.
	Window Window `json:"window"`
	// Segments, Events and Streams count what was checked.
	Segments int   `json:"segments"`
	Events   int64 `json:"events"`
	Streams  int64 `json:"streams"`
	// Problems lists every finding, each naming its object and/or stream.
	Problems []Problem `json:"problems"`
	// Against is the comparison with the live source, when requested.
	Against *AgainstReport `json:"against,omitempty"`
}

// Problem is one finding of Verify.
type Problem struct {
	// Severity is "failure" or "warning".
	Severity string `json:"severity"`
	// Object is the object key concerned ("" when none).
	Object string `json:"object,omitempty"`
	// Stream is the stream concerned ("" when none).
	Stream string `json:"stream,omitempty"`
	// Message says what is wrong.
	Message string `json:"message"`
}

// AgainstReport compares the archive with the live source.
type AgainstReport struct {
	// Source is the source URL with secrets redacted.
	Source string `json:"source"`
	// Table is the compared table.
	Table string `json:"table"`
	// SourceEvents counts source rows committed at or before the watermark.
	SourceEvents int64 `json:"source_events"`
	// Missing counts those absent from the archive.
	Missing int64 `json:"missing"`
	// Extra counts archived events absent from the source.
	Extra int64 `json:"extra"`
	// AfterWatermark counts archived events whose source commit time is
	// after the watermark (a warning: the watermark lags what is archived).
	AfterWatermark int64 `json:"after_watermark"`
}

// maxProblems bounds the problems a report lists in detail.
const maxProblems = 200

type verifier struct {
	rep            *Report
	dropped        int
	seed           maphash.Seed
	ids            []idRef       // digest of every archived event id, with its segment
	stats          *versionStats // per-stream version continuity, order-independent
	segs           []string      // segment keys by index
	failedSegments int           // segments that could not be read
}

// idRef is an archived event id's 64-bit digest and the segment holding it.
type idRef struct {
	h   uint64
	seg int32
}

func (v *verifier) problem(sev, object, stream, format string, args ...any) {
	if sev == SeverityFailure {
		v.rep.Status = StatusFailure
	} else if v.rep.Status == StatusOK {
		v.rep.Status = StatusWarning
	}
	if len(v.rep.Problems) >= maxProblems {
		v.dropped++
		return
	}
	v.rep.Problems = append(v.rep.Problems, Problem{Severity: sev, Object: object, Stream: stream, Message: fmt.Sprintf(format, args...)})
}

// Verify checks the whole archive: the catalog's hash chain (checked by
// Open) and catalog.Verify's findings; every segment's checksum, decryption
// and agreement with its catalog entry; every event's structure; per-stream
// version continuity across the archive; no event id twice; chain gaps; and
// with AgainstURL, completeness against the live source. It returns an
// error only when it cannot run (store or source unreachable); findings go
// into the Report.
func Verify(ctx context.Context, a *Archive, opts VerifyOptions) (*Report, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	v := &verifier{rep: &Report{Status: StatusOK, Store: a.Store.String(), Window: a.Window(), Problems: []Problem{}},
		seed: maphash.MakeSeed()}
	if err := v.catalogChecks(ctx, a); err != nil {
		return nil, err
	}
	refs := a.Catalog.Segments()
	if err := v.scan(ctx, a, refs, opts); err != nil {
		return nil, err
	}
	if v.stats != nil {
		v.continuity()
	}
	if err := v.duplicates(ctx, a, refs, opts); err != nil {
		return nil, err
	}
	if opts.AgainstURL != "" {
		if err := v.against(ctx, a, opts); err != nil {
			return nil, err
		}
	}
	if v.dropped > 0 {
		v.rep.Problems = append(v.rep.Problems, Problem{Severity: SeverityWarning,
			Message: fmt.Sprintf("%d more problems not listed", v.dropped)})
	}
	return v.rep, nil
}

// scan downloads every segment in chain order and checks it.
func (v *verifier) scan(ctx context.Context, a *Archive, refs []catalog.SegmentRef, opts VerifyOptions) error {
	f := &fetcher{store: a.Store, keyring: a.Keyring, target: farFuture, maxBytes: opts.MaxSegmentBytes, progress: opts.Progress}
	opts.Progress.SegmentsTotal.Store(int64(len(refs)))
	for _, r := range refs {
		opts.Progress.BytesTotal.Add(r.Size)
		opts.Progress.EventsTotal.Add(int64(r.Events))
	}
	opts.Progress.setPhase("verify")
	opts.Progress.start()
	pl := startPipelineWith(ctx, f.fetch, refs, opts.Parallel, true)
	defer pl.stop()
	for {
		got, ok := pl.nextAny(ctx)
		if !ok {
			break
		}
		pl.release()
		opts.Progress.SegmentsDone.Add(1)
		v.rep.Segments++
		v.segs = append(v.segs, got.ref.Key)
		if got.err != nil {
			if isInterrupted(got.err) {
				return got.err
			}
			if errors.Is(got.err, ErrCredentials) {
				return got.err
			}
			v.problem(SeverityFailure, got.ref.Key, "", "%v", got.err)
			v.failedSegments++
			continue
		}
		v.checkEvents(got, int32(len(v.segs)-1))
		opts.Progress.EventsApplied.Add(int64(len(got.events)))
	}
	return ctx.Err()
}

var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

const uuidOID = 2950

// checkEvents checks each event's structure and its stream's continuity.
func (v *verifier) checkEvents(got *fetched, seg int32) {
	t := &got.table
	l := event.LayoutOf(*t)
	key := got.ref.Key
	for i, e := range got.events {
		v.rep.Events++
		where := func() string { return fmt.Sprintf("event %d (%s)", i, e) }
		if l.EventID >= 0 {
			id := e.Value(l.EventID)
			switch {
			case id == nil || len(id) == 0:
				v.problem(SeverityFailure, key, "", "%s has no event id", where())
			case t.Columns[l.EventID].OID == uuidOID && (len(id) != 36 || string(id) == "00000000-0000-0000-0000-000000000000"):
				v.problem(SeverityFailure, key, "", "%s has an invalid event id %q", where(), clip(string(id)))
			default:
				v.ids = append(v.ids, idRef{h: maphash.Bytes(v.seed, id), seg: seg})
			}
		}
		var stream string
		if l.StreamID >= 0 {
			sid := e.Value(l.StreamID)
			stream = string(sid)
			if len(sid) == 0 {
				v.problem(SeverityFailure, key, "", "%s has an empty stream id", where())
			}
		}
		for _, c := range []int{l.EventData, l.Metadata} {
			if c < 0 {
				continue
			}
			if val := e.Value(c); val != nil && !json.Valid(val) {
				v.problem(SeverityFailure, key, stream, "%s: column %s is not valid JSON", where(), t.Columns[c].Name)
			}
		}
		if v.stats == nil {
			v.stats = newVersionStats(*t)
		}
		v.stats.add(e)
	}
}

// continuity reports streams whose versions are not 1…n across the
// archive: one problem per stream, or a single summary when unreadable
// segments already explain the holes.
func (v *verifier) continuity() {
	v.rep.Streams = int64(len(v.stats.streams) + len(v.stats.invalid))
	if v.failedSegments > 0 {
		bad, n := v.stats.broken(maxExamples)
		if n > 0 {
			names := make([]string, len(bad))
			for i, b := range bad {
				names[i] = b.String()
			}
			v.problem(SeverityFailure, "", "", "%d streams have versions not contiguous from 1, as expected with %d unreadable segments (e.g. %s)",
				n, v.failedSegments, strings.Join(names, ", "))
		}
		return
	}
	bad, n := v.stats.broken(maxProblems)
	for _, b := range bad {
		v.problem(SeverityFailure, "", b.ID, "versions are not contiguous from 1 across the archive (%s)", b.Detail)
	}
	v.dropped += n - len(bad)
}

// duplicates finds event ids archived twice: equal 64-bit digests are
// candidates, confirmed by re-reading the segments that hold them.
func (v *verifier) duplicates(ctx context.Context, a *Archive, refs []catalog.SegmentRef, opts VerifyOptions) error {
	slices.SortFunc(v.ids, func(x, y idRef) int {
		if x.h != y.h {
			if x.h < y.h {
				return -1
			}
			return 1
		}
		return int(x.seg - y.seg)
	})
	cand := map[uint64]bool{}
	segs := map[int32]bool{}
	for i := 1; i < len(v.ids); i++ {
		if v.ids[i].h == v.ids[i-1].h {
			cand[v.ids[i].h] = true
			segs[v.ids[i].seg], segs[v.ids[i-1].seg] = true, true
		}
	}
	if len(cand) == 0 {
		return nil
	}
	f := &fetcher{store: a.Store, keyring: a.Keyring, target: farFuture, maxBytes: opts.MaxSegmentBytes, progress: &Progress{}}
	where := map[string][]string{} // id → segments
	for i := range refs {
		if !segs[int32(i)] {
			continue
		}
		got, err := f.fetch(ctx, refs[i])
		if err != nil {
			continue // already reported
		}
		l := event.LayoutOf(got.table)
		for _, e := range got.events {
			id := e.Value(l.EventID)
			if cand[maphash.Bytes(v.seed, id)] {
				where[string(id)] = append(where[string(id)], refs[i].Key)
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(where)) {
		if objs := where[id]; len(objs) > 1 {
			v.problem(SeverityFailure, objs[0], "", "event id %s is archived %d times (in %v)", id, len(objs), objs)
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
