package restore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
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
	// Keyring decrypts encrypted segments; nil reads plaintext only.
	Keyring *segment.Keyring
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
	// Window is the restorable window (zero when the catalog cannot be loaded).
	Window Window `json:"window"`
	// Entries is the number of catalog entries read.
	Entries int `json:"catalog_entries"`
	// Segments, Events and Streams count what was checked.
	Segments int   `json:"segments"`
	Events   int64 `json:"events"`
	Streams  int64 `json:"streams"`
	// Problems lists every warning and failure, each naming its check and
	// its object and/or stream.
	Problems []Problem `json:"problems"`
	// Notes are informational findings (what was checked and passed).
	Notes []string `json:"notes,omitempty"`
	// Against is the comparison with the live source, when requested.
	Against *AgainstReport `json:"against,omitempty"`
}

// Problem is one finding of Verify.
type Problem struct {
	// Severity is "failure" or "warning".
	Severity string `json:"severity"`
	// Check names the check: those of catalog.Verify (chain, checkpoint,
	// epoch, object, checksum, decode, trailer, continuity, merge,
	// transaction, stream, event-id, unlisted) and "structure", "versions",
	// "merge" (a merged segment's events digest), "against".
	Check string `json:"check"`
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

// maxProblems bounds the problems of one check listed in detail.
const maxProblems = 200

type verifier struct {
	// diverged are the stretches resyncs found diverged (left out of the
	// event checks, reported by catalog.Verify).
	diverged []catalog.DivergedRange
	rep      *Report
	dropped  map[string]int
	seed     maphash.Seed
	ids      []idRef       // digest of every archived event id, with its segment
	stats    *versionStats // per-stream version continuity, order-independent
	segs     []string      // segment keys by index
	named    map[string]bool
}

// idRef is an archived event id's 64-bit digest and the segment holding it.
type idRef struct {
	h   uint64
	seg int32
}

func (v *verifier) problem(sev, check, object, stream, format string, args ...any) {
	if sev == SeverityFailure {
		v.rep.Status = StatusFailure
	} else if v.rep.Status == StatusOK {
		v.rep.Status = StatusWarning
	}
	if v.dropped[check] > 0 || v.count(check) >= maxProblems {
		v.dropped[check]++
		return
	}
	v.rep.Problems = append(v.rep.Problems, Problem{Severity: sev, Check: check, Object: object, Stream: stream, Message: fmt.Sprintf(format, args...)})
}

func (v *verifier) count(check string) int {
	n := 0
	for _, p := range v.rep.Problems {
		if p.Check == check {
			n++
		}
	}
	return n
}

// Verify checks the archive in store. catalog.Verify checks the catalog's
// hash chain, checkpoints and epochs, every segment's presence, size,
// SHA-256, decryption and agreement with its entry, transaction
// completeness, chain links, per-stream version order and event-id
// uniqueness. Verify adds every event's structure (an event id, a non-empty
// stream id, a version ≥ 1, data and metadata that parse as JSON), that
// each stream's versions are exactly 1…n across the archive, and with
// AgainstURL completeness against the live source. It returns an error
// only when it cannot run (store or source unreachable, credentials
// rejected); findings go into the Report.
func Verify(ctx context.Context, store objstore.Store, opts VerifyOptions) (*Report, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	v := &verifier{rep: &Report{Status: StatusOK, Store: store.String(), Problems: []Problem{}},
		seed: maphash.MakeSeed(), dropped: map[string]int{}, named: map[string]bool{}}
	opts.Progress.setPhase("verify")
	opts.Progress.start()
	failed, err := v.catalogChecks(ctx, store, opts.Keyring)
	if err != nil {
		return nil, err
	}
	a, err := Open(ctx, store, opts.Keyring)
	switch {
	case errors.Is(err, ErrIntegrity):
		// the chain is broken: catalog.Verify reported where
		v.finish()
		return v.rep, nil
	case err != nil:
		return nil, err
	}
	v.rep.Window = a.Window()
	v.diverged = a.Catalog.Diverged()
	var refs []catalog.SegmentRef
	for _, r := range a.Catalog.Segments() {
		if !failed[r.Key] {
			refs = append(refs, r)
		}
	}
	if err := v.scan(ctx, a, refs, opts); err != nil {
		return nil, err
	}
	if v.stats != nil {
		v.continuity(len(failed))
	}
	if opts.AgainstURL != "" {
		slices.SortFunc(v.ids, func(x, y idRef) int { return cmp.Compare(x.h, y.h) })
		if err := v.against(ctx, a, opts); err != nil {
			return nil, err
		}
	}
	v.finish()
	return v.rep, nil
}

// catalogChecks runs catalog.Verify and folds its findings in; it returns
// the segments it found unreadable, which the event checks skip.
func (v *verifier) catalogChecks(ctx context.Context, store objstore.Store, kr *segment.Keyring) (map[string]bool, error) {
	crep, err := catalog.Verify(ctx, store, kr)
	if err != nil {
		return nil, classifyStoreErr(store, err)
	}
	v.rep.Entries = crep.Entries
	failed := map[string]bool{}
	for _, f := range crep.Findings {
		switch f.Severity {
		case catalog.OK:
			v.rep.Notes = append(v.rep.Notes, f.Check+": "+f.Message)
			continue
		case catalog.Failure:
			switch f.Check {
			case "object", "checksum", "decode", "trailer":
				failed[f.Object] = true
			}
		}
		if f.Stream != "" {
			v.named[f.Stream] = true
		}
		sev := SeverityWarning
		if f.Severity == catalog.Failure {
			sev = SeverityFailure
		}
		// catalog.Verify bounds its own findings per check
		v.rep.Problems = append(v.rep.Problems, Problem{Severity: sev, Check: f.Check, Object: f.Object, Stream: f.Stream, Message: f.Message})
		if sev == SeverityFailure {
			v.rep.Status = StatusFailure
		} else if v.rep.Status == StatusOK {
			v.rep.Status = StatusWarning
		}
	}
	return failed, nil
}

// finish lists how many problems of each check were not listed.
func (v *verifier) finish() {
	for _, check := range slices.Sorted(maps.Keys(v.dropped)) {
		v.rep.Problems = append(v.rep.Problems, Problem{Severity: SeverityWarning, Check: check,
			Message: fmt.Sprintf("%d more %s problems not listed", v.dropped[check], check)})
	}
}

// scan downloads the readable segments in chain order (in parallel, into
// temporary files) and streams each one's events through the checks.
func (v *verifier) scan(ctx context.Context, a *Archive, refs []catalog.SegmentRef, opts VerifyOptions) error {
	f := &fetcher{store: a.Store, keyring: a.Keyring, maxBytes: opts.MaxSegmentBytes, progress: opts.Progress}
	opts.Progress.SegmentsTotal.Store(int64(len(refs)))
	for _, r := range refs {
		opts.Progress.BytesTotal.Add(r.Size)
		opts.Progress.EventsTotal.Add(int64(r.Events))
	}
	pl := startPipeline(ctx, f, refs, opts.Parallel, true)
	defer pl.stop()
	for {
		got, ok := pl.nextAny(ctx)
		if !ok {
			break
		}
		v.rep.Segments++
		v.segs = append(v.segs, got.ref.Key)
		err := got.err
		if err == nil {
			err = v.checkSegment(got, int32(len(v.segs)-1), a.Keyring, opts.Progress)
		}
		pl.release(got)
		opts.Progress.SegmentsDone.Add(1)
		if err != nil {
			if isInterrupted(err) || errors.Is(err, ErrCredentials) {
				return err
			}
			// read fine a moment ago in catalog.Verify: changed since
			v.problem(SeverityFailure, "object", got.ref.Key, "", "%v", err)
		}
	}
	return ctx.Err()
}

const uuidOID = 2950

// checkSegment streams one downloaded segment's events through the checks
// (catalog.Verify has already compared a merged segment's events digest
// with its merge record). It returns the segment's failure to decode or to match its
// catalog entry; the events before it are checked.
func (v *verifier) checkSegment(got *fetched, seg int32, kr *segment.Keyring, pr *Progress) error {
	r, err := got.file.open(kr)
	if err != nil {
		return err
	}
	defer r.Close()
	t := r.Header().Table
	l := event.LayoutOf(t)
	if v.stats == nil {
		v.stats = newVersionStats(t)
	}
	for i := 0; ; i++ {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return classifySegmentErr(got.ref, err)
		}
		if err := checkEvent(got.ref, e); err != nil {
			return err
		}
		if catalog.IsDiverged(v.diverged, e.EndLSN) {
			continue // diverged history (catalog.Verify reports it): not the source's events
		}
		v.checkEvent(&t, l, got.ref.Key, i, e, seg)
		pr.EventsApplied.Add(1)
	}
	return nil
}

// checkEvent checks an event's structure (the i-th of segment key) and
// records it for the stream and id checks.
func (v *verifier) checkEvent(t *event.Table, l event.Layout, key string, i int, e *event.Event, seg int32) {
	v.rep.Events++
	where := func() string { return fmt.Sprintf("event %d (%s)", i, e) }
	if l.EventID >= 0 {
		id := e.Value(l.EventID)
		switch {
		case len(id) == 0:
			v.problem(SeverityFailure, "structure", key, "", "%s has no event id", where())
		case t.Columns[l.EventID].OID == uuidOID && (len(id) != 36 || string(id) == "00000000-0000-0000-0000-000000000000"):
			v.problem(SeverityFailure, "structure", key, "", "%s has an invalid event id %q", where(), clip(string(id)))
		default:
			v.ids = append(v.ids, idRef{h: maphash.Bytes(v.seed, id), seg: seg})
		}
	}
	var stream string
	if l.StreamID >= 0 {
		sid := e.Value(l.StreamID)
		stream = string(sid)
		if len(sid) == 0 {
			v.problem(SeverityFailure, "structure", key, "", "%s has an empty stream id", where())
		}
	}
	for _, c := range []int{l.EventData, l.Metadata} {
		if c < 0 {
			continue
		}
		if val := e.Value(c); val != nil && !json.Valid(val) {
			v.problem(SeverityFailure, "structure", key, stream, "%s: column %s is not valid JSON", where(), t.Columns[c].Name)
		}
	}
	v.stats.add(e)
}

// continuity reports streams whose versions are not exactly 1…n across the
// archive and that catalog.Verify did not already name (it checks that
// versions rise by one in chain order, not that they start at 1): one
// problem per stream, or a summary when unreadable segments explain holes.
func (v *verifier) continuity(unreadable int) {
	v.rep.Streams = int64(len(v.stats.streams) + len(v.stats.invalid))
	bad, _ := v.stats.broken(len(v.stats.streams) + len(v.stats.invalid))
	var fresh []brokenStream
	for _, b := range bad {
		if !v.named[b.ID] {
			fresh = append(fresh, b)
		}
	}
	if len(fresh) == 0 {
		return
	}
	if unreadable > 0 {
		names := make([]string, 0, maxExamples)
		for _, b := range fresh[:min(len(fresh), maxExamples)] {
			names = append(names, b.String())
		}
		v.problem(SeverityFailure, "versions", "", "", "%d streams have versions not contiguous from 1, as expected with %d unreadable segments (e.g. %s)",
			len(fresh), unreadable, strings.Join(names, ", "))
		return
	}
	for _, b := range fresh {
		v.problem(SeverityFailure, "versions", "", b.ID, "versions are not exactly 1…n across the archive (%s)", b.Detail)
	}
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
