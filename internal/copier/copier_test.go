package copier_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/copier"
	"github.com/tidemark/tidemark/internal/objstore"
)

// sameArchive fails unless copy's catalog ends at the primary's head with
// the same hash and the same live segments, and verify of the copy is clean.
func sameArchive(t *testing.T, primary, copy objstore.Store) *catalog.Report {
	t.Helper()
	pc, err := catalog.Load(ctxT(t), primary)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := catalog.Load(ctxT(t), copy)
	if err != nil {
		t.Fatalf("load the copy: %v", err)
	}
	ph, _ := pc.Head()
	ch, _ := cc.Head()
	if pc.NextSeq() != cc.NextSeq() || ph != ch {
		t.Fatalf("copy ends at entry %d (%.12s), the primary at %d (%.12s)", cc.NextSeq()-1, ch, pc.NextSeq()-1, ph)
	}
	ps, cs := pc.Segments(), cc.Segments()
	if len(ps) != len(cs) {
		t.Fatalf("copy has %d live segments, the primary %d", len(cs), len(ps))
	}
	for i := range ps {
		if ps[i].Key != cs[i].Key || ps[i].SHA256 != cs[i].SHA256 {
			t.Fatalf("live segment %d: copy %s, primary %s", i, cs[i].Key, ps[i].Key)
		}
	}
	rep, err := catalog.Verify(ctxT(t), copy, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Worst() != catalog.OK {
		t.Fatalf("verify of the copy: %v", rep.Findings)
	}
	return rep
}

func syncOK(t *testing.T, c *copier.Copy) copier.Status {
	t.Helper()
	st, err := c.Sync(ctxT(t))
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if st.LagEntries != 0 || st.LagSeconds != 0 {
		t.Fatalf("after a sync the copy lags: %+v", st)
	}
	return st
}

func TestCopy_FollowsFlushesMergesAndGC(t *testing.T) {
	a := newArchive(t)
	a.flush(40)
	dst := fileStore(t, "copy")
	c := copier.New(a.store, dst, copier.Options{TempDir: t.TempDir(), CheckpointEvery: 16})
	st := syncOK(t, c)
	if st.Entries != 40 || st.Objects != 40 {
		t.Fatalf("first sync copied %d entries and %d objects, want 40 and 40", st.Entries, st.Objects)
	}
	sameArchive(t, a.store, dst)

	// Merges and gc on the primary: the copy copies the merged segments
	// and keeps the superseded ones for its own, longer grace.
	res := a.merge()
	a.flush(30)
	a.clock = a.clock.Add(time.Hour)
	a.flush(1)
	if gc := a.gc(a.store, 10*time.Minute); gc.Segments != res.Inputs {
		t.Fatalf("primary gc deleted %d superseded segments, want %d", gc.Segments, res.Inputs)
	}
	st = syncOK(t, c)
	if st.Objects != res.Merges+32 {
		t.Fatalf("second sync copied %d objects, want %d merged and 32 flushed", st.Objects, res.Merges+32)
	}
	rep := sameArchive(t, a.store, dst)
	if rep.Superseded != res.Inputs {
		t.Fatalf("the copy keeps %d superseded objects, want %d", rep.Superseded, res.Inputs)
	}
	if gc := a.gc(dst, 48*time.Hour); gc.Segments != 0 {
		t.Fatalf("copy gc with a 48 h grace deleted %d segments", gc.Segments)
	}
	a.clock = a.clock.Add(48 * time.Hour)
	if gc := a.gc(dst, 48*time.Hour); gc.Segments != res.Inputs {
		t.Fatalf("copy gc after its grace deleted %d segments, want %d", gc.Segments, res.Inputs)
	}
	a.flush(1)
	syncOK(t, c)
	sameArchive(t, a.store, dst)
}

// flaky is a real store that fails every call while down is set, as an
// unreachable region does.
type flaky struct {
	objstore.Store
	down atomic.Bool
}

var errUnreachable = errors.New("dial tcp: connection refused")

func (f *flaky) fail() error {
	if f.down.Load() {
		return errUnreachable
	}
	return nil
}

func (f *flaky) Put(ctx context.Context, key string, r io.Reader, size int64, o objstore.PutOptions) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Put(ctx, key, r, size, o)
}

func (f *flaky) Get(ctx context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	if err := f.fail(); err != nil {
		return nil, objstore.ObjectInfo{}, err
	}
	return f.Store.Get(ctx, key)
}

func (f *flaky) Stat(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	if err := f.fail(); err != nil {
		return objstore.ObjectInfo{}, err
	}
	return f.Store.Stat(ctx, key)
}

func (f *flaky) List(ctx context.Context, prefix, after string) ([]objstore.ObjectInfo, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.List(ctx, prefix, after)
}

func TestCopy_UnreachableCopyHoldsBackOnlyItself(t *testing.T) {
	a := newArchive(t)
	a.flush(10)
	good := fileStore(t, "region-a")
	bad := &flaky{Store: fileStore(t, "region-b")}
	copies := []*copier.Copy{
		copier.New(a.store, good, copier.Options{TempDir: t.TempDir(), CheckpointEvery: 16}),
		copier.New(a.store, bad, copier.Options{TempDir: t.TempDir(), CheckpointEvery: 16}),
	}
	if _, err := copier.SyncAll(ctxT(t), copies); err != nil {
		t.Fatal(err)
	}
	bad.down.Store(true)
	a.flush(50)
	sts, err := copier.SyncAll(ctxT(t), copies)
	if !errors.Is(err, errUnreachable) {
		t.Fatalf("sync with region b down: %v", err)
	}
	if sts[0].Error != "" || sts[0].LagEntries != 0 {
		t.Fatalf("region a: %+v", sts[0])
	}
	if sts[1].LagEntries != 50 || sts[1].LagSeconds != 50 {
		t.Fatalf("region b while down: lag %d entries, %v s; want 50 and 50", sts[1].LagEntries, sts[1].LagSeconds)
	}
	if err := copier.Ready(copies); err != nil {
		t.Fatalf("ready with one copy down: %v", err)
	}
	sameArchive(t, a.store, good)
	bad.down.Store(false)
	st := syncOK(t, copies[1])
	if st.Entries != 50 {
		t.Fatalf("region b caught up %d entries, want 50", st.Entries)
	}
	sameArchive(t, a.store, bad.Store)
}

func TestCopy_StartsFromCheckpointAfterPrimaryGC(t *testing.T) {
	a := newArchive(t)
	a.flush(10)
	dst := fileStore(t, "copy")
	c := copier.New(a.store, dst, copier.Options{TempDir: t.TempDir(), CheckpointEvery: 16})
	syncOK(t, c)

	// The copy is gone for longer than the primary's gc grace: the
	// primary folds the entries it lacks into a checkpoint.
	res := a.merge()
	a.flush(40)
	a.clock = a.clock.Add(time.Hour)
	a.flush(20)
	gc := a.gc(a.store, 10*time.Minute)
	if gc.Entries == 0 || gc.Segments != res.Inputs {
		t.Fatalf("primary gc: %+v", gc)
	}
	st := syncOK(t, c)
	if !st.Jumped {
		t.Fatalf("sync did not start the copy from the primary's checkpoint: %+v", st)
	}
	sameArchive(t, a.store, dst)

	// A new copy of an archive whose first entries are gone starts the same way.
	fresh := fileStore(t, "fresh")
	if st := syncOK(t, copier.New(a.store, fresh, copier.Options{TempDir: t.TempDir()})); !st.Jumped {
		t.Fatalf("a fresh copy did not start from the checkpoint: %+v", st)
	}
	sameArchive(t, a.store, fresh)
}

func TestCopy_DamagedPrimaryObjectIsNotCopied(t *testing.T) {
	a := newArchive(t)
	a.flush(5)
	key := a.cat.Segments()[2].Key
	path := filepath.Join(a.store.String(), filepath.FromSlash(key))
	if strings.HasPrefix(a.store.String(), "file://") {
		path = filepath.Join(strings.TrimPrefix(a.store.String(), "file://"), filepath.FromSlash(key))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := fileStore(t, "copy")
	c := copier.New(a.store, dst, copier.Options{TempDir: t.TempDir()})
	_, err = c.Sync(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), key) {
		t.Fatalf("sync of a damaged object: %v; want an error naming %s", err, key)
	}
	if _, err := dst.Stat(ctxT(t), key); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("the damaged object reached the copy: %v", err)
	}
	cc, err := catalog.Load(ctxT(t), dst)
	if err != nil {
		t.Fatal(err)
	}
	if cc.NextSeq() != 3 {
		t.Fatalf("the copy holds %d entries, want the 2 before the damaged object's", cc.NextSeq()-1)
	}
}
