package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/copier"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/objstore/s3"
	"github.com/tidemark/tidemark/internal/objstore/storeurl"
	"github.com/tidemark/tidemark/internal/restore/restoretest"
	"github.com/tidemark/tidemark/internal/testing/s3fault"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// TestRestorer_Thaw restores from a bucket whose segments the S3 fault
// proxy's simulation keeps in DEEP_ARCHIVE: --dry-run --json lists them
// with the thaw command, the restore refuses (exit 1, kind cold) leaving the
// target untouched, `thaw --wait` issues the requests and waits, and the
// restore then equals the oracle.
func TestRestorer_Thaw(t *testing.T) {
	f := fixture(t)
	srv := testrig.StartS3(t)
	srv.SetEnv(t)
	if err := srv.CreateBucket(t.Context(), "vault"); err != nil {
		t.Fatal(err)
	}
	proxy, err := s3fault.New(srv.Endpoint, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	proxy.SetTiers(&s3fault.Tiers{PathContains: "/segments/", Transitions: []s3fault.Transition{{After: 0, Class: "DEEP_ARCHIVE"}},
		ThawAfter: 200 * time.Millisecond})
	url := strings.Replace(srv.StoreURL("vault", "archive"), srv.Endpoint, proxy.URL(), 1)
	vault, err := storeurl.OpenWith(t.Context(), url, storeurl.Options{S3: s3.Options{AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Region: srv.Region}})
	if err != nil {
		t.Fatal(err)
	}
	primary, err := file.Open(f.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := copier.New(primary, vault, copier.Options{TempDir: t.TempDir()}).Sync(t.Context()); err != nil {
		t.Fatal(err)
	}

	r := runCmd(t, "restore", "--json", "--dry-run", "--store", url, "--to", "latest")
	recs := records(t, r.stdout)
	if r.code != 0 || len(recs) != 3 || recs[2]["type"] != "thaw" {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	objs, _ := recs[2]["objects"].([]any)
	cmd, _ := recs[2]["command"].(string)
	if len(objs) != int(recs[1]["segments"].(float64)) || !strings.HasPrefix(cmd, "restorer thaw --store ") {
		t.Fatalf("thaw record: %d objects for %v segments, command %q", len(objs), recs[1]["segments"], cmd)
	}
	if o := objs[0].(map[string]any); o["storage_class"] != "DEEP_ARCHIVE" || o["state"] != "none" {
		t.Fatalf("thaw object: %v", o)
	}

	target := eventCoreDB(t)
	before := restoretest.TargetState(t, target)
	r = runCmd(t, "restore", "--json", "--store", url, "--target", target, "--to", "latest")
	recs = records(t, r.stdout)
	if last := recs[len(recs)-1]; r.code != 1 || last["kind"] != "cold" || !strings.Contains(r.stderr, "restorer thaw") {
		t.Fatalf("restore of cold segments: exit %d, last record %v\n%s", r.code, last, r.stderr)
	}
	if after := restoretest.TargetState(t, target); after != before {
		t.Fatalf("target changed: %q -> %q", before, after)
	}

	r = runCmd(t, "thaw", "--json", "--store", url, "--to", "latest", "--wait", "--poll", "100ms")
	recs = records(t, r.stdout)
	if r.code != 0 || recs[0]["issued"] != float64(len(objs)) || recs[len(recs)-1]["pending"] != float64(0) {
		t.Fatalf("thaw --wait: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCmd(t, "restore", "--store", url, "--target", target, "--to", "latest")
	if r.code != 0 {
		t.Fatalf("restore after the thaw: exit %d\n%s", r.code, r.stderr)
	}
	restoretest.Compare(t, f.SourceURL, target, f.Last)
}
