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
	}{
		{"wrong secret", srv.AccessKey, wrong, wrong},
		// versitygw answers an unknown access key with 404 XAdminUserNotFound,
		// which a HEAD (Stat) returns without its code.
		{"unknown access key", "nosuchkey", srv.SecretKey, srv.SecretKey},
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
			_, err = s.Stat(ctx, "k")
			errs = append(errs, err)
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
				if objstore.Hint(err) == "" {
					t.Errorf("call %d: error %q carries no hint", i, err)
				}
			}
		})
	}
}

func TestStore_MissingBucket(t *testing.T) {
	srv := testrig.StartS3(t)
	s, err := s3.Open(context.Background(), srv.StoreURL("no-such-bucket-here", "p"),
		s3.Options{AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	storetest.RunMissingBucket(t, s)
	_, err = s.List(context.Background(), "", "")
	if want := "s3: list : bucket not found: no-such-bucket-here"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q (no SDK text)", err, want)
	}
}

// noCredentials clears every source of the SDK's default credential chain
// for the rest of the test; EC2 instance metadata is switched off so the
// chain fails at once and offline.
func noCredentials(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "",
		"AWS_CONFIG_FILE": dir + "/config", "AWS_SHARED_CREDENTIALS_FILE": dir + "/credentials",
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
}

func TestStore_NoCredentials(t *testing.T) {
	srv := testrig.StartS3(t)
	bucket := srv.NewBucket(t)
	tests := []struct {
		name string
		env  map[string]string
		// wantReason is in the message; the SDK's chain of provider errors is not.
		wantReason string
	}{
		{"none configured", nil, "none in the environment, the shared AWS config files or EC2 instance metadata"},
		{"configured source fails", map[string]string{
			"AWS_WEB_IDENTITY_TOKEN_FILE": "/nonexistent/tidemark-token", "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/tidemark",
		}, "/nonexistent/tidemark-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noCredentials(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ctx := context.Background()
			s, err := s3.Open(ctx, srv.StoreURL(bucket, "p"), s3.Options{MaxAttempts: 2})
			if err != nil {
				t.Fatal(err)
			}
			errs := []error{s.Put(ctx, "k", strings.NewReader("v"), 1, objstore.PutOptions{})}
			_, _, err = s.Get(ctx, "k")
			errs = append(errs, err)
			_, err = s.Stat(ctx, "k")
			errs = append(errs, err)
			_, err = s.List(ctx, "", "")
			errs = append(errs, err)
			for i, err := range errs {
				if !errors.Is(err, objstore.ErrNoCredentials) || errors.Is(err, objstore.ErrAccessDenied) {
					t.Fatalf("call %d: err = %v, want ErrNoCredentials", i, err)
				}
				if h := objstore.Hint(err); !strings.Contains(h, "AWS_ACCESS_KEY_ID") {
					t.Fatalf("call %d: hint %q does not name AWS_ACCESS_KEY_ID", i, h)
				}
				msg := err.Error()
				if i == 0 {
					t.Log(msg)
				}
				if !strings.HasPrefix(msg, "s3: ") || !strings.Contains(msg, "no credentials: ") || !strings.Contains(msg, tt.wantReason) ||
					strings.Contains(msg, "operation error") || strings.Contains(msg, "get identity") {
					t.Fatalf("call %d: message %q: want s3: …: no credentials: …%s…, without the SDK's chain", i, msg, tt.wantReason)
				}
			}
		})
	}
}
