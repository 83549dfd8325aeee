package bench

import (
	"math"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name    string
		samples []time.Duration
		q       float64
		want    time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"median of ten unsorted", ms(10, 1, 9, 2, 8, 3, 7, 4, 6, 5), 0.5, 5 * time.Millisecond},
		{"p99 of 100 is the 99th", ms(seq(100)...), 0.99, 99 * time.Millisecond},
		{"p100 is the max", ms(3, 1, 2), 1, 3 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.samples, tt.q); got != tt.want {
				t.Errorf("Percentile(%v) = %s, want %s", tt.q, got, tt.want)
			}
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func TestHistogramQuantile(t *testing.T) {
	scrape := func(counts ...float64) map[string]float64 {
		les := []string{"0.001", "0.01", "0.1", "+Inf"}
		m := map[string]float64{"other_metric": 5}
		for i, c := range counts {
			m[`lat_seconds_bucket{le="`+les[i]+`"}`] = c
		}
		return m
	}
	before := histogramBuckets(scrape(10, 10, 10, 10), "lat_seconds")
	after := histogramBuckets(scrape(10, 60, 110, 110), "lat_seconds")
	d := histogramDelta(before, after)
	if len(d) != 4 || d[1].count != 50 || d[3].count != 100 {
		t.Fatalf("delta = %+v", d)
	}
	// 50 samples in (1 ms, 10 ms], 50 in (10 ms, 100 ms]: the median is 10 ms,
	// p75 halfway into the second bucket.
	for _, c := range []struct {
		q    float64
		want float64
	}{{0.5, 0.010}, {0.75, 0.055}, {1, 0.1}} {
		got, ok := histogramQuantile(d, c.q)
		if !ok || math.Abs(got.Seconds()-c.want) > 1e-9 {
			t.Errorf("quantile %v = %v (%v), want %vs", c.q, got, ok, c.want)
		}
	}
	if _, ok := histogramQuantile(histogramDelta(before, before), 0.5); ok {
		t.Error("empty histogram reported a quantile")
	}
	// Everything beyond the last finite bound: the bound is the answer.
	inf := histogramDelta(before, histogramBuckets(scrape(10, 10, 10, 20), "lat_seconds"))
	if got, ok := histogramQuantile(inf, 0.99); !ok || got != 100*time.Millisecond {
		t.Errorf("quantile in +Inf = %v, %v", got, ok)
	}
}

func TestNum(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", -4500: "-4,500"} {
		if got := num(in); got != want {
			t.Errorf("num(%v) = %q, want %q", in, got, want)
		}
	}
}
