package catalog

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/objstore"
)

func TestWriter_AppendLoadRoundTrip(t *testing.T) {
	st := fileStore(t)
	empty, err := Load(ctxT(t), st)
	if err != nil {
		t.Fatalf("load empty store: %v", err)
	}
	if empty.NextSeq() != 1 || len(empty.Entries()) != 0 || len(empty.Segments()) != 0 {
		t.Fatalf("empty catalog: next %d, %d entries, %d segments", empty.NextSeq(), len(empty.Entries()), len(empty.Segments()))
	}
	if _, _, ok := empty.Window(); ok {
		t.Fatalf("empty catalog has a window")
	}

	c, w, _ := newWriter(t, st, "archiver-a")
	written := appendN(t, w, c, 10)
	for i, e := range written {
		if e.Seq != uint64(i+1) || e.Epoch != 1 || e.Writer != "archiver-a" || e.Hash != e.ComputeHash() {
			t.Fatalf("entry %d = %+v", i+1, e)
		}
		if i > 0 && e.Prev != written[i-1].Hash {
			t.Fatalf("entry %d prev %s, want %s", e.Seq, e.Prev, written[i-1].Hash)
		}
	}
	if written[0].Prev != "" {
		t.Fatalf("entry 1 prev = %q, want empty", written[0].Prev)
	}

	got, err := Load(ctxT(t), st)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !reflect.DeepEqual(got.Entries(), c.Entries()) {
		t.Fatalf("loaded entries differ from written ones:\n got %+v\nwant %+v", got.Entries(), c.Entries())
	}
	if !reflect.DeepEqual(got.Segments(), c.Segments()) || len(got.Segments()) != 7 {
		t.Fatalf("loaded %d segments, writer has %d (want 7)", len(got.Segments()), len(c.Segments()))
	}
	if got.Watermark() != written[9].Watermark || got.NextSeq() != 11 {
		t.Fatalf("loaded watermark %+v next %d, want %+v and 11", got.Watermark(), got.NextSeq(), written[9].Watermark)
	}

	// The object is the canonical JSON of the entry.
	body := getRaw(t, st, EntryKey(3))
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"seq", "epoch", "writer", "written", "watermark", "prev", "hash"} {
		if _, ok := m[k]; !ok {
			t.Errorf("entry object lacks %q: %s", k, body)
		}
	}
	if _, ok := m["segment"]; ok {
		t.Errorf("watermark-only entry 3 has a segment member: %s", body)
	}
	if !strings.Contains(string(getRaw(t, st, EntryKey(1))), `"first_end_lsn":"0/1"`) {
		t.Errorf("entry 1 does not write positions as X/X: %s", getRaw(t, st, EntryKey(1)))
	}
}

func TestWriter_ConcurrentAppenders(t *testing.T) {
	backends(t, func(t *testing.T, newStore func(t *testing.T) objstore.Store) {
		st := newStore(t)
		lease, err := AcquireLease(ctxT(t), st, "a", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		const writers, rounds = 5, 4
		cats := make([]*Catalog, writers)
		ws := make([]*Writer, writers)
		for i := range writers {
			if cats[i], err = Load(ctxT(t), st); err != nil {
				t.Fatal(err)
			}
			ws[i] = NewWriter(st, cats[i], "w"+string(rune('0'+i)), lease.Epoch())
		}
		for round := range rounds {
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				winners []int
			)
			start := make(chan struct{})
			for i := range writers {
				wg.Go(func() {
					<-start
					lsn := cats[i].Watermark().LSN + 10
					_, err := ws[i].Append(ctxT(t), ref(lsn-9, lsn, base, base), Watermark{LSN: lsn, CommitTime: base})
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						winners = append(winners, i)
					case !errors.Is(err, ErrConflict):
						t.Errorf("round %d writer %d: err = %v, want nil or ErrConflict", round, i, err)
					}
				})
			}
			close(start)
			wg.Wait()
			if len(winners) != 1 {
				t.Fatalf("round %d: %d writers won seq %d (%v), want exactly 1", round, len(winners), round+1, winners)
			}
			for i := range writers {
				if err := cats[i].Refresh(ctxT(t), st); err != nil {
					t.Fatalf("refresh writer %d: %v", i, err)
				}
				if cats[i].NextSeq() != uint64(round+2) {
					t.Fatalf("writer %d next seq %d after refresh, want %d", i, cats[i].NextSeq(), round+2)
				}
			}
		}
		got, err := Load(ctxT(t), st)
		if err != nil {
			t.Fatalf("load after concurrent appends: %v", err)
		}
		if len(got.Entries()) != rounds {
			t.Fatalf("%d entries, want %d", len(got.Entries()), rounds)
		}
	})
}

func TestWriter_Fenced(t *testing.T) {
	backends(t, func(t *testing.T, newStore func(t *testing.T) objstore.Store) {
		clock := useFakeClock(t)
		st := newStore(t)
		ca, wa, la := newWriter(t, st, "a")
		appendN(t, wa, ca, 2)

		// a's lease lapses; b takes over with epoch 2.
		clock.advance(2 * time.Minute)
		cb, wb, lb := newWriter(t, st, "b")
		if lb.Epoch() != 2 {
			t.Fatalf("b's epoch = %d, want 2", lb.Epoch())
		}
		// a has not noticed: its next append and renewal are refused.
		if _, err := wa.Append(ctxT(t), nil, Watermark{LSN: 1000, CommitTime: base}); !errors.Is(err, ErrFenced) {
			t.Fatalf("append by the fenced writer: err = %v, want ErrFenced", err)
		}
		if err := la.Renew(ctxT(t)); !errors.Is(err, ErrFenced) {
			t.Fatalf("renew by the fenced holder: err = %v, want ErrFenced", err)
		}
		if err := la.Release(ctxT(t)); err != nil {
			t.Fatalf("release of a fenced lease: %v, want nil (no-op)", err)
		}
		appendN(t, wb, cb, 2)

		// A writer of an old epoch that loaded b's entries is refused even
		// before it looks at the epochs.
		old, err := Load(ctxT(t), st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewWriter(st, old, "a", 1).Append(ctxT(t), nil, Watermark{LSN: 5000}); !errors.Is(err, ErrFenced) {
			t.Fatalf("append with epoch 1 after epoch-2 entries: err = %v, want ErrFenced", err)
		}
		got, err := Load(ctxT(t), st)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(got.Entries()); n != 4 {
			t.Fatalf("%d entries, want 4", n)
		}
		if e := got.Entries(); e[1].Epoch != 1 || e[2].Epoch != 2 {
			t.Fatalf("epochs %d, %d; want 1 then 2", e[1].Epoch, e[2].Epoch)
		}
	})
}

func TestAcquireLease_ExpiryAndTakeover(t *testing.T) {
	clock := useFakeClock(t)
	st := fileStore(t)
	ctx := ctxT(t)
	a, err := AcquireLease(ctx, st, "a", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a.Epoch() != 1 || a.Holder() != "a" || !a.Expires().Equal(base.Add(10*time.Second)) {
		t.Fatalf("lease = epoch %d holder %s expires %v", a.Epoch(), a.Holder(), a.Expires())
	}
	var held *ErrLeaseHeld
	if _, err := AcquireLease(ctx, st, "b", 10*time.Second); !errors.As(err, &held) || held.Holder != "a" || held.Epoch != 1 {
		t.Fatalf("b acquires while a holds: err = %v, want ErrLeaseHeld by a", err)
	}
	clock.advance(6 * time.Second)
	if err := a.Renew(ctx); err != nil {
		t.Fatalf("renew: %v", err)
	}
	clock.advance(8 * time.Second) // 14 s after acquiring, 8 s after renewing
	if _, err := AcquireLease(ctx, st, "b", 10*time.Second); !errors.As(err, &held) {
		t.Fatalf("b acquires before the renewed lease expired: err = %v, want ErrLeaseHeld", err)
	}
	info, err := CurrentLease(ctx, st)
	if err != nil || info == nil || info.Holder != "a" || info.Expired(now()) {
		t.Fatalf("current lease = %+v, %v; want a's, unexpired", info, err)
	}
	clock.advance(2 * time.Second) // exactly at expiry
	b, err := AcquireLease(ctx, st, "b", 10*time.Second)
	if err != nil {
		t.Fatalf("b acquires after a's lease expired: %v", err)
	}
	if b.Epoch() != 2 {
		t.Fatalf("b's epoch = %d, want 2", b.Epoch())
	}
	if err := a.Renew(ctx); !errors.Is(err, ErrFenced) {
		t.Fatalf("a renews after takeover: err = %v, want ErrFenced", err)
	}
	// A released lease can be taken at once.
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := AcquireLease(ctx, st, "c", 10*time.Second)
	if err != nil || c.Epoch() != 3 {
		t.Fatalf("c acquires a released lease: epoch %v, err %v; want 3, nil", c, err)
	}
	// The holder of the latest epoch may take a new epoch at once (a restart).
	c2, err := AcquireLease(ctx, st, "c", 10*time.Second)
	if err != nil || c2.Epoch() != 4 {
		t.Fatalf("c re-acquires: %v, %v; want epoch 4", c2, err)
	}
	if err := c.Renew(ctx); !errors.Is(err, ErrFenced) {
		t.Fatalf("c's old incarnation renews: err = %v, want ErrFenced", err)
	}
}

func TestAcquireLease_ConcurrentContenders(t *testing.T) {
	backends(t, func(t *testing.T, newStore func(t *testing.T) objstore.Store) {
		st := newStore(t)
		const n = 6
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			leases []*Lease
		)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				l, err := AcquireLease(ctxT(t), st, "holder-"+string(rune('a'+i)), time.Minute)
				var held *ErrLeaseHeld
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					leases = append(leases, l)
				case !errors.As(err, &held):
					t.Errorf("contender %d: err = %v, want nil or ErrLeaseHeld", i, err)
				}
			})
		}
		close(start)
		wg.Wait()
		// Contenders that saw no epoch all raced for epoch 1; a late one may
		// have seen epoch 1 held. Either way exactly one holds each epoch,
		// and only the newest is not fenced.
		epochs := map[uint64]bool{}
		for _, l := range leases {
			if epochs[l.Epoch()] {
				t.Fatalf("two contenders hold epoch %d", l.Epoch())
			}
			epochs[l.Epoch()] = true
		}
		if len(leases) != 1 {
			t.Fatalf("%d contenders acquired the lease, want exactly 1", len(leases))
		}
	})
}

func TestWriter_InvalidEntries(t *testing.T) {
	st := fileStore(t)
	c, w, _ := newWriter(t, st, "a")
	first := ref(1, 100, base, base)
	if _, err := w.Append(ctxT(t), first, Watermark{LSN: 100, CommitTime: base}); err != nil {
		t.Fatal(err)
	}
	badSHA := *ref(101, 200, base, base)
	badSHA.SHA256 = "XYZ"
	outside := *ref(101, 200, base, base)
	outside.Key = "catalog/entries/00000000000000000001.json"
	backwards := *ref(101, 200, base, base)
	backwards.FirstEndLSN, backwards.LastEndLSN = 200, 101
	tests := []struct {
		name string
		seg  *SegmentRef
		wm   Watermark
	}{
		{"watermark going back", nil, Watermark{LSN: 99}},
		{"segment listed twice", first, Watermark{LSN: 100}},
		{"bad sha256", &badSHA, Watermark{LSN: 200}},
		{"key outside segments/", &outside, Watermark{LSN: 200}},
		{"segment ends before it starts", &backwards, Watermark{LSN: 200}},
	}
	for _, tt := range tests {
		if _, err := w.Append(ctxT(t), tt.seg, tt.wm); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%s: err = %v, want ErrInvalidEntry", tt.name, err)
		}
	}
	if c.NextSeq() != 2 {
		t.Fatalf("refused appends moved the catalog to seq %d", c.NextSeq())
	}
	objs, err := st.List(ctxT(t), EntriesPrefix, "")
	if err != nil || len(objs) != 1 {
		t.Fatalf("entries stored: %v, %v; want 1", objs, err)
	}
}

func TestWriter_RetryAfterLostResponse(t *testing.T) {
	inner := fileStore(t)
	lost := errors.New("connection reset after the request was sent")
	drop := true
	st := &faultyStore{Store: inner, afterPut: func(key string) error {
		if strings.HasPrefix(key, EntriesPrefix) && drop {
			drop = false
			return lost
		}
		return nil
	}}
	c, w, _ := newWriter(t, st, "a")
	seg := ref(1, 100, base, base)
	wm := Watermark{LSN: 100, CommitTime: base}
	if _, err := w.Append(ctxT(t), seg, wm); !errors.Is(err, lost) {
		t.Fatalf("first append: err = %v, want the lost response", err)
	}
	e, err := w.Append(ctxT(t), seg, wm)
	if err != nil {
		t.Fatalf("retried append: %v, want success (the entry is ours)", err)
	}
	if e.Seq != 1 || c.NextSeq() != 2 {
		t.Fatalf("retry wrote seq %d, next %d; want 1 and 2", e.Seq, c.NextSeq())
	}
	got, err := Load(ctxT(t), inner)
	if err != nil || len(got.Entries()) != 1 {
		t.Fatalf("load: %d entries, %v; want 1", len(got.Entries()), err)
	}
	// A different append after a lost response is a conflict, not a
	// silent overwrite.
	drop = true
	if _, err := w.Append(ctxT(t), nil, Watermark{LSN: 150}); !errors.Is(err, lost) {
		t.Fatalf("append: err = %v, want the lost response", err)
	}
	if _, err := w.Append(ctxT(t), nil, Watermark{LSN: 160}); !errors.Is(err, ErrConflict) {
		t.Fatalf("different append at the same seq: err = %v, want ErrConflict", err)
	}
}

// TestWriter_RetriedConditionalPut covers a conditional put whose first
// request succeeded but whose response was lost, so the SDK's retry got
// "exists" (412): the entry and the epoch are still ours.
func TestWriter_RetriedConditionalPut(t *testing.T) {
	inner := fileStore(t)
	st := &faultyStore{Store: inner, afterPut: func(key string) error {
		if strings.HasPrefix(key, EntriesPrefix) || strings.HasPrefix(key, EpochsPrefix) {
			return objstore.ErrExists
		}
		return nil
	}}
	lease, err := AcquireLease(ctxT(t), st, "a", time.Minute)
	if err != nil || lease.Epoch() != 1 {
		t.Fatalf("acquire with a retried create: %v, %v; want epoch 1", lease, err)
	}
	c, err := Load(ctxT(t), st)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(st, c, "a", lease.Epoch())
	if _, err := w.Append(ctxT(t), ref(1, 100, base, base), Watermark{LSN: 100, CommitTime: base}); err != nil {
		t.Fatalf("append with a retried create: %v", err)
	}
	// Someone else's epoch is still someone else's.
	var held *ErrLeaseHeld
	if _, err := AcquireLease(ctxT(t), st, "b", time.Minute); !errors.As(err, &held) || held.Holder != "a" {
		t.Fatalf("b acquires: err = %v, want ErrLeaseHeld by a", err)
	}
}
