package testrig_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func TestS3_IfNoneMatchRefusesSecondPut(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := testrig.StartS3(t)
	bucket := srv.NewBucket(t)
	client := srv.Client()

	put := func(body string) error {
		_, err := client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:      aws.String(bucket),
			Key:         aws.String("catalog/entries/00000000000000000001.json"),
			Body:        strings.NewReader(body),
			IfNoneMatch: aws.String("*"),
		})
		return err
	}
	if err := put("first"); err != nil {
		t.Fatalf("first put: %v", err)
	}
	err := put("second")
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusPreconditionFailed {
		t.Fatalf("second put: err = %v, want HTTP 412", err)
	}
	out, err := client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(bucket),
		Key:    aws.String("catalog/entries/00000000000000000001.json"),
	})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(b) != "first" {
		t.Fatalf("object = %q, want %q", b, "first")
	}
}

func TestS3_StoreURL(t *testing.T) {
	s := &testrig.S3{Endpoint: "http://127.0.0.1:9000", Region: "us-east-1"}
	got := s.StoreURL("bkt", "pre/fix")
	want := "s3://bkt/pre/fix?endpoint=http://127.0.0.1:9000&region=us-east-1"
	if got != want {
		t.Fatalf("StoreURL = %q, want %q", got, want)
	}
	u, err := url.Parse(got)
	if err != nil || u.Query().Get("endpoint") != s.Endpoint || u.Host != "bkt" || u.Path != "/pre/fix" {
		t.Fatalf("StoreURL %q does not parse back: %v", got, err)
	}
}
