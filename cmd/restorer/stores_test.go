package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/restore/restoretest"
	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// TestRestorer_Stores restores and verifies a copy named in a policy file
// whose one segment was deleted: restore reads it from the primary (the
// file's first store), verify of the copy names it and compares the copy's
// head with the primary's; without the policy the restore fails naming it.
func TestRestorer_Stores(t *testing.T) {
	f := fixture(t)
	replica := testkit.CopyDir(t, f.Dir)
	st, err := file.Open(replica)
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Load(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	victim := c.Segments()[len(c.Segments())/2].Key
	if err := os.Remove(filepath.Join(replica, filepath.FromSlash(victim))); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(t.TempDir(), "stores.yaml")
	body := fmt.Sprintf("stores:\n  - {name: primary, url: %q}\n  - {name: replica, url: %q}\n", f.Dir, replica)
	if err := os.WriteFile(policy, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}

	target := eventCoreDB(t)
	r := runCmd(t, "restore", "--json", "--stores", policy, "--from", "replica", "--target", target, "--to", "latest")
	if r.code != 0 {
		t.Fatalf("restore from the replica with the primary as fallback: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	recs := records(t, r.stdout)
	last := recs[len(recs)-1]
	if last["type"] != "result" || last["segments_from_fallback"] != float64(1) {
		t.Fatalf("result record: %v", last)
	}
	restoretest.Compare(t, f.SourceURL, target, f.Last)

	target = eventCoreDB(t)
	before := restoretest.TargetState(t, target)
	r = runCmd(t, "restore", "--store", replica, "--target", target, "--to", "latest")
	if r.code != 3 || !strings.Contains(r.stderr, victim) {
		t.Fatalf("restore from the replica alone: exit %d, want 3 naming %s\n%s", r.code, victim, r.stderr)
	}
	if after := restoretest.TargetState(t, target); after != before {
		t.Fatalf("target changed: %q -> %q", before, after)
	}

	r = runCmd(t, "verify", "--json", "--stores", policy, "--from", "replica")
	recs = records(t, r.stdout)
	if r.code != 3 || recs[0]["type"] != "verify" || !strings.Contains(r.stdout, `"object":"`+victim+`","message":"missing`) {
		t.Fatalf("verify of the replica: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	cp, _ := recs[0]["copy"].(map[string]any)
	if cp == nil || cp["head_matches"] != true || cp["lag_entries"] != float64(0) {
		t.Fatalf("verify's copy report: %v", recs[0]["copy"])
	}
}
