package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
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

// replay without --follow prints the archive from the beginning (or after
// T: exactly what a restore to T does not hold) and stops at the
// watermark; a run resumed from its position file adds nothing twice.
func TestReplay_ArchiveOnly(t *testing.T) {
	f := fixture(t)
	total := 0
	for _, tx := range f.Txns {
		total += len(tx)
	}
	at := f.Times[len(f.Times)/3]
	after := 0
	for _, tx := range f.Txns {
		if tx[0].CommitTime.After(at) {
			after += len(tx)
		}
	}
	r := runCmd(t, "replay", "--store", f.Dir, "--from", "beginning", "--output", "-")
	if r.code != 0 || strings.Count(r.stdout, "\n") != total {
		t.Fatalf("from the beginning: exit %d, %d lines, want %d\n%s", r.code, strings.Count(r.stdout, "\n"), total, r.stderr)
	}
	var last consumer.Position
	ids := map[string]bool{}
	for i, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		var rec struct {
			Position consumer.Position `json:"position"`
			EventID  string            `json:"event_id"`
			Live     bool              `json:"live"`
			Row      map[string]any    `json:"row"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if (i > 0 && !last.Before(rec.Position)) || ids[rec.EventID] || rec.Live || rec.Row["event_id"] != rec.EventID {
			t.Fatalf("line %d out of order, repeated, live or inconsistent: %s", i+1, l)
		}
		last, ids[rec.EventID] = rec.Position, true
	}
	r = runCmd(t, "replay", "--store", f.Dir, "--from", at.Format(time.RFC3339Nano), "--output", "-")
	if r.code != 0 || strings.Count(r.stdout, "\n") != after {
		t.Fatalf("after %s: exit %d, %d lines, want %d\n%s", at, r.code, strings.Count(r.stdout, "\n"), after, r.stderr)
	}
	// to a file with a position file; the second run finds nothing new
	dir := t.TempDir()
	out, pos := filepath.Join(dir, "events.jsonl"), filepath.Join(dir, "position.json")
	for run := range 2 {
		r = runCmd(t, "replay", "--store", f.Dir, "--from", "beginning", "--output", out, "--resume", pos)
		if r.code != 0 {
			t.Fatalf("run %d: exit %d\n%s", run, r.code, r.stderr)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(b, []byte{'\n'}); n != total {
			t.Fatalf("run %d: %d lines, want %d", run, n, total)
		}
	}
	// an output file with content and no position is refused
	r = runCmd(t, "replay", "--store", f.Dir, "--from", "beginning", "--output", out)
	if r.code != 2 || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("non-empty output without a position: exit %d\n%s", r.code, r.stderr)
	}
}
