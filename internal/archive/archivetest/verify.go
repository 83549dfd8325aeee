package archivetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// Archive is what the catalog of a store lists, decoded and checked.
type Archive struct {
	// Catalog is the loaded catalog.
	Catalog *catalog.Catalog
	// Watermark is the catalog's watermark.
	Watermark catalog.Watermark
	// Segments are the decoded segments in catalog order.
	Segments []*segment.Segment
	// Keys are the segments' object keys, parallel to Segments.
	Keys []string
	// IDs counts every archived event id (first column).
	IDs map[string]int
	// Events is the number of archived events.
	Events int
}

// Load reads the catalog and every segment it lists, failing the test when
// an entry points at a missing object, an object whose size or checksum
// differs from the entry, or a segment that does not decode; and when a
// segment's commit times leave its key's one-minute bucket.
func Load(tb testing.TB, store objstore.Store, keyring *segment.Keyring) *Archive {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cat, err := catalog.Load(ctx, store)
	if err != nil {
		tb.Fatalf("load catalog: %v", err)
	}
	a := &Archive{Catalog: cat, Watermark: cat.Watermark(), IDs: make(map[string]int)}
	for _, ref := range cat.Segments() {
		data, err := objstore.ReadAll(ctx, store, ref.Key, 1<<30)
		if err != nil {
			tb.Fatalf("catalog entry points at an unreadable object %s: %v", ref.Key, err)
		}
		sum := sha256.Sum256(data)
		if int64(len(data)) != ref.Size || hex.EncodeToString(sum[:]) != ref.SHA256 {
			tb.Fatalf("object %s: %d bytes sha %x, catalog says %d bytes sha %s", ref.Key, len(data), sum, ref.Size, ref.SHA256)
		}
		seg, err := segment.Decode(ref.Key, data, segment.ReadOptions{Keyring: keyring})
		if err != nil {
			tb.Fatalf("decode %s: %v", ref.Key, err)
		}
		if len(seg.Events) != ref.Events {
			tb.Fatalf("segment %s: %d events, catalog says %d", ref.Key, len(seg.Events), ref.Events)
		}
		ki, err := parseKey(ref.Key)
		if err != nil {
			tb.Fatalf("segment key %s: %v", ref.Key, err)
		}
		for _, e := range seg.Events {
			if b := e.CommitTime.Truncate(time.Minute); !b.Equal(ki.BucketStart) {
				tb.Fatalf("segment %s holds %s committed at %s, outside its bucket", ref.Key, e, e.CommitTime)
			}
			a.IDs[string(e.Values[0])]++
			a.Events++
		}
		a.Segments = append(a.Segments, seg)
		a.Keys = append(a.Keys, ref.Key)
	}
	return a
}

// Check fails the test unless the archive holds exactly the given event
// ids, each once.
func (a *Archive) Check(tb testing.TB, want []string) {
	tb.Helper()
	var missing, dup []string
	seen := make(map[string]bool, len(want))
	for _, id := range want {
		seen[id] = true
		switch n := a.IDs[id]; {
		case n == 0:
			missing = append(missing, id)
		case n > 1:
			dup = append(dup, fmt.Sprintf("%s×%d", id, n))
		}
	}
	var extra []string
	for id := range a.IDs {
		if !seen[id] {
			extra = append(extra, id)
		}
	}
	if len(missing)+len(dup)+len(extra) > 0 {
		sort.Strings(missing)
		sort.Strings(extra)
		tb.Fatalf("archive differs: %d events (want %d); missing %d %s; duplicated %d %s; unexpected %d %s",
			a.Events, len(want), len(missing), head(missing), len(dup), head(dup), len(extra), head(extra))
	}
}

// CheckFenced fails the test when successor wrote no catalog entry, or
// when deposed wrote one after successor's first: once a standby has
// taken over, the writer it replaced must be fenced out of the catalog.
func (a *Archive) CheckFenced(tb testing.TB, deposed, successor string) {
	tb.Helper()
	first := uint64(0)
	for _, e := range a.Catalog.Entries() {
		switch {
		case e.Writer == successor && first == 0:
			first = e.Seq
		case e.Writer == deposed && first != 0:
			tb.Fatalf("entry %d written by the deposed writer %s after %s took over (entry %d)", e.Seq, deposed, successor, first)
		}
	}
	if first == 0 {
		tb.Fatalf("%s, which took over from %s, wrote no catalog entry", successor, deposed)
	}
}

func head(s []string) string {
	if len(s) > 5 {
		return "[" + strings.Join(s[:5], " ") + " …]"
	}
	return "[" + strings.Join(s, " ") + "]"
}

// WaitWatermark polls the catalog until its watermark reaches pos and
// returns it; it fails the test after timeout.
func WaitWatermark(tb testing.TB, store objstore.Store, pos event.Position, timeout time.Duration) catalog.Watermark {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var last catalog.Watermark
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cat, err := catalog.Load(ctx, store)
		cancel()
		if err == nil {
			last = cat.Watermark()
			if last.LSN >= pos {
				return last
			}
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("watermark did not reach %s within %s: at %s (last error %v)", pos, timeout, last.LSN, lastErr)
	return last
}

// parseKey parses a segment key, also the archiver's keys of segments
// holding part of a streamed transaction ("…-<first index>-<last
// index>.tms", see archive's streamedKey).
func parseKey(key string) (segment.KeyInfo, error) {
	ki, err := segment.ParseKey(key)
	if err == nil {
		return ki, nil
	}
	base := strings.TrimSuffix(key, segment.KeyExt)
	if len(base) > 18 && base[len(base)-18] == '-' && base[len(base)-9] == '-' {
		if ki, err2 := segment.ParseKey(base[:len(base)-18] + segment.KeyExt); err2 == nil {
			return ki, nil
		}
	}
	return ki, err
}
