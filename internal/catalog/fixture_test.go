package catalog

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
)

// fixture builds a real archive: EventCore events in chain order, written
// as segments to the store and listed in the catalog.
type fixture struct {
	t       *testing.T
	st      objstore.Store
	c       *Catalog
	w       *Writer
	keyring *segment.Keyring
	table   event.Table

	pos      event.Position // position of the last chain item
	ct       time.Time
	versions map[string]int64
	nextID   int
	xid      uint32
	refs     []SegmentRef // appended, in order
}

func newFixture(t *testing.T, st objstore.Store, keyring *segment.Keyring) *fixture {
	c, w, _ := newWriter(t, st, "archiver-a")
	return &fixture{t: t, st: st, c: c, w: w, keyring: keyring, table: eventcore.TableDef(),
		ct: base, versions: map[string]int64{}, xid: 1000}
}

// txn returns the next transaction: n events on stream.
func (f *fixture) txn(n int, stream string) []*event.Event {
	end := f.pos + 10
	f.ct = f.ct.Add(3 * time.Second)
	f.xid++
	var out []*event.Event
	for i := range n {
		f.versions[stream]++
		f.nextID++
		out = append(out, f.event(end, f.pos, i, n, stream, f.versions[stream], f.nextID))
	}
	f.pos = end
	return out
}

func (f *fixture) event(end, prev event.Position, index, count int, stream string, version int64, id int) *event.Event {
	return &event.Event{Table: f.table.QualifiedName(), CommitLSN: end - 1, EndLSN: end, PrevLSN: prev,
		CommitTime: f.ct, XID: f.xid, Index: index, Count: count, Values: [][]byte{
			[]byte(fmt.Sprintf("00000000-0000-4000-8000-%012d", id)),
			[]byte(stream),
			[]byte(strconv.FormatInt(version, 10)),
			[]byte("Happened"),
			[]byte(`{"n":` + strconv.Itoa(id) + `}`),
			nil,
			[]byte(f.ct.Format("2006-01-02 15:04:05.999999-07")),
		}}
}

// heartbeat moves the chain on by an item that stores nothing.
func (f *fixture) heartbeat() { f.pos += 5 }

// batch returns transactions of 1–3 events over three streams, with a
// heartbeat after every third.
func (f *fixture) batch(txns int) []*event.Event {
	var out []*event.Event
	for i := range txns {
		out = append(out, f.txn(1+i%3, fmt.Sprintf("order-%d", i%3))...)
		if i%3 == 2 {
			f.heartbeat()
		}
	}
	return out
}

// upload writes events as a segment object (under an extra key suffix
// when tag is set, to make a second copy) and returns its reference.
func (f *fixture) upload(events []*event.Event, tag string) SegmentRef {
	f.t.Helper()
	var buf bytes.Buffer
	sw, err := segment.NewWriter(&buf, segment.WriterOptions{Compression: segment.Zstd, Keyring: f.keyring,
		SystemID: "7300000000000000001", Table: f.table})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, e := range events {
		if err := sw.Append(e); err != nil {
			f.t.Fatal(err)
		}
	}
	tr, err := sw.Close()
	if err != nil {
		f.t.Fatal(err)
	}
	bucket := tr.MinCommitTime.Truncate(time.Minute)
	if tag != "" {
		bucket = bucket.Add(time.Duration(len(tag)) * time.Hour)
	}
	key := segment.Key(bucket, tr.FirstEndLSN, tr.LastEndLSN, f.table.ID())
	putRaw(f.t, f.st, key, buf.Bytes())
	keyID := ""
	if f.keyring != nil {
		keyID = f.keyring.ActiveID()
	}
	return SegmentRef{Key: key, Size: tr.StoredBytes, SHA256: tr.SHA256, Events: tr.Events, Transactions: tr.Transactions,
		Table: f.table.QualifiedName(), TableID: f.table.ID(), KeyID: keyID, Compression: segment.Zstd.String(),
		FirstEndLSN: tr.FirstEndLSN, LastEndLSN: tr.LastEndLSN, PrevLSN: tr.PrevLSN,
		MinCommitTime: tr.MinCommitTime, MaxCommitTime: tr.MaxCommitTime, RawBytes: tr.RawBytes}
}

// appendRef lists ref in the catalog with the watermark at the chain's
// current position.
func (f *fixture) appendRef(ref SegmentRef) {
	f.t.Helper()
	wm := Watermark{LSN: max(f.pos, f.c.Watermark().LSN), CommitTime: f.ct}
	if _, err := f.w.Append(ctxT(f.t), &ref, wm); err != nil {
		f.t.Fatalf("append %s: %v", ref.Key, err)
	}
	f.refs = append(f.refs, ref)
}

// add uploads events as a segment and lists it.
func (f *fixture) add(events []*event.Event) SegmentRef {
	ref := f.upload(events, "")
	f.appendRef(ref)
	return ref
}

// standard builds an archive of n segments of five transactions each, with
// a watermark-only entry after the second.
func (f *fixture) standard(n int) {
	for i := range n {
		f.add(f.batch(5))
		if i == 1 {
			f.heartbeat()
			if _, err := f.w.Append(ctxT(f.t), nil, Watermark{LSN: f.pos, CommitTime: f.ct}); err != nil {
				f.t.Fatal(err)
			}
		}
	}
}

func testKeyring(t *testing.T) *segment.Keyring {
	id, err := segment.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := segment.ParseKeyring(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
