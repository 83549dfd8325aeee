package restore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"strconv"

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
	// SeverityKnown is a warning or failure a known-gap catalog entry
	// accepts (catalog.KnownGap): reported, not counted in Status.
	SeverityKnown = "known"
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
	// Sample, when between 0 and 1, reads only that share of the segments
	// (catalog.VerifyOptions.Sample); 0 reads every one.
	Sample float64
	// Visit, when set, sees every event of every segment that passed its
	// object checks, in chain order (the drill builds its oracle there).
	Visit func(t *event.Table, e *event.Event)
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
	// Known counts the problems known gaps accept.
	Known int `json:"known"`
	// Sampled is set when only a share of the segments was read: the
	// checks across segments did not run.
	Sampled bool `json:"sampled,omitempty"`
	// Against is the comparison with the live source, when requested.
	Against *AgainstReport `json:"against,omitempty"`
	// Copy is the comparison of a copy with its primary (CompareCopy),
	// when requested.
	Copy *CopyReport `json:"copy,omitempty"`
	// Locks is the retention-lock check against a store's policy
	// (CheckLocks), when requested.
	Locks *LockReport `json:"locks,omitempty"`
}

// Problem is one finding of Verify.
type Problem struct {
	// Severity is "failure", "warning" or "known" (accepted by a known gap).
	Severity string `json:"severity"`
	// Check names the check: those of catalog.Verify (chain, checkpoint,
	// epoch, object, checksum, decode, trailer, continuity, merge,
	// transaction, stream, event-id, unlisted) and "structure",
	// "merge" (a merged segment's events digest), "against".
	Check string `json:"check"`
	// Object is the object key concerned ("" when none).
	Object string `json:"object,omitempty"`
	// Stream is the stream concerned ("" when none).
	Stream string `json:"stream,omitempty"`
	// Message says what is wrong.
	Message string `json:"message"`
	// KnownGap is the seq of the known-gap entry that accepts it (0: none).
	KnownGap uint64 `json:"known_gap,omitempty"`
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
	rep     *Report
	dropped map[string]int
	seed    maphash.Seed
	ids     []idRef  // digest of every archived event id, with its segment
	segs    []string // segment keys by index
	lastSeg string
	keepIDs bool
	known   *catalog.Catalog // accepts problems by known gap, once loaded
}

// idRef is an archived event id's 64-bit digest and the segment holding it.
type idRef struct {
	h   uint64
	seg int32
}

func (v *verifier) problem(sev, check, object, stream, format string, args ...any) {
	var known uint64
	if v.known != nil {
		if known = v.known.KnownGapFor(object, stream); known != 0 {
			sev = SeverityKnown
			v.rep.Known++
		}
	}
	v.status(sev)
	if v.dropped[check] > 0 || v.count(check) >= maxProblems {
		v.dropped[check]++
		return
	}
	v.rep.Problems = append(v.rep.Problems, Problem{Severity: sev, Check: check, Object: object, Stream: stream, Message: fmt.Sprintf(format, args...), KnownGap: known})
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

// Verify checks the archive in store in one pass: catalog.VerifyWith
// reads every segment object once (Parallel at a time, each read retried
// when cut short) and checks the catalog's hash chain, checkpoints and
// epochs, every segment's presence, size, SHA-256, decryption and
// agreement with its entry, transaction completeness, chain links,
// event-id uniqueness and the one stream rule (in chain order each
// stream's versions are 1, 2, 3, …). Verify adds every event's structure
// (an event id, a non-empty stream id, data and metadata that parse as
// JSON) as the events stream past, and with AgainstURL completeness
// against the live source. It returns an error only when it cannot run
// (store or source unreachable, credentials rejected); findings go into
// the Report.
func Verify(ctx context.Context, store objstore.Store, opts VerifyOptions) (*Report, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	pr := opts.Progress
	if pr == nil {
		pr = &Progress{}
	}
	v := &verifier{rep: &Report{Status: StatusOK, Store: store.String(), Problems: []Problem{}},
		seed: maphash.MakeSeed(), dropped: map[string]int{}, keepIDs: opts.AgainstURL != ""}
	pr.setPhase("verify")
	pr.start()
	var layout event.Layout
	var layoutOf *event.Table
	crep, err := catalog.VerifyWith(ctx, store, catalog.VerifyOptions{
		Keyring: opts.Keyring, Parallel: opts.Parallel, Sample: opts.Sample, StreamsFromOne: true,
		Planned: func(refs []catalog.SegmentRef) {
			pr.SegmentsTotal.Store(int64(len(refs)))
			for _, r := range refs {
				pr.BytesTotal.Add(r.Size)
				pr.EventsTotal.Add(int64(r.Events))
			}
		},
		Visit: func(ref catalog.SegmentRef, i int, t *event.Table, e *event.Event) {
			if ref.Key != v.lastSeg {
				v.lastSeg = ref.Key
				v.segs = append(v.segs, ref.Key)
				if layoutOf != t {
					layout, layoutOf = event.LayoutOf(*t), t
				}
			}
			v.checkEvent(t, layout, ref.Key, i, e, int32(len(v.segs)-1))
			if opts.Visit != nil {
				opts.Visit(t, e)
			}
			pr.EventsApplied.Add(1)
		},
		Done: func(ref catalog.SegmentRef, n int64) {
			pr.BytesDownloaded.Add(n)
			pr.SegmentsDone.Add(1)
		},
	})
	if err != nil {
		return nil, classifyStoreErr(store, err)
	}
	c := crep.Catalog()
	v.acceptKnown(c)
	v.catalogFindings(crep)
	if c.NextSeq() == 1 && !chainBroken(crep) {
		return nil, failf(ErrNoArchive, "check --store; `restorer list --store URL` shows what an archive holds",
			"no archive at %s: the store holds no catalog", store)
	}
	a := &Archive{Store: store, Keyring: opts.Keyring, Catalog: c}
	v.rep.Window = a.Window()
	v.rep.Segments = crep.Segments
	v.rep.Streams = int64(crep.Streams)
	v.rep.Sampled = crep.Sampled
	if opts.AgainstURL != "" && !chainBroken(crep) {
		slices.SortFunc(v.ids, func(x, y idRef) int { return cmp.Compare(x.h, y.h) })
		if err := v.against(ctx, a, opts); err != nil {
			return nil, err
		}
	}
	v.finish()
	return v.rep, nil
}

// chainBroken reports whether verify found the catalog's hash chain broken
// (then the catalog it folded ends early and a comparison with the source
// would only repeat that).
func chainBroken(r *catalog.Report) bool {
	for _, f := range r.Findings {
		if f.Check == "chain" && f.Severity == catalog.Failure {
			return true
		}
	}
	return false
}

// catalogFindings folds catalog.VerifyWith's findings into the report
// (catalog.Verify bounds its own findings per check).
func (v *verifier) catalogFindings(crep *catalog.Report) {
	v.rep.Entries = crep.Entries
	for _, f := range crep.Findings {
		if f.Severity == catalog.OK {
			v.rep.Notes = append(v.rep.Notes, f.Check+": "+f.Message)
			continue
		}
		sev := SeverityWarning
		switch {
		case f.KnownGap != 0:
			sev = SeverityKnown
			v.rep.Known++
		case f.Severity == catalog.Failure:
			sev = SeverityFailure
		}
		v.rep.Problems = append(v.rep.Problems, Problem{Severity: sev, Check: f.Check, Object: f.Object, Stream: f.Stream, Message: f.Message, KnownGap: f.KnownGap})
		v.status(sev)
	}
}

// acceptKnown marks the problems Verify's own checks found (structure)
// that a known gap accepts, and sets the status from what remains.
func (v *verifier) acceptKnown(c *catalog.Catalog) {
	v.known = c
	v.rep.Status = StatusOK
	for i := range v.rep.Problems {
		p := &v.rep.Problems[i]
		if seq := c.KnownGapFor(p.Object, p.Stream); seq != 0 {
			p.Severity, p.KnownGap = SeverityKnown, seq
			v.rep.Known++
		}
		v.status(p.Severity)
	}
}

// status raises the report's status for a problem of severity sev.
func (v *verifier) status(sev string) {
	switch {
	case sev == SeverityFailure:
		v.rep.Status = StatusFailure
	case sev == SeverityWarning && v.rep.Status == StatusOK:
		v.rep.Status = StatusWarning
	}
}

// finish lists how many problems of each check were not listed.
func (v *verifier) finish() {
	for _, check := range slices.Sorted(maps.Keys(v.dropped)) {
		v.rep.Problems = append(v.rep.Problems, Problem{Severity: SeverityWarning, Check: check,
			Message: fmt.Sprintf("%d more %s problems not listed", v.dropped[check], check)})
	}
}

const uuidOID = 2950

// checkEvent checks an event's structure (the i-th of segment key) and
// records its id for the comparison with the source.
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
		case v.keepIDs:
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
	if l.StreamVersion >= 0 {
		if n, err := strconv.ParseInt(string(e.Value(l.StreamVersion)), 10, 64); err != nil || n < 1 {
			v.problem(SeverityFailure, "structure", key, stream, "%s has an invalid stream version %q", where(), clip(string(e.Value(l.StreamVersion))))
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
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
