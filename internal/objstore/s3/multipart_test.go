package s3

import (
	"bytes"
	"context"
	"errors"
	"testing"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// TestStore_LargeIfAbsentUsesMultipart checks that a large conditional put
// really goes through CompleteMultipartUpload and that the server refuses
// the completion (not a pre-check) when the key exists.
func TestStore_LargeIfAbsentUsesMultipart(t *testing.T) {
	srv := testrig.StartS3(t)
	ctx := context.Background()
	s, err := Open(ctx, srv.StoreURL(srv.NewBucket(t), "mp"), Options{AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PartSize: MinPartSize})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), (11<<20)/16)
	completes := func() float64 { return testutil.ToFloat64(requestsTotal.WithLabelValues("CompleteMultipartUpload")) }
	failed := func() float64 {
		return testutil.ToFloat64(requestErrorsTotal.WithLabelValues("CompleteMultipartUpload"))
	}
	parts := func() float64 { return testutil.ToFloat64(requestsTotal.WithLabelValues("UploadPart")) }
	c0, f0, p0 := completes(), failed(), parts()

	if err := s.Put(ctx, "big", bytes.NewReader(body), int64(len(body)), objstore.PutOptions{IfAbsent: true}); err != nil {
		t.Fatal(err)
	}
	if got := parts() - p0; got != 3 {
		t.Fatalf("first put sent %v parts, want 3 (11 MiB in 5 MiB parts)", got)
	}
	err = s.Put(ctx, "big", bytes.NewReader(body), int64(len(body)), objstore.PutOptions{IfAbsent: true})
	if !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("second put: err = %v, want ErrExists", err)
	}
	if got := completes() - c0; got != 2 {
		t.Fatalf("CompleteMultipartUpload sent %v times, want 2", got)
	}
	if got := failed() - f0; got != 1 {
		t.Fatalf("CompleteMultipartUpload failed %v times, want 1 (the refused conditional completion)", got)
	}
	// The refused upload was aborted: no multipart upload is left behind.
	out, err := srv.Client().ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: &s.loc.bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left behind", len(out.Uploads))
	}
}
