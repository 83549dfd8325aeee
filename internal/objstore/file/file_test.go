package file_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/objstore/storetest"
)

func TestStore_MissingBucket(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	s, err := file.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	storetest.RunMissingBucket(t, s)
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the root was recreated: %v", err)
	}
}

func TestStore_Conformance(t *testing.T) {
	storetest.RunConformance(t, func(t *testing.T) objstore.Store {
		s, err := file.Open(filepath.Join(t.TempDir(), "store"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestStore_ListSkipsTempFiles(t *testing.T) {
	ctx := context.Background()
	s, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a/b", strings.NewReader("x"), 1, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// A crashed Put leaves its temporary file behind.
	if err := os.WriteFile(filepath.Join(s.Root(), "a", objstore.TempPrefix+"123"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := s.List(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Key != "a/b" {
		t.Fatalf("list = %+v, want only a/b", objs)
	}
}

func TestStore_PutLeavesNoTempFiles(t *testing.T) {
	ctx := context.Background()
	s, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []objstore.PutOptions{{}, {IfAbsent: true}, {IfAbsent: true}} {
		err := s.Put(ctx, "k", strings.NewReader("body"), 4, opts)
		if err != nil && !errors.Is(err, objstore.ErrExists) {
			t.Fatal(err)
		}
	}
	_ = s.Put(ctx, "short", strings.NewReader("x"), 2, objstore.PutOptions{})
	entries, err := os.ReadDir(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "k" {
		t.Fatalf("root holds %v, want only k", names)
	}
}

func TestStore_KeysStayInsideRoot(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	s, err := file.Open(filepath.Join(parent, "root"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"../outside", "a/../../outside", "/etc/passwd"} {
		if err := s.Put(ctx, key, strings.NewReader("x"), 1, objstore.PutOptions{}); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("put %q: err = %v, want ErrInvalidKey", key, err)
		}
	}
	if _, err := os.Stat(filepath.Join(parent, "outside")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file was written outside the root: %v", err)
	}
	if _, err := s.List(ctx, "../", ""); err == nil {
		t.Fatalf("list with prefix ../: err = nil")
	}
}

func TestPathFromURL(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"/var/backups/tm", "/var/backups/tm", true},
		{"relative/dir", "relative/dir", true},
		{"file:///var/backups/tm", "/var/backups/tm", true},
		{"file://localhost/var/x", "/var/x", true},
		{"file://otherhost/var/x", "", false},
		{"s3://bucket/x", "", false},
		{"file://", "", false},
	}
	for _, tt := range tests {
		got, err := file.PathFromURL(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("PathFromURL(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
