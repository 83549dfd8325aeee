package storeurl_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/s3"
	"github.com/tidemark/tidemark/internal/objstore/storeurl"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func TestOpenWith(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv := testrig.StartS3(t)
	bucket := srv.NewBucket(t)
	opts := storeurl.Options{S3: s3.Options{AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}}
	tests := []struct {
		url, wantString string
	}{
		{dir, "file://" + dir},
		{"file://" + dir, "file://" + dir},
		{srv.StoreURL(bucket, "x/y"), "s3://" + bucket + "/x/y/"},
	}
	for _, tt := range tests {
		s, err := storeurl.OpenWith(ctx, tt.url, opts)
		if err != nil {
			t.Fatalf("open %q: %v", tt.url, err)
		}
		if !strings.HasPrefix(s.String(), tt.wantString) {
			t.Errorf("open %q: String() = %q, want prefix %q", tt.url, s.String(), tt.wantString)
		}
		if err := s.Put(ctx, "k", strings.NewReader("v"), 1, objstore.PutOptions{}); err != nil {
			t.Fatalf("put through %q: %v", tt.url, err)
		}
	}
}

func TestOpen_UnknownScheme(t *testing.T) {
	_, err := storeurl.Open(t.Context(), "gs://bucket/p")
	if err == nil || !strings.Contains(err.Error(), `"gs"`) {
		t.Fatalf("Open(gs://…): err = %v, want one naming the scheme", err)
	}
}

func TestScheme(t *testing.T) {
	tests := map[string]string{
		"s3://bucket/p":     "s3",
		"S3://bucket/p":     "s3",
		"file:///tmp/x":     "file",
		"/tmp/x":            "file",
		"relative/dir":      "file",
		"dir/with://inside": "file",
		"gs://bucket":       "gs",
		"C:\\windows\\path": "file",
		"://no-scheme":      "file",
	}
	for in, want := range tests {
		if got := storeurl.Scheme(in); got != want {
			t.Errorf("Scheme(%q) = %q, want %q", in, got, want)
		}
	}
}
