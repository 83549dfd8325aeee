package bench

import (
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Percentile returns the q-quantile (0 < q ≤ 1) of samples by the
// nearest-rank method; it sorts samples in place and returns 0 when empty.
func Percentile(samples []time.Duration, q float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	if !slices.IsSorted(samples) {
		slices.Sort(samples)
	}
	rank := int(math.Ceil(q*float64(len(samples)))) - 1
	return samples[min(max(rank, 0), len(samples)-1)]
}

// bucket is one cumulative Prometheus histogram bucket.
type bucket struct {
	le    float64
	count float64
}

// histogramBuckets extracts the cumulative buckets of histogram name from
// a scrape (keys as harness.Proc.Metrics returns them: name_bucket{le="x"}).
func histogramBuckets(scrape map[string]float64, name string) []bucket {
	var bs []bucket
	prefix := name + `_bucket{`
	for k, v := range scrape {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		_, le, ok := strings.Cut(rest, `le="`)
		if !ok {
			continue
		}
		le, _, _ = strings.Cut(le, `"`)
		f, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le: f, count: v})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	return bs
}

// histogramDelta subtracts an earlier scrape's buckets from a later one's.
func histogramDelta(before, after []bucket) []bucket {
	prev := map[float64]float64{}
	for _, b := range before {
		prev[b.le] = b.count
	}
	out := make([]bucket, len(after))
	for i, b := range after {
		out[i] = bucket{le: b.le, count: b.count - prev[b.le]}
	}
	return out
}

// histogramQuantile estimates the q-quantile of cumulative buckets by
// linear interpolation inside the bucket that holds it, as PromQL's
// histogram_quantile does; ok is false when the histogram is empty. A
// quantile in the +Inf bucket returns the largest finite bound.
func histogramQuantile(bs []bucket, q float64) (time.Duration, bool) {
	if len(bs) == 0 || bs[len(bs)-1].count <= 0 {
		return 0, false
	}
	total := bs[len(bs)-1].count
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return seconds(lower), true
			}
			frac := 0.0
			if b.count > below {
				frac = (rank - below) / (b.count - below)
			}
			return seconds(lower + (b.le-lower)*frac), true
		}
		lower, below = b.le, b.count
	}
	return seconds(lower), true
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// rate returns n per second over d.
func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
