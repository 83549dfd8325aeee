package merge

import (
	"fmt"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
)

// Defaults of Policy fields left zero.
const (
	// DefaultSettle is how long past a bucket's end (by the watermark's
	// commit time) a merge of that bucket waits when no later segment
	// shows that the bucket is complete.
	DefaultSettle = 30 * time.Second
	// DefaultMaxRawBytes caps the uncompressed records of one merged
	// segment; a larger bucket becomes several merged segments.
	DefaultMaxRawBytes = 1 << 30
	// DefaultMaxEventBytes is Policy.MaxEventBytes when it is 0.
	DefaultMaxEventBytes = 16 << 20
)

// DefaultLevels are the spans of merge levels 1, 2 and 3: the flush
// segments of a minute become one, a hour's minutes one, a day's hours one.
var DefaultLevels = []time.Duration{time.Minute, time.Hour, 24 * time.Hour}

// Policy says which live segments are merged, and when.
type Policy struct {
	// Levels are the bucket spans of levels 1…n, each a multiple of the one
	// before; nil means DefaultLevels, an empty non-nil slice disables merging.
	Levels []time.Duration
	// Settle is how long a bucket stays open after its end by the
	// watermark's commit time (DefaultSettle).
	Settle time.Duration
	// MaxRawBytes caps one merged segment's uncompressed records
	// (DefaultMaxRawBytes).
	MaxRawBytes int64
	// MaxInputs caps the segments one merge replaces (catalog.MaxMergeInputs).
	MaxInputs int
	// MaxEventBytes leaves unmerged a segment whose events average more
	// raw bytes than this (DefaultMaxEventBytes): a merge holds an event,
	// and a block of them, in memory, and a segment holding a value of
	// hundreds of megabytes (a transaction with an external value gets
	// segments of its own) would not fit the archiver's memory.
	MaxEventBytes int64
}

// withDefaults returns p with zero fields set to their defaults.
func (p Policy) withDefaults() Policy {
	if p.Levels == nil {
		p.Levels = DefaultLevels
	}
	if p.Settle <= 0 {
		p.Settle = DefaultSettle
	}
	if p.MaxRawBytes <= 0 {
		p.MaxRawBytes = DefaultMaxRawBytes
	}
	if p.MaxEventBytes <= 0 {
		p.MaxEventBytes = DefaultMaxEventBytes
	}
	if p.MaxInputs <= 1 || p.MaxInputs > catalog.MaxMergeInputs {
		p.MaxInputs = catalog.MaxMergeInputs
	}
	return p
}

// Validate reports a policy that cannot work.
func (p Policy) Validate() error {
	if len(p.Levels) > catalog.MaxLevel {
		return fmt.Errorf("merge policy: %d levels, at most %d", len(p.Levels), catalog.MaxLevel)
	}
	for i, span := range p.Levels {
		switch {
		case span < time.Second || span%time.Second != 0:
			return fmt.Errorf("merge policy: level %d spans %s; use whole seconds, at least 1s", i+1, span)
		case i > 0 && span%p.Levels[i-1] != 0:
			return fmt.Errorf("merge policy: level %d spans %s, not a multiple of level %d's %s", i+1, span, i, p.Levels[i-1])
		case (24*time.Hour)%span != 0 && span%(24*time.Hour) != 0:
			return fmt.Errorf("merge policy: level %d spans %s; use a divisor or a multiple of a day so buckets align to UTC days", i+1, span)
		}
	}
	return nil
}

// ParseLevels parses "1m,1h,24h" (or "off" for none) into level spans.
func ParseLevels(s string) ([]time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "off" || s == "none" {
		return []time.Duration{}, nil
	}
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("merge levels %q: %w", s, err)
		}
		out = append(out, d)
	}
	if err := (Policy{Levels: out}).Validate(); err != nil {
		return nil, err
	}
	return out, nil
}

// FormatLevels is the inverse of ParseLevels.
func FormatLevels(levels []time.Duration) string {
	if len(levels) == 0 {
		return "off"
	}
	parts := make([]string, len(levels))
	for i, d := range levels {
		parts[i] = d.String()
	}
	return strings.Join(parts, ",")
}
