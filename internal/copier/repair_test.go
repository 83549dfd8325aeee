package copier_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/copier"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// TestCopy_DamageInCopyOnly flips a byte of one segment and deletes
// another in a copy on versitygw (region B) only: verify of the copy names
// both, a sync does not hide them, and Repair copies both again from the
// primary, after which the copy verifies clean.
func TestCopy_DamageInCopyOnly(t *testing.T) {
	a := newArchive(t)
	a.flush(8)
	srv := testrig.StartS3(t)
	b := s3Store(t, srv, "region-b", false)
	c := copier.New(a.store, b, copier.Options{TempDir: t.TempDir()})
	syncOK(t, c)
	segs := a.cat.Segments()
	flipped, deleted := segs[2].Key, segs[5].Key
	path := filepath.Join(srv.DataDir, "region-b", "archive", filepath.FromSlash(flipped))
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	body[len(body)/2] ^= 0x40
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctxT(t), deleted); err != nil {
		t.Fatal(err)
	}

	named := func() []string {
		rep, err := catalog.Verify(ctxT(t), b, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range rep.Findings {
			if f.Severity == catalog.Failure && f.Object != "" && !slices.Contains(out, f.Object) {
				out = append(out, f.Object)
			}
		}
		slices.Sort(out)
		return out
	}
	want := []string{flipped, deleted}
	slices.Sort(want)
	namesBoth := func(got []string) bool { return slices.Contains(got, flipped) && slices.Contains(got, deleted) }
	// (A stream's version gap after the deleted segment is named too.)
	if got := named(); !namesBoth(got) {
		t.Fatalf("verify of the damaged copy names %v, want %v among them", got, want)
	}
	if pr, err := catalog.Verify(ctxT(t), a.store, nil); err != nil || pr.Worst() != catalog.OK {
		t.Fatalf("the primary is not clean: %v %v", err, pr.Findings)
	}
	syncOK(t, c)
	if got := named(); !namesBoth(got) {
		t.Fatalf("after a sync verify names %v, want %v still", got, want)
	}
	repaired, err := c.Repair(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(repaired)
	if !slices.Equal(repaired, want) {
		t.Fatalf("repaired %v, want %v", repaired, want)
	}
	sameArchive(t, a.store, b)
}
