package restore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// TimeSpec is a parsed --to value: either a fixed instant or "latest" (the
// archive's watermark, known only once the catalog is loaded).
type TimeSpec struct {
	// Latest is true for "latest".
	Latest bool
	// Time is the instant, truncated to microseconds, in UTC; zero when Latest.
	Time time.Time
}

// Resolve returns the instant the spec names, given the archive's watermark
// commit time.
func (s TimeSpec) Resolve(watermark time.Time) time.Time {
	if s.Latest {
		return watermark.UTC().Truncate(time.Microsecond)
	}
	return s.Time
}

// String prints the spec: "latest" or the instant in RFC 3339 with microseconds.
func (s TimeSpec) String() string {
	if s.Latest {
		return "latest"
	}
	return FormatTime(s.Time)
}

// TimeLayout is how the restorer prints instants: UTC, microseconds.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// FormatTime prints t in UTC with microsecond precision.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// ErrBadTime is returned (wrapped) by ParseTime for input it cannot read.
var ErrBadTime = errors.New("unrecognised time")

// TimeFormatsHelp lists the accepted --to forms, for hints.
const TimeFormatsHelp = `RFC 3339 ("2026-11-25T10:15:30Z", "2026-11-25T11:15:30.25+01:00"), ` +
	`"2026-11-25 10:15:30[.ffffff]" (UTC unless --tz), "10m ago", "-90s", or "latest"`

// ParseTime parses a --to value. Accepted forms:
//
//   - "latest": the archive's watermark;
//   - RFC 3339 with or without a fraction, with "Z" or an offset;
//   - "YYYY-MM-DD HH:MM:SS[.ffffff]" (or with "T"), in loc (UTC when nil);
//   - relative: "10m ago", "1h30m ago", "2 hours ago", "-90s", "-1.5h", "3d ago".
//
// Relative forms count back from now. The result is truncated to
// microseconds, Postgres's precision: commit times are whole microseconds,
// so "commit ≤ T" and "commit ≤ T truncated" select the same transactions.
func ParseTime(s string, now time.Time, loc *time.Location) (TimeSpec, error) {
	in := strings.TrimSpace(s)
	if loc == nil {
		loc = time.UTC
	}
	if in == "" {
		return TimeSpec{}, fmt.Errorf("parse time %q: empty: %w", s, ErrBadTime)
	}
	if strings.EqualFold(in, "latest") {
		return TimeSpec{Latest: true}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, strings.Replace(in, " ", "T", 1)); err == nil {
		return at(t), nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04", "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, in, loc); err == nil {
			return at(t), nil
		}
	}
	if d, ok := parseRelative(in); ok {
		return at(now.Add(-d)), nil
	}
	return TimeSpec{}, fmt.Errorf("parse time %q: %w", s, ErrBadTime)
}

func at(t time.Time) TimeSpec {
	return TimeSpec{Time: t.UTC().Truncate(time.Microsecond)}
}

// parseRelative reads "<duration> ago" or "-<duration>". A duration is a Go
// duration ("1h30m", "90s") or a sequence of "<number> <unit>" pairs with
// units such as s, sec, seconds, m, min, minutes, h, hours, d, days.
func parseRelative(s string) (time.Duration, bool) {
	var body string
	switch {
	case strings.HasPrefix(s, "-"):
		body = strings.TrimSpace(s[1:])
	case strings.HasSuffix(strings.ToLower(s), " ago"):
		body = strings.TrimSpace(s[:len(s)-len(" ago")])
	case strings.HasSuffix(strings.ToLower(s), "ago"):
		body = strings.TrimSpace(s[:len(s)-len("ago")])
	default:
		return 0, false
	}
	if body == "" {
		return 0, false
	}
	d, ok := parseDuration(body)
	if !ok || d < 0 {
		return 0, false
	}
	return d, true
}

var units = map[string]time.Duration{
	"us": time.Microsecond, "µs": time.Microsecond, "ms": time.Millisecond,
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
}

// parseDuration reads one or more "<number><unit>" pairs, spaces allowed
// between and within pairs.
func parseDuration(s string) (time.Duration, bool) {
	var total time.Duration
	rest := strings.ToLower(strings.TrimSpace(s))
	pairs := 0
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, false
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, false
		}
		rest = strings.TrimLeft(rest[i:], " ")
		j := 0
		for j < len(rest) && (unicode.IsLetter(rune(rest[j])) || rest[j] >= 0x80) {
			j++
		}
		unit, ok := units[rest[:j]]
		if !ok {
			return 0, false
		}
		rest = strings.TrimLeft(rest[j:], " ,")
		rest = strings.TrimPrefix(rest, "and ")
		if n*float64(unit) > float64(1<<62) {
			return 0, false
		}
		total += time.Duration(n * float64(unit))
		pairs++
	}
	return total, pairs > 0
}
