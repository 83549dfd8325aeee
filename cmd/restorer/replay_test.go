package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tidemark/tidemark/consumer"
)

// update rewrites the golden files: go test ./cmd/restorer -run Golden -update
var update = flag.Bool("update", false, "rewrite golden files")

// The --resume file is a persisted format: a replay resumed by a newer
// restorer reads what an older one saved.
func TestGolden_ReplayState(t *testing.T) {
	golden := filepath.Join("testdata", "replay-state.json")
	st := replayState{Position: consumer.Position{Archive: "3f2c0a9e5b7d1c44", End: 0x16B37400F8, Index: 2},
		OutputBytes: 123456, SavedAt: time.Date(2026, 11, 25, 10, 15, 30, 123456000, time.UTC)}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if *update {
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("replay state\n%s\nthe golden file holds\n%s", b, want)
	}
	var back replayState
	if err := json.Unmarshal(want, &back); err != nil || back != st {
		t.Fatalf("read back %+v (%v), want %+v", back, err, st)
	}
}

// replay without --store, or with --follow but no --nats-url, is a usage
// error (exit 2) naming the flag.
func TestReplay_Usage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "--from", "beginning"}, "--store is required"},
		{[]string{"replay", "--store", t.TempDir(), "--from", "beginning", "--follow"}, "--follow needs --nats-url"},
		{[]string{"replay", "--store", t.TempDir()}, "--from is required"},
		{[]string{"replay", "--store", t.TempDir(), "--from", "yesterday-ish"}, "cannot read --from"},
	} {
		var out, errb bytes.Buffer
		if code := run(c.args, &out, &errb); code != 2 || !bytes.Contains(errb.Bytes(), []byte(c.want)) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}
