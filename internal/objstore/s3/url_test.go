package s3

import (
	"context"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in      string
		want    string // location.String(), "" for an error
		errText string
	}{
		{"s3://bucket", "s3://bucket/", ""},
		{"s3://bucket/", "s3://bucket/", ""},
		{"s3://bucket/a/b/", "s3://bucket/a/b/", ""},
		{"s3://bucket/a/b?region=eu-west-1", "s3://bucket/a/b/?region=eu-west-1", ""},
		{"s3://bucket/p?endpoint=http://127.0.0.1:9000&path_style=false", "s3://bucket/p/?endpoint=http%3A%2F%2F127.0.0.1%3A9000&path_style=false", ""},
		{"s3://bucket/p?endpoint=http://127.0.0.1:9000/", "s3://bucket/p/?endpoint=http%3A%2F%2F127.0.0.1%3A9000", ""},
		{"s3://bucket/p?secret_key=hunter2hunter2", "", "unknown parameter"},
		{"s3://user:hunter2hunter2@bucket/p", "", "credentials in the URL"},
		{"s3://bucket/p?endpoint=ftp://x", "", "endpoint"},
		{"s3://bucket/p?endpoint=http://u:hunter2hunter2@x", "", "endpoint"},
		{"s3://bucket/p?path_style=maybe", "", "path_style"},
		{"s3://Bucket/p", "", "bucket name"},
		{"s3://b/p", "", "bucket name"},
		{"s3://bucket/a//b", "", "prefix"},
		{"s3://bucket/a/../b", "", "prefix"},
		{"file:///tmp", "", "scheme"},
	}
	for _, tt := range tests {
		loc, err := parseURL(tt.in)
		if tt.want != "" {
			if err != nil || loc.String() != tt.want {
				t.Errorf("parseURL(%q) = %q, %v; want %q", tt.in, loc.String(), err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.errText) {
			t.Errorf("parseURL(%q): err = %v, want one mentioning %q", tt.in, err, tt.errText)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("parseURL(%q): error echoes a secret: %v", tt.in, err)
		}
	}
}

func TestOpen_OptionsWinOverURL(t *testing.T) {
	s, err := Open(context.Background(), "s3://bucket/p?endpoint=http://127.0.0.1:1&region=eu-west-1",
		Options{Endpoint: "http://127.0.0.1:2", Region: "us-west-2", AccessKey: "ak", SecretKey: "very-secret-key"})
	if err != nil {
		t.Fatal(err)
	}
	want := "s3://bucket/p/?endpoint=http%3A%2F%2F127.0.0.1%3A2&region=us-west-2"
	if s.String() != want {
		t.Fatalf("String() = %q, want %q", s.String(), want)
	}
	if _, err := Open(context.Background(), "s3://bucket/p", Options{PartSize: 1 << 20}); err == nil {
		t.Fatalf("open with a 1 MiB part size: err = nil")
	}
	if _, err := Open(context.Background(), "s3://bucket/p", Options{AccessKey: "ak"}); err == nil {
		t.Fatalf("open with an access key but no secret: err = nil")
	}
}
