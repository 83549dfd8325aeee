package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/copier"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/testing/golden"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// TestCopy_OnceWithStores copies archive-v1 (an archive an earlier version
// wrote) with `archiver copy --once --json --stores`: the copy verifies
// clean and ends at the primary's head; `archiver gc --stores --name` then
// collects the copy with its own grace.
func TestCopy_OnceWithStores(t *testing.T) {
	bin := testrig.BuildBinary(t, "./cmd/archiver")
	primary := testkit.CopyDir(t, golden.ArchiveV1Dir())
	replica := filepath.Join(t.TempDir(), "replica")
	policy := filepath.Join(t.TempDir(), "stores.yaml")
	body := fmt.Sprintf("stores:\n  - {name: primary, url: %q}\n  - {name: replica, url: %q, gc_grace: 48h}\n", primary, replica)
	if err := os.WriteFile(policy, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "copy", "--once", "--json", "--stores", policy, "--http", "").Output()
	if err != nil {
		t.Fatalf("archiver copy: %v\n%s", err, out)
	}
	var sts []copier.Status
	if err := json.Unmarshal(out, &sts); err != nil || len(sts) != 1 {
		t.Fatalf("copy --json printed %q (%v)", out, err)
	}
	ctx := context.Background()
	pst, _ := file.Open(primary)
	rst, _ := file.Open(replica)
	pc, err := catalog.Load(ctx, pst)
	if err != nil {
		t.Fatal(err)
	}
	if st := sts[0]; st.Copy != "replica" || st.Error != "" || st.CopySeq != pc.NextSeq()-1 || st.LagEntries != 0 || st.Objects == 0 {
		t.Fatalf("copy status: %+v (primary at %d)", st, pc.NextSeq()-1)
	}
	rep, err := catalog.Verify(ctx, rst, nil)
	if err != nil || rep.Worst() != catalog.OK {
		t.Fatalf("verify of the copy: %v %v", err, rep.Findings)
	}
	// Damage in the copy only: --repair copies the segment again.
	victim := pc.Segments()[0].Key
	vpath := filepath.Join(replica, filepath.FromSlash(victim))
	b, err := os.ReadFile(vpath)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(vpath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin, "copy", "--repair", "--json", "--stores", policy, "--http", "").Output()
	if err != nil || !strings.Contains(string(out), `"repaired":["`+victim+`"]`) {
		t.Fatalf("archiver copy --repair: %v\n%s", err, out)
	}
	if rep, err := catalog.Verify(ctx, rst, nil); err != nil || rep.Worst() != catalog.OK {
		t.Fatalf("verify of the repaired copy: %v %v", err, rep.Findings)
	}
	out, err = exec.Command(bin, "gc", "--stores", policy, "--name", "replica", "--dry-run").CombinedOutput()
	if err != nil {
		t.Fatalf("archiver gc --stores: %v\n%s", err, out)
	}
	if want := "within the 48h0m0s grace"; !strings.Contains(string(out), want) {
		t.Fatalf("gc did not use the replica's grace (%q):\n%s", want, out)
	}
}
