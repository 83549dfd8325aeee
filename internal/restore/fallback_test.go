package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/restore/restoretest"
)

func flipByte(p string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	b[len(b)/2] ^= 0x10
	return os.WriteFile(p, b, 0o644)
}

// TestRestore_FallbackStore damages one segment in a copy of the archive
// only, and restores from the copy: with the primary as a fallback the
// segment is read from there and the restore is exact; without, it fails
// naming the segment.
func TestRestore_FallbackStore(t *testing.T) {
	f := sharedFixture(t)
	ctx := context.Background()
	primary, err := file.Open(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		damage func(string) error
		// untouched: the preflight (sizes) catches it before anything is
		// created; a flipped byte shows when the segment is downloaded,
		// after the restore-state table exists but (here, one batch)
		// before any row is written.
		untouched bool
	}{
		{"bit flip", flipByte, false},
		{"missing", os.Remove, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyArchive(t, f.dir)
			a := openArchive(t, dir, nil)
			p, err := a.Plan(f.last, "")
			if err != nil {
				t.Fatal(err)
			}
			victim := p.Segments[len(p.Segments)/2].Key
			if err := tc.damage(filepath.Join(dir, victim)); err != nil {
				t.Fatal(err)
			}

			target := newEventCoreDB(t)
			before := restoretest.TargetState(t, target)
			_, err = Restore(ctx, p, Options{TargetURL: target, Parallel: 2})
			if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), victim) {
				t.Fatalf("restore from the damaged copy without a fallback: %v; want ErrIntegrity naming %s", err, victim)
			}
			after := restoretest.TargetState(t, target)
			if tc.untouched && after != before {
				t.Fatalf("target changed: %q -> %q", before, after)
			}
			if !strings.HasSuffix(after, " rows=0") {
				t.Fatalf("rows were written: %q", after)
			}

			a.WithFallbacks(primary)
			p, err = a.Plan(f.last, "")
			if err != nil {
				t.Fatal(err)
			}
			target = newEventCoreDB(t)
			res, err := Restore(ctx, p, Options{TargetURL: target, Parallel: 2})
			if err != nil {
				t.Fatalf("restore with the primary as fallback: %v", err)
			}
			if res.FromFallback != 1 {
				t.Fatalf("%d segments read from the fallback, want 1", res.FromFallback)
			}
			restoretest.Compare(t, f.sourceURL, target, f.last)
		})
	}
}

// TestCompareCopy checks verify of a copy against its primary: the same
// chain head passes, a copy behind passes with its lag, a copy ahead of
// its "primary" fails, and damage in the copy only is named by the copy's
// own verify.
func TestCompareCopy(t *testing.T) {
	f := sharedFixture(t)
	ctx := context.Background()
	primary, err := file.Open(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := catalog.Load(ctx, primary)
	if err != nil {
		t.Fatal(err)
	}
	last := pc.NextSeq() - 1

	dir := copyArchive(t, f.dir)
	cp, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	victim := pc.Segments()[1].Key
	if err := flipByte(filepath.Join(dir, victim)); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(ctx, cp, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := CompareCopy(ctx, cp, primary, rep)
	if err != nil {
		t.Fatal(err)
	}
	if !cr.HeadMatches || cr.ComparedSeq != last || cr.LagEntries != 0 {
		t.Fatalf("copy report: %+v", cr)
	}
	named := false
	for _, pr := range rep.Problems {
		named = named || (pr.Severity == SeverityFailure && pr.Object == victim)
	}
	if rep.Status != StatusFailure || !named {
		t.Fatalf("verify of the copy with a flipped byte in %s: %s %+v", victim, rep.Status, rep.Problems)
	}

	// The copy one entry behind: its head is the primary's entry last-1.
	behind := copyArchive(t, f.dir)
	if err := os.Remove(filepath.Join(behind, filepath.FromSlash(catalog.EntryKey(last)))); err != nil {
		t.Fatal(err)
	}
	bst, err := file.Open(behind)
	if err != nil {
		t.Fatal(err)
	}
	rep = &Report{Status: StatusOK}
	if cr, err = CompareCopy(ctx, bst, primary, rep); err != nil || !cr.HeadMatches || cr.LagEntries != 1 || rep.Status != StatusOK {
		t.Fatalf("copy one entry behind: %+v %v %+v", cr, err, rep)
	}
	// The other way round, the "copy" is ahead of its primary.
	rep = &Report{Status: StatusOK}
	if cr, err = CompareCopy(ctx, primary, bst, rep); err != nil || rep.Status != StatusFailure {
		t.Fatalf("copy ahead of its primary: %+v %v %+v", cr, err, rep)
	}
}
