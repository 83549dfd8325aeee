package demo

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// ArchiveStats summarises what the archive holds and how quickly events
// reached it.
type ArchiveStats struct {
	Segments    int
	Events      int
	RawBytes    int64
	StoredBytes int64
	// RPO is, per archived event, the time from its source commit to the
	// catalog entry that made it durable (both clocks are this machine's).
	RPOP50, RPOP99, RPOMax time.Duration
}

// CompressionRatio is raw bytes per stored byte.
func (s ArchiveStats) CompressionRatio() float64 {
	if s.StoredBytes == 0 {
		return 0
	}
	return float64(s.RawBytes) / float64(s.StoredBytes)
}

// MeasureArchive reads the catalog and every segment it lists, and
// computes per-event RPO from commit time to the entry's write time.
func MeasureArchive(ctx context.Context, store objstore.Store, keys *segment.Keyring) (ArchiveStats, error) {
	cat, err := catalog.Load(ctx, store)
	if err != nil {
		return ArchiveStats{}, fmt.Errorf("load catalog: %w", err)
	}
	var st ArchiveStats
	var rpos []time.Duration
	for _, e := range cat.Entries() {
		if e.Segment == nil {
			continue
		}
		ref := e.Segment
		data, err := objstore.ReadAll(ctx, store, ref.Key, 1<<30)
		if err != nil {
			return st, fmt.Errorf("read %s: %w", ref.Key, err)
		}
		seg, err := segment.Decode(ref.Key, data, segment.ReadOptions{Keyring: keys})
		if err != nil {
			return st, err
		}
		st.Segments++
		st.Events += len(seg.Events)
		st.RawBytes += ref.RawBytes
		st.StoredBytes += ref.Size
		for _, ev := range seg.Events {
			if ev.Snapshot {
				continue
			}
			rpos = append(rpos, e.Written.Sub(ev.CommitTime))
		}
	}
	if len(rpos) > 0 {
		sort.Slice(rpos, func(i, j int) bool { return rpos[i] < rpos[j] })
		st.RPOP50 = rpos[len(rpos)*50/100]
		st.RPOP99 = rpos[min(len(rpos)-1, len(rpos)*99/100)]
		st.RPOMax = rpos[len(rpos)-1]
	}
	return st, nil
}
