package restore

import (
	"fmt"
	"math/big"
	"slices"
	"strconv"

	"github.com/tidemark/tidemark/internal/event"
)

// versionStats checks that each stream's versions are exactly 1…n, in any
// order, with memory proportional to the number of streams: it keeps the
// count, minimum, maximum, sum and sum of squares of each stream's
// versions, which equal n, 1, n, n(n+1)/2 and n(n+1)(2n+1)/6 only for a
// permutation of 1…n (barring a contrived collision of both sums).
type versionStats struct {
	layout  event.Layout
	enabled bool
	streams map[string]*streamStat
	invalid map[string]string // streams with a non-integer or < 1 version
}

type streamStat struct {
	n, min, max int64
	sum, sq     big.Int
}

func newVersionStats(t event.Table) *versionStats {
	l := event.LayoutOf(t)
	return &versionStats{layout: l, enabled: l.StreamID >= 0 && l.StreamVersion >= 0,
		streams: map[string]*streamStat{}, invalid: map[string]string{}}
}

// add records one event.
func (s *versionStats) add(e *event.Event) {
	if !s.enabled {
		return
	}
	id := string(e.Value(s.layout.StreamID))
	raw := e.Value(s.layout.StreamVersion)
	v, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || v < 1 {
		if _, seen := s.invalid[id]; !seen {
			s.invalid[id] = fmt.Sprintf("invalid version %q", clip(string(raw)))
		}
		return
	}
	st := s.streams[id]
	if st == nil {
		st = &streamStat{min: v, max: v}
		s.streams[id] = st
	}
	st.n++
	st.min, st.max = min(st.min, v), max(st.max, v)
	bv := big.NewInt(v)
	st.sum.Add(&st.sum, bv)
	st.sq.Add(&st.sq, bv.Mul(bv, bv))
}

// brokenStream is a stream whose versions are not 1…n.
type brokenStream struct {
	ID     string
	Detail string
}

func (b brokenStream) String() string { return fmt.Sprintf("%q (%s)", clip(b.ID), b.Detail) }

// broken returns up to limit streams whose versions are not 1…n, sorted
// by id, and how many there are in all.
func (s *versionStats) broken(limit int) (out []brokenStream, total int) {
	var ids []string
	for id := range s.invalid {
		ids = append(ids, id)
	}
	for id, st := range s.streams {
		if _, bad := s.invalid[id]; !bad && !st.contiguous() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		if len(out) >= limit {
			break
		}
		if why, ok := s.invalid[id]; ok {
			out = append(out, brokenStream{id, why})
			continue
		}
		st := s.streams[id]
		out = append(out, brokenStream{id, fmt.Sprintf("%d events, versions %d…%d", st.n, st.min, st.max)})
	}
	return out, len(ids)
}

func (st *streamStat) contiguous() bool {
	if st.min != 1 || st.max != st.n {
		return false
	}
	n := big.NewInt(st.n)
	n1 := new(big.Int).Add(n, big.NewInt(1))
	sum := new(big.Int).Mul(n, n1)
	sum.Rsh(sum, 1)
	sq := new(big.Int).Mul(n, n1)
	sq.Mul(sq, new(big.Int).Add(new(big.Int).Lsh(n, 1), big.NewInt(1)))
	sq.Div(sq, big.NewInt(6))
	return st.sum.Cmp(sum) == 0 && st.sq.Cmp(sq) == 0
}
