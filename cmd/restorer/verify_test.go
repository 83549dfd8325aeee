package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// withDebrisAndCheckpoint copies the fixture's archive and appends one
// entry recording a debris object (a copy of a segment under another key)
// with a checkpoint at that entry, so that the archive holds every kind of
// stored object: segments, entries, a checkpoint, an epoch and a debris
// object. It returns the directory and the debris key.
func withDebrisAndCheckpoint(t *testing.T, src string) (string, string) {
	t.Helper()
	ctx := context.Background()
	dir := testkit.CopyDir(t, src)
	st, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	lease, err := catalog.AcquireLease(ctx, st, "restoretest", time.Minute) // the fixture writer's name: it takes over at once
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	seg := c.Segments()[0]
	b, err := objstore.ReadAll(ctx, st, seg.Key, seg.Size)
	if err != nil {
		t.Fatal(err)
	}
	ref := seg.AsDebris()
	ref.Key = strings.Replace(seg.Key, ".tms", "-debris.tms", 1)
	if err := st.Put(ctx, ref.Key, bytes.NewReader(b), int64(len(b)), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	w := catalog.NewWriter(st, c, "restoretest", lease.Epoch())
	w.CheckpointEvery = 1
	if _, err := w.AppendDebris(ctx, []catalog.DebrisRef{ref}); err != nil {
		t.Fatal(err)
	}
	if err := w.CheckpointError(); err != nil {
		t.Fatal(err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	return dir, ref.Key
}

// TestRestorer_VerifyFlippedByteInEveryObject: one flipped byte in any
// stored object — a segment, a catalog entry, a checkpoint, an epoch
// object, a debris object — makes `restorer verify` exit non-zero (3 for
// a FAILURE, 4 for a WARNING) and name the object; the intact archive
// exits 0.
func TestRestorer_VerifyFlippedByteInEveryObject(t *testing.T) {
	f := fixture(t)
	base, debris := withDebrisAndCheckpoint(t, f.Dir)
	if r := runCmd(t, "verify", "--store", base); r.code != 0 {
		t.Fatalf("intact archive: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	first := func(dir, sub string) string {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil || len(entries) == 0 {
			t.Fatalf("no objects under %s: %v", sub, err)
		}
		return filepath.ToSlash(filepath.Join(sub, entries[0].Name()))
	}
	var segment string
	_ = filepath.Walk(filepath.Join(base, "segments"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && segment == "" && !strings.HasSuffix(p, "-debris.tms") {
			segment, _ = filepath.Rel(base, p)
		}
		return nil
	})
	for _, tc := range []struct {
		name, key string
		at        func(n int) int // the byte to flip in an object of n bytes
		codes     []int           // 3 for a FAILURE; 4 for a WARNING (a flip in an empty member's name, which the hash cannot see)
	}{
		{"segment", segment, func(n int) int { return n / 2 }, []int{3}},
		{"catalog entry", first(base, "catalog/entries"), func(n int) int { return n / 2 }, []int{3, 4}},
		{"checkpoint", first(base, "catalog/checkpoints"), func(n int) int { return n / 2 }, []int{3, 4}},
		{"epoch", first(base, "catalog/epochs"), func(n int) int { return 3 }, []int{4}},
		{"debris object", debris, func(n int) int { return n / 2 }, []int{4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testkit.CopyDir(t, base)
			p := filepath.Join(dir, tc.key)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[tc.at(len(b))] ^= 0x01
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			r := runCmd(t, "verify", "--store", dir)
			if !slices.Contains(tc.codes, r.code) || !strings.Contains(r.stdout, tc.key) {
				t.Fatalf("verify with a flipped byte in %s: exit %d, want one of %v naming it\n%s%s", tc.key, r.code, tc.codes, r.stdout, r.stderr)
			}
			t.Logf("exit %d\n%s", r.code, r.stdout)
		})
	}
}

// TestRestorer_VerifyKnownGap: a deleted segment fails verify (exit 3);
// once `archiver catalog known-gap` records it and the streams verify
// named, verify reports them as KNOWN and exits 0; the JSON report counts
// them.
func TestRestorer_VerifyKnownGap(t *testing.T) {
	f := fixture(t)
	archiver := testrig.BuildBinary(t, "./cmd/archiver")
	dir := testkit.CopyDir(t, f.Dir)
	st, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Load(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	victim := c.Segments()[1].Key
	if err := os.Remove(filepath.Join(dir, victim)); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, "verify", "--json", "--store", dir)
	if r.code != 3 {
		t.Fatalf("deleted segment: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	args := []string{"catalog", "known-gap", "--store", dir, "--reason", "test: segment deleted", "--operator", "tester", "--object", victim}
	seen := map[string]bool{}
	for _, p := range records(t, r.stdout)[0]["problems"].([]any) {
		if s, _ := p.(map[string]any)["stream"].(string); s != "" && !seen[s] {
			seen[s] = true
			args = append(args, "--stream", s)
		}
	}
	if len(seen) == 0 {
		t.Fatalf("verify named no stream: %s", r.stdout)
	}
	out, err := exec.Command(archiver, args...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "recorded known gap as catalog entry") {
		t.Fatalf("archiver catalog known-gap: %v\n%s", err, out)
	}
	r = runCmd(t, "verify", "--store", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "KNOWN    object object "+victim) {
		t.Fatalf("verify with the known gap: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCmd(t, "verify", "--json", "--store", dir)
	if rec := records(t, r.stdout)[0]; r.code != 0 || rec["status"] != "OK" || rec["known"].(float64) < 1 {
		t.Fatalf("verify --json with the known gap: exit %d %v", r.code, rec)
	}
	// without reason: a usage error, nothing written
	out, err = exec.Command(archiver, "catalog", "known-gap", "--store", dir, "--object", victim).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--reason is required") {
		t.Fatalf("known-gap without --reason: %v\n%s", err, out)
	}
}
