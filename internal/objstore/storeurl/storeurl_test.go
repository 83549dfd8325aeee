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

func TestOpen(t *testing.T) {
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
		for name, open := range map[string]func() (objstore.Store, error){
			"storeurl": func() (objstore.Store, error) { return storeurl.OpenWith(ctx, tt.url, opts) },
			"objstore": func() (objstore.Store, error) { return objstore.Open(ctx, tt.url) },
		} {
			s, err := open()
			if err != nil {
				t.Fatalf("%s open %q: %v", name, tt.url, err)
			}
			if !strings.HasPrefix(s.String(), tt.wantString) {
				t.Errorf("%s open %q: String() = %q, want prefix %q", name, tt.url, s.String(), tt.wantString)
			}
		}
	}
	s, err := storeurl.OpenWith(ctx, srv.StoreURL(bucket, "x/y"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "k", strings.NewReader("v"), 1, objstore.PutOptions{}); err != nil {
		t.Fatalf("put through storeurl with options: %v", err)
	}
	if _, err := storeurl.Open(ctx, "gs://bucket/x"); err == nil {
		t.Fatal("open gs://: err = nil")
	}
}
