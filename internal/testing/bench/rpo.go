package bench

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// maxSegmentRead bounds one segment read while measuring.
const maxSegmentRead = 1 << 30

// MeasureRPO reads the catalog and the segments holding events committed in
// [from, to] and returns, per event, how long after its commit the archive
// made it durable: the first catalog entry whose watermark covers the
// event's position, at the later of the entry's written time and its
// object's modification time. It returns the durations and the number of
// events in the window the watermark does not cover yet.
func MeasureRPO(ctx context.Context, store objstore.Store, from, to time.Time) ([]time.Duration, int, error) {
	cat, err := catalog.LoadWith(ctx, store, catalog.LoadOptions{IgnoreCheckpoints: true})
	if err != nil {
		return nil, 0, fmt.Errorf("load catalog: %w", err)
	}
	entries := cat.Entries()
	sort.Slice(entries, func(i, j int) bool { return entries[i].Seq < entries[j].Seq })
	durable := map[uint64]time.Time{} // entry seq → durable time
	durableAt := func(e catalog.Entry) (time.Time, error) {
		if t, ok := durable[e.Seq]; ok {
			return t, nil
		}
		t := e.Written
		info, err := store.Stat(ctx, catalog.EntryKey(e.Seq))
		if err != nil {
			return t, fmt.Errorf("stat catalog entry %d: %w", e.Seq, err)
		}
		if info.ModTime.After(t) && info.ModTime.Sub(t) < time.Minute {
			t = info.ModTime
		}
		durable[e.Seq] = t
		return t, nil
	}
	var out []time.Duration
	uncovered := 0
	for _, e := range entries {
		s := e.Segment
		if s == nil || s.MaxCommitTime.Before(from) || s.MinCommitTime.After(to) {
			continue
		}
		data, err := objstore.ReadAll(ctx, store, s.Key, maxSegmentRead)
		if err != nil {
			return nil, 0, fmt.Errorf("read segment %s: %w", s.Key, err)
		}
		seg, err := segment.Decode(s.Key, data, segment.ReadOptions{})
		if err != nil {
			return nil, 0, fmt.Errorf("decode segment %s: %w", s.Key, err)
		}
		for _, ev := range seg.Events {
			if ev.CommitTime.Before(from) || ev.CommitTime.After(to) {
				continue
			}
			i := sort.Search(len(entries), func(i int) bool { return entries[i].Watermark.LSN >= ev.EndLSN })
			if i == len(entries) {
				uncovered++
				continue
			}
			at, err := durableAt(entries[i])
			if err != nil {
				return nil, 0, err
			}
			out = append(out, at.Sub(ev.CommitTime))
		}
	}
	return out, uncovered, nil
}
