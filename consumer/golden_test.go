package consumer_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/tidemark/tidemark/consumer"
)

// update rewrites the golden files: go test ./consumer -run Golden -update
var update = flag.Bool("update", false, "rewrite golden files")

// The position file FileStore writes is a persisted format: consumers keep
// it across upgrades. The golden file is what today's code writes, and
// today's code must read it back.
func TestGolden_PositionFile(t *testing.T) {
	golden := filepath.Join("testdata", "position.json")
	p := consumer.Position{Archive: "3f2c0a9e5b7d1c44", End: 0x16B37400F8, Index: 2}
	fs := consumer.FileStore{Path: filepath.Join(t.TempDir(), "position.json")}
	if err := fs.Save(p); err != nil {
		t.Fatal(err)
	}
	written, err := os.ReadFile(fs.Path)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(golden, written, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(written, want) {
		t.Fatalf("FileStore wrote\n%s\nthe golden file holds\n%s", written, want)
	}
	back, ok, err := consumer.FileStore{Path: golden}.Load()
	if err != nil || !ok || back != p {
		t.Fatalf("read back %+v %v %v, want %+v", back, ok, err, p)
	}
}
