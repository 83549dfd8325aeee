package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/testing/bench"
)

func TestWriteDoc_ReplacesOnlyTheResults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	res := &bench.Results{Config: bench.Config{Streams: 10, SteadyRate: 5, SteadyDuration: time.Second, Store: "file"},
		Started: time.Unix(0, 0), Finished: time.Unix(60, 0)}
	res.Load.Events = 42
	if err := writeDoc(path, res, machine{cores: 2}, "make bench"); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(path)
	if !strings.Contains(string(first), "42 events") || !strings.Contains(string(first), "`make bench`") {
		t.Fatalf("new file lacks the results:\n%s", first)
	}
	hand := strings.Replace(string(first), "# Benchmarks\n", "# Benchmarks\n\nhand-written intro\n", 1) + "\nhand-written analysis\n"
	if err := os.WriteFile(path, []byte(hand), 0o644); err != nil {
		t.Fatal(err)
	}
	res.Load.Events = 43
	if err := writeDoc(path, res, machine{cores: 2}, "BENCH_EVENTS=43 make bench"); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(path)
	s := string(second)
	for _, want := range []string{"hand-written intro", "hand-written analysis", "43 events", "BENCH_EVENTS=43 make bench"} {
		if !strings.Contains(s, want) {
			t.Errorf("rewritten file lacks %q", want)
		}
	}
	if strings.Contains(s, "42 events") || strings.Count(s, beginMarker) != 1 || strings.Count(s, endMarker) != 1 {
		t.Errorf("old results or duplicate markers left:\n%s", s)
	}
}

func TestCount(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 42: "42", 1000: "1,000", 182125: "182,125", 1000000: "1,000,000", -1234: "-1,234"} {
		if got := count(in); got != want {
			t.Errorf("count(%v) = %q, want %q", in, got, want)
		}
	}
}
