package s3fault

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// TestTiers_ClassesTransitionsThaw drives the storage-class simulation
// with the AWS SDK as S3 documents it: the PUT's class is reported by
// HEAD and LIST; an object past a transition's age is in the colder
// class; a GET of a cold object is 403 InvalidObjectState until a restore
// request completes; a second request while one runs is 409
// RestoreAlreadyInProgress; a restore of a class read directly is refused.
func TestTiers_ClassesTransitionsThaw(t *testing.T) {
	r := newRig(t, 1)
	ctx := context.Background()
	now := time.Now()
	r.proxy.SetTiers(&Tiers{PathContains: "/segments/", ThawAfter: time.Hour,
		Transitions: []Transition{{After: 90 * 24 * time.Hour, Class: "DEEP_ARCHIVE"}}})
	clock := func() time.Time { return now }
	r.proxy.tiers.now = func() time.Time { return clock() }

	put := func(key string, class types.StorageClass) {
		t.Helper()
		if _, err := r.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &r.bucket, Key: aws.String(key),
			Body: bytes.NewReader([]byte(key)), ContentLength: aws.Int64(int64(len(key))), StorageClass: class}); err != nil {
			t.Fatal(err)
		}
	}
	head := func(key string) *s3.HeadObjectOutput {
		t.Helper()
		out, err := r.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &r.bucket, Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	put("segments/ia", types.StorageClassStandardIa)
	put("segments/glacier", types.StorageClassGlacier)
	put("segments/young", "")
	put("catalog/entry", types.StorageClassGlacier) // outside PathContains: not simulated

	if c := head("segments/ia").StorageClass; c != types.StorageClassStandardIa {
		t.Fatalf("HEAD class of an IA put: %q", c)
	}
	if _, err := r.get(ctx, "segments/ia"); err != nil {
		t.Fatalf("GET of an IA object: %v", err)
	}
	if _, err := r.get(ctx, "catalog/entry"); err != nil {
		t.Fatalf("GET of an object outside the simulation: %v", err)
	}
	_, err := r.get(ctx, "segments/glacier")
	if httpStatus(err) != http.StatusForbidden || apiCode(err) != "InvalidObjectState" {
		t.Fatalf("GET of a GLACIER object: %v, want 403 InvalidObjectState", err)
	}
	_, err = r.client.RestoreObject(ctx, &s3.RestoreObjectInput{Bucket: &r.bucket, Key: aws.String("segments/ia"),
		RestoreRequest: &types.RestoreRequest{Days: aws.Int32(1)}})
	if apiCode(err) != "InvalidObjectState" {
		t.Fatalf("restore of an IA object: %v, want InvalidObjectState", err)
	}

	// Ninety days on, the young object is in DEEP_ARCHIVE; LIST says so.
	clock = func() time.Time { return now.Add(91 * 24 * time.Hour) }
	list, err := r.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &r.bucket})
	if err != nil {
		t.Fatal(err)
	}
	classes := map[string]types.ObjectStorageClass{}
	for _, o := range list.Contents {
		classes[aws.ToString(o.Key)] = o.StorageClass
	}
	if classes["segments/young"] != "DEEP_ARCHIVE" || classes["segments/ia"] != "DEEP_ARCHIVE" {
		t.Fatalf("LIST classes after 91 days: %v", classes)
	}

	restore := func() error {
		_, err := r.client.RestoreObject(ctx, &s3.RestoreObjectInput{Bucket: &r.bucket, Key: aws.String("segments/young"),
			RestoreRequest: &types.RestoreRequest{Days: aws.Int32(1)}})
		return err
	}
	if err := restore(); err != nil {
		t.Fatalf("restore request: %v", err)
	}
	if h := aws.ToString(head("segments/young").Restore); !strings.Contains(h, `ongoing-request="true"`) {
		t.Fatalf("x-amz-restore while thawing: %q", h)
	}
	if err := restore(); apiCode(err) != "RestoreAlreadyInProgress" {
		t.Fatalf("second restore request while thawing: %v", err)
	}
	if _, err := r.get(ctx, "segments/young"); apiCode(err) != "InvalidObjectState" {
		t.Fatalf("GET while thawing: %v", err)
	}
	clock = func() time.Time { return now.Add(91*24*time.Hour + 2*time.Hour) }
	if h := aws.ToString(head("segments/young").Restore); !strings.Contains(h, `ongoing-request="false"`) {
		t.Fatalf("x-amz-restore after the thaw: %q", h)
	}
	if b, err := r.get(ctx, "segments/young"); err != nil || string(b) != "segments/young" {
		t.Fatalf("GET after the thaw: %q, %v", b, err)
	}
	if n := r.proxy.Stats().Hits[ColdRefused]; n != 2 {
		t.Fatalf("%d cold GETs refused, want 2", n)
	}
}
