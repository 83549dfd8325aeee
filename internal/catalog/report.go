package catalog

import (
	"fmt"
	"sort"
	"strings"
)

// Severity grades a verification finding.
type Severity int

const (
	// OK is an informational finding: something checked and found sound.
	OK Severity = iota
	// Warning is something unusual that does not make a restore wrong.
	Warning
	// Failure is damage: a restore from this archive may be wrong or impossible.
	Failure
)

// String returns "OK", "WARNING" or "FAILURE".
func (s Severity) String() string {
	switch s {
	case OK:
		return "OK"
	case Warning:
		return "WARNING"
	case Failure:
		return "FAILURE"
	}
	return fmt.Sprintf("Severity(%d)", int(s))
}

// MarshalText implements encoding.TextMarshaler.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Finding is one result of Verify.
type Finding struct {
	// Severity grades it.
	Severity Severity `json:"severity"`
	// Check names the check: chain, checkpoint, epoch, object, checksum,
	// decode, trailer, continuity, transaction, stream, event-id, unlisted,
	// resync, summary.
	Check string `json:"check"`
	// Object is the object concerned, if any.
	Object string `json:"object,omitempty"`
	// Stream is the stream concerned, if any.
	Stream string `json:"stream,omitempty"`
	// Message says what was found.
	Message string `json:"message"`
	// KnownGap is the seq of the known-gap entry that accepts this
	// finding (0 for none): it is reported, and does not count towards
	// the report's status (Worst).
	KnownGap uint64 `json:"known_gap,omitempty"`
}

// String formats the finding on one line.
func (f Finding) String() string {
	var b strings.Builder
	sev := f.Severity.String()
	if f.KnownGap != 0 {
		sev = "KNOWN"
	}
	fmt.Fprintf(&b, "%-7s %s", sev, f.Check)
	if f.Object != "" {
		fmt.Fprintf(&b, " %s", f.Object)
	}
	if f.Stream != "" {
		fmt.Fprintf(&b, " stream %s", f.Stream)
	}
	fmt.Fprintf(&b, ": %s", f.Message)
	if f.KnownGap != 0 {
		fmt.Fprintf(&b, " (accepted by known-gap entry %d)", f.KnownGap)
	}
	return b.String()
}

// maxFindingsPerCheck bounds the findings one check reports in detail; the
// rest are counted in a final finding.
const maxFindingsPerCheck = 100

// Report is the outcome of Verify.
type Report struct {
	// Findings are in the order the checks ran.
	Findings []Finding `json:"findings"`
	// Entries is the number of catalog entries read.
	Entries int `json:"entries"`
	// Segments is the number of segments listed; Verified how many of them
	// passed every object-level check.
	Segments int `json:"segments"`
	Verified int `json:"verified"`
	// Events, Transactions and Streams count what the verified segments hold.
	Events       int `json:"events"`
	Transactions int `json:"transactions"`
	Streams      int `json:"streams"`
	// Debris counts unlisted segment objects recorded as debris and unchanged.
	Debris int `json:"debris"`
	// Superseded counts objects merges replaced that are still in the store
	// (garbage collection deletes them after its grace period).
	Superseded int `json:"superseded"`
	// Watermark is the catalog's watermark.
	Watermark Watermark `json:"watermark"`
	// Known counts the findings known gaps accept (see Finding.KnownGap).
	Known int `json:"known"`
	// Sampled is set when only a share of the segments was read
	// (VerifyOptions.Sample): the checks across segments did not run.
	Sampled bool `json:"sampled,omitempty"`

	// catalog is the catalog as verify folded it from the entries.
	catalog *Catalog

	perCheck   map[string]int
	suppressed map[string]int
}

func (r *Report) add(f Finding) {
	if r.perCheck == nil {
		r.perCheck, r.suppressed = map[string]int{}, map[string]int{}
	}
	if f.Severity > OK && f.Check != "chain" && r.catalog != nil {
		f.KnownGap = r.catalog.knownGapFor(f.Object, f.Stream)
	}
	key := f.Check + "/" + f.Severity.String()
	if f.KnownGap != 0 {
		key = f.Check + "/KNOWN"
		r.Known++
	}
	r.perCheck[key]++
	if r.perCheck[key] > maxFindingsPerCheck {
		r.suppressed[key]++
		return
	}
	r.Findings = append(r.Findings, f)
}

func (r *Report) addf(sev Severity, check, object, stream, format string, args ...any) {
	r.add(Finding{Severity: sev, Check: check, Object: object, Stream: stream, Message: fmt.Sprintf(format, args...)})
}

// finish appends a finding per check whose findings were cut short.
func (r *Report) finish() {
	keys := make([]string, 0, len(r.suppressed))
	for key := range r.suppressed {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		n := r.suppressed[key]
		check, sev, _ := strings.Cut(key, "/")
		s, known := Warning, uint64(0)
		switch sev {
		case Failure.String():
			s = Failure
		case "KNOWN": // only set when the catalog records known gaps
			s, known = Failure, r.catalog.knownGaps[0].Seq
		}
		r.Findings = append(r.Findings, Finding{Severity: s, Check: check, KnownGap: known,
			Message: fmt.Sprintf("%d more findings of this check not listed", n)})
	}
	r.suppressed = map[string]int{}
}

// Catalog returns the catalog as verify folded it from the entries (up to
// a break in the chain, if any): its segments, watermark and window, with
// no second read of the catalog.
func (r *Report) Catalog() *Catalog { return r.catalog }

// Worst returns the highest severity found (OK when there is nothing else).
func (r *Report) Worst() Severity {
	w := OK
	for _, f := range r.Findings {
		if f.KnownGap == 0 {
			w = max(w, f.Severity)
		}
	}
	return w
}

// OK reports whether no finding is a Failure.
func (r *Report) OK() bool { return r.Worst() < Failure }

// Count returns the number of findings of severity s (including those not
// listed in detail).
func (r *Report) Count(s Severity) int {
	n := 0
	for key, c := range r.perCheck {
		if strings.HasSuffix(key, "/"+s.String()) {
			n += c
		}
	}
	return n
}
