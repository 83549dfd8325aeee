package segment

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/tidemark/tidemark/internal/event"
)

// summary checks that events arrive in chain order and accumulates the
// trailer. The writer feeds it what it appends; the reader feeds it what it
// decodes and compares the result with the stored trailer.
type summary struct {
	streamID, streamVersion int // column indexes, -1 when absent

	t            Trailer
	minUS, maxUS int64

	// the previous event, for order checks
	end, commit, prevLSN event.Position
	xid                  uint32
	index, count         int

	streamIdx map[string]int
	ranges    []VersionRange
	ids       []string
}

func newSummary(t event.Table) *summary {
	l := event.LayoutOf(t)
	s := &summary{streamID: l.StreamID, streamVersion: l.StreamVersion}
	if s.streamID < 0 || s.streamVersion < 0 {
		s.streamID, s.streamVersion = -1, -1
	} else {
		s.streamIdx = map[string]int{}
	}
	return s
}

// check reports whether e may follow the events added so far: EndLSN
// non-decreasing; within a transaction (same EndLSN) consecutive indexes and
// the same CommitLSN, PrevLSN, XID and Count; a new transaction only after
// the previous one is complete and starting at index 0. Only the segment's
// first transaction may start mid-way, and only its last may end early, so
// a transaction can be split across segments.
func (s *summary) check(e *event.Event) error {
	if e.Count < 1 || e.Index < 0 || e.Index >= e.Count {
		return fmt.Errorf("event %s: index %d outside count %d", e, e.Index, e.Count)
	}
	if s.t.Events == 0 {
		return nil
	}
	switch {
	case e.EndLSN == s.end:
		if e.Index != s.index+1 || e.Count != s.count || e.CommitLSN != s.commit ||
			e.XID != s.xid || e.PrevLSN != s.prevLSN {
			return fmt.Errorf("event %s: does not continue transaction end %s xid %d (after index %d of %d)",
				e, s.end, s.xid, s.index, s.count)
		}
	case e.EndLSN > s.end:
		if s.index != s.count-1 {
			return fmt.Errorf("event %s: new transaction while transaction end %s has only %d of %d events",
				e, s.end, s.index+1, s.count)
		}
		if e.Index != 0 {
			return fmt.Errorf("event %s: transaction end %s starts at index %d", e, e.EndLSN, e.Index)
		}
	default:
		return fmt.Errorf("event %s: end LSN %s before previous %s (not chain order)", e, e.EndLSN, s.end)
	}
	return nil
}

// add records e, whose record took rawLen bytes; call check first.
func (s *summary) add(e *event.Event, rawLen int) {
	us := e.CommitTime.UnixMicro()
	if s.t.Events == 0 {
		s.t.FirstCommitLSN, s.t.FirstEndLSN, s.t.PrevLSN = e.CommitLSN, e.EndLSN, e.PrevLSN
		s.minUS, s.maxUS = us, us
		s.t.Transactions = 1
	} else {
		if e.EndLSN != s.end {
			s.t.Transactions++
		}
		s.minUS, s.maxUS = min(s.minUS, us), max(s.maxUS, us)
	}
	s.t.Events++
	s.t.LastCommitLSN, s.t.LastEndLSN = e.CommitLSN, e.EndLSN
	s.t.RawBytes += int64(rawLen)
	s.end, s.commit, s.prevLSN, s.xid, s.index, s.count = e.EndLSN, e.CommitLSN, e.PrevLSN, e.XID, e.Index, e.Count
	if s.streamID >= 0 {
		s.addStream(e.Value(s.streamID), e.Value(s.streamVersion))
	}
}

func (s *summary) addStream(id, version []byte) {
	if id == nil || !utf8.Valid(id) { // JSON cannot carry invalid UTF-8 losslessly
		return
	}
	v, ok := parseInt64(version)
	if !ok {
		return
	}
	if i, ok := s.streamIdx[string(id)]; ok {
		r := &s.ranges[i]
		r.Min, r.Max = min(r.Min, v), max(r.Max, v)
		return
	}
	key := string(id)
	s.streamIdx[key] = len(s.ranges)
	s.ranges = append(s.ranges, VersionRange{Min: v, Max: v})
	s.ids = append(s.ids, key)
}

// trailer returns the accumulated trailer (without StoredBytes and SHA256).
func (s *summary) trailer() Trailer {
	t := s.t
	if t.Events > 0 {
		t.MinCommitTime = time.UnixMicro(s.minUS).UTC()
		t.MaxCommitTime = time.UnixMicro(s.maxUS).UTC()
	}
	if len(s.ids) > 0 {
		t.Streams = make(map[string]VersionRange, len(s.ids))
		for i, id := range s.ids {
			t.Streams[id] = s.ranges[i]
		}
	}
	return t
}

// parseInt64 parses a decimal integer as Postgres prints bigint, without allocating.
func parseInt64(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg || b[0] == '+' {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if u > (1<<64-1-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

// diffTrailer names the first field in which got (from the body) differs
// from stored (the trailer), or returns "".
func diffTrailer(stored, got *Trailer) string {
	switch {
	case stored.Events != got.Events:
		return fmt.Sprintf("events: trailer %d, body %d", stored.Events, got.Events)
	case stored.Transactions != got.Transactions:
		return fmt.Sprintf("transactions: trailer %d, body %d", stored.Transactions, got.Transactions)
	case stored.FirstCommitLSN != got.FirstCommitLSN || stored.LastCommitLSN != got.LastCommitLSN:
		return fmt.Sprintf("commit LSNs: trailer %s..%s, body %s..%s",
			stored.FirstCommitLSN, stored.LastCommitLSN, got.FirstCommitLSN, got.LastCommitLSN)
	case stored.FirstEndLSN != got.FirstEndLSN || stored.LastEndLSN != got.LastEndLSN:
		return fmt.Sprintf("end LSNs: trailer %s..%s, body %s..%s",
			stored.FirstEndLSN, stored.LastEndLSN, got.FirstEndLSN, got.LastEndLSN)
	case stored.PrevLSN != got.PrevLSN:
		return fmt.Sprintf("prev LSN: trailer %s, body %s", stored.PrevLSN, got.PrevLSN)
	case !stored.MinCommitTime.Equal(got.MinCommitTime) || !stored.MaxCommitTime.Equal(got.MaxCommitTime):
		return fmt.Sprintf("commit times: trailer %s..%s, body %s..%s",
			stored.MinCommitTime, stored.MaxCommitTime, got.MinCommitTime, got.MaxCommitTime)
	case stored.RawBytes != got.RawBytes:
		return fmt.Sprintf("raw bytes: trailer %d, body %d", stored.RawBytes, got.RawBytes)
	case len(stored.Streams) != len(got.Streams):
		return fmt.Sprintf("streams: trailer %d, body %d", len(stored.Streams), len(got.Streams))
	}
	for id, r := range got.Streams {
		if sr, ok := stored.Streams[id]; !ok || sr != r {
			return fmt.Sprintf("stream %q: trailer %v, body %v", id, sr, r)
		}
	}
	return ""
}
