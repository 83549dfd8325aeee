package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/objstore/s3"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// base is the fake clock's start.
var base = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// fakeClock replaces the package clock for one test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func useFakeClock(t *testing.T) *fakeClock {
	c := &fakeClock{t: base}
	old := now
	now = c.now
	t.Cleanup(func() { now = old })
	return c
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func fileStore(t *testing.T) objstore.Store {
	s, err := file.Open(filepath.Join(t.TempDir(), "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// backends runs fn against the file store and a real S3 server.
func backends(t *testing.T, fn func(t *testing.T, newStore func(t *testing.T) objstore.Store)) {
	t.Run("file", func(t *testing.T) { fn(t, fileStore) })
	t.Run("s3", func(t *testing.T) {
		srv := testrig.StartS3(t)
		fn(t, func(t *testing.T) objstore.Store {
			st, err := s3.Open(context.Background(), srv.StoreURL(srv.NewBucket(t), "archive"), s3.Options{
				AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
			})
			if err != nil {
				t.Fatal(err)
			}
			return st
		})
	})
}

// ref returns a well-formed segment reference for end LSNs first..last
// with commit times min..max.
func ref(first, last event.Position, minT, maxT time.Time) *SegmentRef {
	key := fmt.Sprintf("segments/%04d/%02d/%02d/%02d/%02d/t1-%016X-%016X.tms",
		minT.Year(), int(minT.Month()), minT.Day(), minT.Hour(), minT.Minute(), uint64(first), uint64(last))
	sum := sha256.Sum256([]byte(key))
	return &SegmentRef{Key: key, Size: 1000, SHA256: hex.EncodeToString(sum[:]), Events: 10, Transactions: 5,
		Table: "public.eventcore_events", TableID: "t1", Compression: "zstd", FirstEndLSN: first, LastEndLSN: last,
		PrevLSN: first - 1, MinCommitTime: minT, MaxCommitTime: maxT, RawBytes: 5000}
}

// appendN appends n entries: every third one watermark-only, the others
// with a segment, watermarks rising by 100.
func appendN(t *testing.T, w *Writer, c *Catalog, n int) []Entry {
	t.Helper()
	var out []Entry
	for range n {
		wm := c.Watermark()
		lsn := wm.LSN + 100
		at := base.Add(time.Duration(lsn) * time.Second)
		var seg *SegmentRef
		if c.NextSeq()%3 != 0 {
			seg = ref(wm.LSN+1, lsn, at.Add(-time.Minute), at)
		}
		e, err := w.Append(ctxT(t), seg, Watermark{LSN: lsn, CommitTime: at})
		if err != nil {
			t.Fatalf("append entry %d: %v", c.NextSeq(), err)
		}
		out = append(out, e)
	}
	return out
}

// newWriter acquires a lease for holder and returns a loaded catalog and
// writer.
func newWriter(t *testing.T, st objstore.Store, holder string) (*Catalog, *Writer, *Lease) {
	t.Helper()
	lease, err := AcquireLease(ctxT(t), st, holder, time.Minute)
	if err != nil {
		t.Fatalf("acquire lease for %s: %v", holder, err)
	}
	c, err := Load(ctxT(t), st)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return c, NewWriter(st, c, holder, lease.Epoch()), lease
}

// putRaw overwrites an object with body.
func putRaw(t *testing.T, st objstore.Store, key string, body []byte) {
	t.Helper()
	if err := st.Put(ctxT(t), key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func getRaw(t *testing.T, st objstore.Store, key string) []byte {
	t.Helper()
	b, err := objstore.ReadAll(ctxT(t), st, key, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// faultyStore wraps a store; a non-nil afterPut runs after each successful
// Put and may turn it into an error (a lost response).
type faultyStore struct {
	objstore.Store
	afterPut func(key string) error
}

func (f *faultyStore) Put(ctx context.Context, key string, r io.Reader, size int64, opts objstore.PutOptions) error {
	if err := f.Store.Put(ctx, key, r, size, opts); err != nil {
		return err
	}
	if f.afterPut != nil {
		return f.afterPut(key)
	}
	return nil
}

// storeT shortens test signatures.
type storeT = objstore.Store

func eventPos(n int) event.Position { return event.Position(n) }
