package merge

import (
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
)

// Group is one merge: consecutive live segments of one table whose merged
// output is a segment of Level for the time bucket starting at Bucket.
type Group struct {
	// Level is the output's level (1…len(Policy.Levels)).
	Level int
	// Bucket is the start of the output's time bucket (UTC).
	Bucket time.Time
	// Inputs are the segments replaced, in chain order.
	Inputs []catalog.SegmentRef
}

// RawBytes is the inputs' uncompressed size.
func (g Group) RawBytes() int64 {
	var n int64
	for _, s := range g.Inputs {
		n += s.RawBytes
	}
	return n
}

// Plan returns the merges the policy calls for among live (in chain order)
// given the watermark wm, for the lowest level that has any: higher levels
// are planned after those merges are done, from the catalog they leave.
//
// A level-k group is a run of at least two consecutive live segments of one
// table, each below level k, complete up to the watermark, whose earliest
// commit time falls in the same level-k bucket; the bucket is done when a
// later segment of the table starts in a later bucket, or when the
// watermark's commit time is Settle past the bucket's end. A segment whose
// events average more than MaxEventBytes is never merged (nor are its
// neighbours merged across it). Merges only ever
// join neighbours, so commit times that are not monotonic in chain order
// cost merging, never correctness.
func Plan(live []catalog.SegmentRef, wm catalog.Watermark, p Policy) []Group {
	p = p.withDefaults()
	for k := 1; k <= len(p.Levels); k++ {
		var out []Group
		for _, segs := range byTable(live) {
			out = append(out, planLevel(segs, wm, k, p)...)
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

// byTable splits live segments by table, keeping chain order.
func byTable(live []catalog.SegmentRef) [][]catalog.SegmentRef {
	idx := map[string]int{}
	var out [][]catalog.SegmentRef
	for _, s := range live {
		i, ok := idx[s.Table]
		if !ok {
			i = len(out)
			idx[s.Table] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], s)
	}
	return out
}

func planLevel(segs []catalog.SegmentRef, wm catalog.Watermark, k int, p Policy) []Group {
	span := p.Levels[k-1]
	mergeable := func(s catalog.SegmentRef) bool {
		return s.Level < k && s.Events > 0 && s.LastEndLSN <= wm.LSN && s.RawBytes/int64(s.Events) <= p.MaxEventBytes
	}
	var out []Group
	for i := 0; i < len(segs); {
		if !mergeable(segs[i]) {
			i++
			continue
		}
		b := bucketOf(segs[i], span)
		j := i + 1
		for j < len(segs) && mergeable(segs[j]) && bucketOf(segs[j], span).Equal(b) {
			j++
		}
		done := (j < len(segs) && bucketOf(segs[j], span).After(b)) ||
			!wm.CommitTime.Before(b.Add(span).Add(p.Settle))
		if done {
			out = append(out, chunk(segs[i:j], k, b, p)...)
		}
		i = j
	}
	return out
}

func bucketOf(s catalog.SegmentRef, span time.Duration) time.Time {
	return s.MinCommitTime.UTC().Truncate(span)
}

// chunk splits a run into groups within the policy's size limits, dropping
// single segments (nothing to merge).
func chunk(run []catalog.SegmentRef, k int, bucket time.Time, p Policy) []Group {
	var out []Group
	for len(run) > 0 {
		n, raw := 0, int64(0)
		for n < len(run) && n < p.MaxInputs && (n == 0 || raw+run[n].RawBytes <= p.MaxRawBytes) {
			raw += run[n].RawBytes
			n++
		}
		if n >= 2 {
			out = append(out, Group{Level: k, Bucket: bucket, Inputs: run[:n:n]})
		}
		run = run[n:]
	}
	return out
}
