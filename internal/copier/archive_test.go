package copier_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/merge"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/segment"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func table() event.Table {
	return event.Table{Schema: "public", Name: "eventcore_events", Columns: []event.Column{
		{Name: "event_id", Type: "uuid", OID: 2950, NotNull: true, Key: true},
		{Name: "stream_id", Type: "text", OID: 25, NotNull: true},
		{Name: "stream_version", Type: "bigint", OID: 20, NotNull: true},
		{Name: "event_data", Type: "jsonb", OID: 3802},
	}}
}

func ctxT(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func fileStore(t *testing.T, name string) objstore.Store {
	t.Helper()
	st, err := file.Open(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// archive is a real archive in a file store, written flush by flush as the
// archiver writes it, merged by the real merger and collected by real gc.
type archive struct {
	t       *testing.T
	store   objstore.Store
	cat     *catalog.Catalog
	w       *catalog.Writer
	clock   time.Time
	pos     event.Position
	xid     uint32
	version map[string]int64
	events  int
}

func newArchive(t *testing.T) *archive {
	t.Helper()
	a := &archive{t: t, store: fileStore(t, "primary"), clock: t0, pos: 100, xid: 10, version: map[string]int64{}}
	lease, err := catalog.AcquireLease(ctxT(t), a.store, "writer", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if a.cat, err = catalog.Load(ctxT(t), a.store); err != nil {
		t.Fatal(err)
	}
	a.w = catalog.NewWriter(a.store, a.cat, "writer", lease.Epoch())
	a.w.CheckpointEvery = 16
	a.w.Clock = func() time.Time { return a.clock }
	return a
}

// flush appends n flush segments of two one-event transactions each, a
// second apart.
func (a *archive) flush(n int) {
	a.t.Helper()
	for range n {
		a.clock = a.clock.Add(time.Second)
		var buf bytes.Buffer
		sw, err := segment.NewWriter(&buf, segment.WriterOptions{Compression: segment.Zstd, SystemID: "1", Table: table()})
		if err != nil {
			a.t.Fatal(err)
		}
		for range 2 {
			prev := a.pos
			a.pos += 10
			a.xid++
			stream := fmt.Sprintf("s-%d", a.xid%5)
			a.version[stream]++
			e := &event.Event{Table: "public.eventcore_events", CommitLSN: a.pos - 1, EndLSN: a.pos, PrevLSN: prev,
				CommitTime: a.clock, XID: a.xid, Count: 1,
				Values: [][]byte{fmt.Appendf(nil, "00000000-0000-0000-0000-%012d", a.events), []byte(stream),
					fmt.Append(nil, a.version[stream]), fmt.Appendf(nil, `{"n": %d}`, a.events)}}
			if err := sw.Append(e); err != nil {
				a.t.Fatal(err)
			}
			a.events++
		}
		tr, err := sw.Close()
		if err != nil {
			a.t.Fatal(err)
		}
		key := segment.Key(tr.MinCommitTime.Truncate(time.Minute), tr.FirstEndLSN, tr.LastEndLSN, table().ID())
		if err := a.store.Put(ctxT(a.t), key, bytes.NewReader(buf.Bytes()), int64(buf.Len()), objstore.PutOptions{IfAbsent: true}); err != nil {
			a.t.Fatal(err)
		}
		sum := sha256.Sum256(buf.Bytes())
		ref := catalog.SegmentRef{Key: key, Size: int64(buf.Len()), SHA256: hex.EncodeToString(sum[:]), Events: tr.Events,
			Transactions: tr.Transactions, Table: "public.eventcore_events", TableID: table().ID(),
			Compression: "zstd", FirstEndLSN: tr.FirstEndLSN, LastEndLSN: tr.LastEndLSN, PrevLSN: tr.PrevLSN,
			MinCommitTime: tr.MinCommitTime, MaxCommitTime: tr.MaxCommitTime, RawBytes: tr.RawBytes}
		if _, err := a.w.Append(ctxT(a.t), &ref, catalog.Watermark{LSN: a.pos, CommitTime: tr.MaxCommitTime}); err != nil {
			a.t.Fatal(err)
		}
	}
}

// merge flushes once a minute later, so the minutes before are done, and
// runs every due minute merge.
func (a *archive) merge() merge.Result {
	a.t.Helper()
	a.clock = a.clock.Add(time.Minute)
	a.flush(1)
	m := &merge.Merger{Store: a.store, Catalog: a.cat, Writer: a.w, TempDir: a.t.TempDir(),
		Policy: merge.Policy{Levels: []time.Duration{time.Minute}, Settle: time.Second}}
	res, err := m.RunOnce(ctxT(a.t))
	if err != nil {
		a.t.Fatal(err)
	}
	if res.Merges == 0 {
		a.t.Fatal("nothing merged")
	}
	return res
}

// gc collects store with grace by the archive's clock.
func (a *archive) gc(store objstore.Store, grace time.Duration) *catalog.GCResult {
	a.t.Helper()
	res, err := catalog.Collect(ctxT(a.t), store, catalog.GCOptions{Grace: grace, Clock: func() time.Time { return a.clock }})
	if err != nil {
		a.t.Fatal(err)
	}
	return res
}
