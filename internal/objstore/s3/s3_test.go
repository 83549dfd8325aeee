package s3_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/s3"
	"github.com/tidemark/tidemark/internal/objstore/storetest"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func TestStore_Conformance(t *testing.T) {
	srv := testrig.StartS3(t)
	bucket := srv.NewBucket(t)
	n := 0
	storetest.RunConformance(t, func(t *testing.T) objstore.Store {
		n++
		s, err := s3.Open(context.Background(), srv.StoreURL(bucket, "conformance/"+strings.Repeat("x", n)), s3.Options{
			AccessKey: srv.AccessKey,
			SecretKey: srv.SecretKey,
			PartSize:  s3.MinPartSize,
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestStore_EnvironmentCredentials(t *testing.T) {
	srv := testrig.StartS3(t)
	srv.SetEnv(t)
	ctx := context.Background()
	s, err := s3.Open(ctx, srv.StoreURL(srv.NewBucket(t), "env"), s3.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "k", strings.NewReader("v"), 1, objstore.PutOptions{}); err != nil {
		t.Fatalf("put with credentials from the environment: %v", err)
	}
	if _, err := s.Stat(ctx, "k"); err != nil {
		t.Fatal(err)
	}
}

func TestStore_WrongSecret(t *testing.T) {
	srv := testrig.StartS3(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	const wrong = "wrong-secret-0123456789abcdef"
	tests := []struct {
		name              string
		access, secret    string
		secretMustNotShow string
		// versitygw answers an unknown access key with 404 XAdminUserNotFound;
		// HEAD responses have no body, so Stat cannot tell it from a missing key.
		statAmbiguous bool
	}{
		{"wrong secret", srv.AccessKey, wrong, wrong, false},
		{"unknown access key", "nosuchkey", srv.SecretKey, srv.SecretKey, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := s3.Open(ctx, srv.StoreURL(bucket, "p"), s3.Options{AccessKey: tt.access, SecretKey: tt.secret, MaxAttempts: 2})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(s.String(), tt.secretMustNotShow) {
				t.Fatalf("String() shows the secret: %s", s.String())
			}
			errs := []error{
				s.Put(ctx, "k", strings.NewReader("v"), 1, objstore.PutOptions{}),
				s.Put(ctx, "k", strings.NewReader("v"), 1, objstore.PutOptions{IfAbsent: true}),
			}
			_, _, err = s.Get(ctx, "k")
			errs = append(errs, err)
			if !tt.statAmbiguous {
				_, err = s.Stat(ctx, "k")
				errs = append(errs, err)
			}
			_, err = s.List(ctx, "", "")
			errs = append(errs, err)
			for i, err := range errs {
				if !errors.Is(err, objstore.ErrAccessDenied) {
					t.Errorf("call %d: err = %v, want ErrAccessDenied", i, err)
					continue
				}
				if strings.Contains(err.Error(), tt.secretMustNotShow) {
					t.Errorf("call %d: error text contains the secret: %v", i, err)
				}
				if !strings.HasPrefix(err.Error(), "s3: ") {
					t.Errorf("call %d: error %q lacks the s3: prefix", i, err)
				}
			}
		})
	}
}

func TestStore_MissingBucketIsNotNotFound(t *testing.T) {
	srv := testrig.StartS3(t)
	ctx := context.Background()
	s, err := s3.Open(ctx, srv.StoreURL("no-such-bucket-here", ""), s3.Options{AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Get(ctx, "k")
	if err == nil || errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("get from a missing bucket: err = %v, want an error other than ErrNotFound", err)
	}
}
