package archive

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/archive/archivetest"
	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// TestArchiver_Run_RandomHolesResendsAndRestarts drives the archiver with
// seeded random feeds: holes left by lost messages, capture's re-sends
// (duplicates included) arriving later, heartbeats whose times trail
// earlier commits, commit times crossing minute buckets back and forth,
// archiver restarts in the middle, and writes to the bucket whose answer
// is lost after they were stored (so a flush fails half-way and the term
// ends). Whatever the interleaving, the
// archive must end with every event exactly once, and verify must find
// no catalog entry whose watermark covers a transaction that only a later
// entry archives.
//
// make test runs 12 seeds; TIDEMARK_ARCHIVE_SEEDS=n runs seeds 1..n.
func TestArchiver_Run_RandomHolesResendsAndRestarts(t *testing.T) {
	seeds := uint64(12)
	if v := os.Getenv("TIDEMARK_ARCHIVE_SEEDS"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("TIDEMARK_ARCHIVE_SEEDS=%q: want a number of seeds", v)
		}
		seeds = n
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { randomFeedRun(t, seed) })
	}
}

func randomFeedRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, testStream)
	store := &lostAckStore{Store: fileStore(t), rng: rand.New(rand.NewPCG(seed, 7))}
	cfg := testConfig("a1")
	cfg.MergeInterval = time.Second
	r := start(t, f, store, nil, cfg)

	// 1,300 items at 100 ms steps cross two minute boundaries, and the
	// feed's ±500 ms commit-time wobble makes neighbours straddle them.
	var items []archivetest.Item
	for range 1300 {
		if rng.IntN(6) == 0 {
			items = append(items, f.HeartbeatItem())
		} else {
			items = append(items, f.Txn(1+rng.IntN(6), 0))
		}
	}
	var lost [][2]int // index ranges held back, re-sent later
	for i := 0; i < len(items); {
		n := 20 + rng.IntN(120)
		end := min(i+n, len(items))
		if rng.IntN(3) == 0 && i > 0 {
			// The tail of this batch is lost in transit.
			cut := i + rng.IntN(end-i)
			f.Publish(t, false, items[i:cut]...)
			lost = append(lost, [2]int{cut, end})
		} else {
			f.Publish(t, false, items[i:end]...)
		}
		if len(lost) > 0 && rng.IntN(2) == 0 {
			// Capture rewinds: it re-sends from somewhat before the oldest
			// hole up to where it has got to.
			from := max(0, lost[0][0]-rng.IntN(10))
			f.Publish(t, true, items[from:end]...)
			lost = lost[:0]
		}
		if rng.IntN(8) == 0 {
			if err := r.stop(t); err != nil {
				t.Fatalf("archiver stopped with %v", err)
			}
			r = start(t, f, store, nil, cfg)
		}
		i = end
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
	}
	if len(lost) > 0 {
		f.Publish(t, true, items[lost[0][0]:]...)
	}
	store.off.Store(true)
	archivetest.WaitWatermark(t, store, last(items), 60*time.Second)
	archivetest.Load(t, store, nil).Check(t, archivetest.EventIDs(items...))
	// The synthetic feed numbers stream versions globally, so the
	// per-stream version check does not apply. Every other check must
	// pass: an upload cut off before its entry (a stop that outlasts its
	// grace, a lost answer) is recorded as debris by the next term, and a
	// merge whose upload answer was lost is adopted by the merger's next
	// round (every MergeInterval), so verify is repeated until then.
	var problems []catalog.Finding
	deadline := time.Now().Add(3 * cfg.MergeInterval)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		rep, err := catalog.Verify(ctx, store, nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		problems = problems[:0]
		for _, fd := range rep.Findings {
			if fd.Severity >= catalog.Warning && fd.Check != "stream" {
				problems = append(problems, fd)
			}
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, fd := range problems {
		t.Errorf("verify: %s", fd)
	}
	if len(problems) > 0 {
		t.Fatalf("verify found %d problems", len(problems))
	}
}

// lostAckStore stores one segment or catalog entry write in 10 and then
// reports a timeout, as a PUT whose response was lost would. The archiver
// does not retry a timeout: the flush fails and the term ends.
type lostAckStore struct {
	objstore.Store
	mu  sync.Mutex
	rng *rand.Rand
	off atomic.Bool
}

func (s *lostAckStore) Put(ctx context.Context, key string, r io.Reader, size int64, opts objstore.PutOptions) error {
	if err := s.Store.Put(ctx, key, r, size, opts); err != nil {
		return err
	}
	if s.off.Load() || !strings.HasPrefix(key, catalog.SegmentsPrefix) && !strings.HasPrefix(key, catalog.EntriesPrefix) {
		return nil
	}
	s.mu.Lock()
	lose := s.rng.IntN(10) == 0
	s.mu.Unlock()
	if lose {
		return fmt.Errorf("put %s: response lost: %w", key, context.DeadlineExceeded)
	}
	return nil
}
