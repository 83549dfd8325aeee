package copier_test

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/copier"
	"github.com/tidemark/tidemark/internal/lifecycle"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/s3"
	"github.com/tidemark/tidemark/internal/objstore/storeurl"
	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// s3Store opens prefix "archive" of bucket on the rig's S3 server; lock
// creates the bucket with Object Lock enabled.
func s3Store(t *testing.T, srv *testrig.S3, bucket string, lock bool) objstore.Store {
	t.Helper()
	if _, err := srv.Client().CreateBucket(ctxT(t), &awss3.CreateBucketInput{Bucket: aws.String(bucket), ObjectLockEnabledForBucket: aws.Bool(lock)}); err != nil {
		t.Fatal(err)
	}
	st, err := storeurl.OpenWith(ctxT(t), srv.StoreURL(bucket, "archive"),
		storeurl.Options{S3: s3.Options{AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Region: srv.Region}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestCopy_RetentionLock copies an archive into a versitygw bucket with
// Object Lock under a COMPLIANCE policy: every segment and entry carries
// the policy's retain-until, the store refuses to delete one, and the lock
// check passes; a copy made without the policy is named object by object.
func TestCopy_RetentionLock(t *testing.T) {
	a := newArchive(t)
	a.flush(6)
	a.merge()
	srv := testrig.StartS3(t)
	locked := s3Store(t, srv, "vault", true)
	policy := &lifecycle.Store{Name: "vault", Lock: lifecycle.Lock{Mode: "COMPLIANCE", Retain: lifecycle.Duration(time.Hour)}}
	start := time.Now()
	syncOK(t, copier.New(a.store, locked, copier.Options{TempDir: t.TempDir(), Policy: policy}))
	sameArchive(t, a.store, locked)

	cc, err := catalog.Load(ctxT(t), locked)
	if err != nil {
		t.Fatal(err)
	}
	seg := cc.Segments()[0].Key
	for _, key := range []string{seg, catalog.EntryKey(1), catalog.EntryKey(cc.NextSeq() - 1)} {
		info, err := locked.Stat(ctxT(t), key)
		if err != nil {
			t.Fatal(err)
		}
		if info.Lock.Mode != "COMPLIANCE" || info.Lock.Until.Before(start.Add(time.Hour-time.Second)) {
			t.Fatalf("%s: lock %+v, want COMPLIANCE until after %s", key, info.Lock, start.Add(time.Hour))
		}
	}
	if err := locked.Delete(ctxT(t), seg); !errors.Is(err, objstore.ErrAccessDenied) {
		t.Fatalf("delete of a locked segment: %v, want access denied", err)
	}
	if _, err := locked.Stat(ctxT(t), seg); err != nil {
		t.Fatalf("the locked segment is gone after a refused delete: %v", err)
	}
	rep := &restore.Report{Status: restore.StatusOK}
	lr, err := restore.CheckLocks(ctxT(t), locked, policy, rep)
	if err != nil {
		t.Fatal(err)
	}
	want := len(cc.Segments()) + int(cc.NextSeq()-1)
	if lr.Checked != want || lr.Short != 0 || rep.Status != restore.StatusOK {
		t.Fatalf("lock check of the locked copy: %+v %+v, want %d checked and none short", lr, rep.Problems, want)
	}

	plain := s3Store(t, srv, "plain", false)
	syncOK(t, copier.New(a.store, plain, copier.Options{TempDir: t.TempDir()}))
	rep = &restore.Report{Status: restore.StatusOK}
	if lr, err = restore.CheckLocks(ctxT(t), plain, policy, rep); err != nil {
		t.Fatal(err)
	}
	named := false
	for _, p := range rep.Problems {
		named = named || (p.Check == "lock" && p.Object == seg)
	}
	if lr.Short != want || rep.Status != restore.StatusWarning || !named {
		t.Fatalf("lock check of an unlocked copy: %+v, status %s, %d problems (segment %s named: %v)", lr, rep.Status, len(rep.Problems), seg, named)
	}
}
