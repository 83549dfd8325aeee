package restore

import (
	"errors"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	berlin := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		in     string
		loc    *time.Location
		want   string // FormatTime of the result, or "latest"
		errors bool
	}{
		{in: "2026-11-25T10:15:30Z", want: "2026-11-25T10:15:30.000000Z"},
		{in: "2026-11-25T11:15:30.25+01:00", want: "2026-11-25T10:15:30.250000Z"},
		{in: "2026-11-25T10:15:30.123456789Z", want: "2026-11-25T10:15:30.123456Z"},
		{in: "2026-11-25T10:15:30.1234564-00:30", want: "2026-11-25T10:45:30.123456Z"},
		{in: "2026-11-25 10:15:30", want: "2026-11-25T10:15:30.000000Z"},
		{in: "2026-11-25 10:15:30.000001", want: "2026-11-25T10:15:30.000001Z"},
		{in: "2026-11-25 10:15:30.5", loc: berlin, want: "2026-11-25T09:15:30.500000Z"},
		{in: "2026-11-25 10:15:30Z", loc: berlin, want: "2026-11-25T10:15:30.000000Z"},
		{in: "2026-11-25T10:15:30", loc: berlin, want: "2026-11-25T09:15:30.000000Z"},
		{in: "2026-11-25 10:15", want: "2026-11-25T10:15:00.000000Z"},
		{in: "latest", want: "latest"},
		{in: " LATEST ", want: "latest"},
		{in: "10m ago", want: "2026-11-25T11:50:00.000000Z"},
		{in: "1h30m ago", want: "2026-11-25T10:30:00.000000Z"},
		{in: "2 hours ago", want: "2026-11-25T10:00:00.000000Z"},
		{in: "1 day, 2 hours ago", want: "2026-11-24T10:00:00.000000Z"},
		{in: "-90s", want: "2026-11-25T11:58:30.000000Z"},
		{in: "-1.5h", want: "2026-11-25T10:30:00.000000Z"},
		{in: "-500ms", want: "2026-11-25T11:59:59.500000Z"},
		{in: "", errors: true},
		{in: "yesterday", errors: true},
		{in: "2026-13-01 00:00:00", errors: true},
		{in: "2026-11-25T25:00:00Z", errors: true},
		{in: "10 parsecs ago", errors: true},
		{in: "ago", errors: true},
		{in: "-", errors: true},
		{in: "--5s", errors: true},
		{in: "1e300h ago", errors: true},
		{in: "99999999999999h ago", errors: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTime(tc.in, now, tc.loc)
			if tc.errors {
				if err == nil || !errors.Is(err, ErrBadTime) {
					t.Fatalf("ParseTime(%q) = %v, %v; want ErrBadTime", tc.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTime(%q): %v", tc.in, err)
			}
			if got.String() != tc.want {
				t.Fatalf("ParseTime(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestTimeSpec_Resolve(t *testing.T) {
	wm := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.FixedZone("x", 7200))
	if got := (TimeSpec{Latest: true}).Resolve(wm); !got.Equal(wm.Truncate(time.Microsecond)) || got.Location() != time.UTC {
		t.Fatalf("latest resolved to %v", got)
	}
	fixed := TimeSpec{Time: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	if got := fixed.Resolve(wm); !got.Equal(fixed.Time) {
		t.Fatalf("fixed resolved to %v", got)
	}
}
