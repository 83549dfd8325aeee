package restore

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
)

// countingStore is a real store that counts the Gets of every key and
// cuts the body of the first Get of the keys in cut short, as a
// connection reset would; the objects themselves stay whole.
type countingStore struct {
	objstore.Store
	mu   sync.Mutex
	gets map[string]int
	cut  map[string]bool
}

func (c *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	rc, info, err := c.Store.Get(ctx, key)
	if err != nil {
		return rc, info, err
	}
	c.mu.Lock()
	c.gets[key]++
	cut := c.cut[key] && c.gets[key] == 1
	c.mu.Unlock()
	if cut {
		b, _ := io.ReadAll(rc)
		rc.Close()
		return io.NopCloser(bytes.NewReader(b[:len(b)/2])), info, nil
	}
	return rc, info, nil
}

// TestVerify_ReadsEachSegmentOnce: verify downloads every live segment
// object exactly once, and a read cut off mid-transfer is read again
// (once more) instead of being reported as damage.
func TestVerify_ReadsEachSegmentOnce(t *testing.T) {
	f := sharedFixture(t)
	a := openArchive(t, f.dir, nil)
	segs := a.Catalog.Segments()
	if len(segs) < 3 {
		t.Fatalf("fixture has %d segments, want at least 3", len(segs))
	}
	cs := &countingStore{Store: a.Store, gets: map[string]int{}, cut: map[string]bool{segs[1].Key: true}}
	rep, err := Verify(context.Background(), cs, VerifyOptions{Parallel: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != StatusOK {
		t.Fatalf("status %s, problems %+v", rep.Status, rep.Problems)
	}
	segmentGets := 0
	for key, n := range cs.gets {
		if strings.HasPrefix(key, catalog.SegmentsPrefix) {
			segmentGets += n
		}
	}
	for _, s := range segs {
		want := 1
		if s.Key == segs[1].Key {
			want = 2 // the cut read, and its retry
		}
		if cs.gets[s.Key] != want {
			t.Errorf("segment %s read %d times, want %d", s.Key, cs.gets[s.Key], want)
		}
	}
	if segmentGets != len(segs)+1 {
		t.Errorf("%d segment reads for %d segments (one cut and retried)", segmentGets, len(segs))
	}
	t.Logf("%d segments, %d segment reads, %d events", len(segs), segmentGets, rep.Events)
}

// TestVerify_Sample reads only a share of the segments and says so.
func TestVerify_Sample(t *testing.T) {
	f := sharedFixture(t)
	a := openArchive(t, f.dir, nil)
	segs := a.Catalog.Segments()
	cs := &countingStore{Store: a.Store, gets: map[string]int{}}
	rep, err := Verify(context.Background(), cs, VerifyOptions{Sample: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for _, s := range segs {
		read += cs.gets[s.Key]
	}
	if rep.Status != StatusOK || !rep.Sampled || read < 1 || read >= len(segs) {
		t.Fatalf("status %s sampled %v: %d of %d segments read; problems %+v", rep.Status, rep.Sampled, read, len(segs), rep.Problems)
	}
}
