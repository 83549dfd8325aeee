package restore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/copier"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/objstore/s3"
	"github.com/tidemark/tidemark/internal/objstore/storeurl"
	"github.com/tidemark/tidemark/internal/restore/restoretest"
	"github.com/tidemark/tidemark/internal/testing/s3fault"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// TestRestore_ColdTier copies the fixture archive into a versitygw bucket
// whose segments the S3 fault proxy's storage-class simulation keeps in
// DEEP_ARCHIVE (versitygw has no storage classes or thaw): the dry-run
// listing names every planned segment, a restore fails before writing
// anything, naming them; a copy that is not cold serves them as a
// fallback; after a thaw the restore equals the oracle.
func TestRestore_ColdTier(t *testing.T) {
	f := sharedFixture(t)
	ctx := context.Background()
	srv := testrig.StartS3(t)
	if err := srv.CreateBucket(ctx, "vault"); err != nil {
		t.Fatal(err)
	}
	proxy, err := s3fault.New(srv.Endpoint, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	proxy.SetTiers(&s3fault.Tiers{PathContains: "/segments/", Transitions: []s3fault.Transition{{After: 0, Class: "DEEP_ARCHIVE"}},
		ThawAfter: 300 * time.Millisecond})
	url := strings.Replace(srv.StoreURL("vault", "archive"), srv.Endpoint, proxy.URL(), 1)
	vault, err := storeurl.OpenWith(ctx, url, storeurl.Options{S3: s3.Options{AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Region: srv.Region}})
	if err != nil {
		t.Fatal(err)
	}
	primary, err := file.Open(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := copier.New(primary, vault, copier.Options{TempDir: t.TempDir()}).Sync(ctx); err != nil {
		t.Fatal(err)
	}

	a, err := Open(ctx, vault, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Plan(f.last, "")
	if err != nil {
		t.Fatal(err)
	}
	cold, err := ColdObjects(ctx, a, p.Segments)
	if err != nil {
		t.Fatal(err)
	}
	if len(cold) != len(p.Segments) || cold[0].Class != "DEEP_ARCHIVE" || cold[0].State != "none" || cold[0].ExpectedWait != 12*time.Hour {
		t.Fatalf("%d cold objects of %d planned: %+v", len(cold), len(p.Segments), cold[0])
	}

	target := newEventCoreDB(t)
	before := restoretest.TargetState(t, target)
	_, err = Restore(ctx, p, Options{TargetURL: target})
	if !errors.Is(err, ErrCold) || !strings.Contains(err.Error(), cold[0].Key) || !strings.Contains(HintOf(err), "restorer thaw") {
		t.Fatalf("restore of cold segments: %v (hint %q); want ErrCold naming %s and the thaw command", err, HintOf(err), cold[0].Key)
	}
	if after := restoretest.TargetState(t, target); after != before {
		t.Fatalf("target changed: %q -> %q", before, after)
	}
	if got := proxy.Stats().Hits[s3fault.ColdRefused]; got != 0 {
		t.Fatalf("the refused restore read %d cold objects; it should have read none", got)
	}

	// A copy that is not cold serves them.
	warm := a.WithFallbacks(primary)
	if c, err := ColdObjects(ctx, warm, p.Segments); err != nil || len(c) != 0 {
		t.Fatalf("with a warm fallback: %d cold objects, %v", len(c), err)
	}
	warm.Fallbacks = nil

	n, err := Thaw(ctx, cold, ThawOptions{Days: 1})
	if err != nil || n != len(cold) {
		t.Fatalf("thaw issued %d of %d: %v", n, len(cold), err)
	}
	var pending []ColdObject
	testkit.WaitFor(t, time.Minute, "the thaw to finish", func() bool {
		pending, err = ColdObjects(ctx, a, p.Segments)
		return err == nil && len(pending) == 0
	})
	if _, err := Restore(ctx, p, Options{TargetURL: target}); err != nil {
		t.Fatalf("restore after the thaw: %v", err)
	}
	restoretest.Compare(t, f.sourceURL, target, f.last)
}
