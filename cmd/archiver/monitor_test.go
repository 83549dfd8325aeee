package main

import (
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/restore/restoretest"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

var shared = restoretest.Shared{Events: 500}

func TestMain(m *testing.M) { testkit.Main(m, shared.Close) }

// TestMonitor_Once runs `archiver monitor --once` on an archive and its
// source: a clean round (exit 0, JSON), then, with a slot that does not
// exist, a violation (exit 3 naming it); without --source a usage error.
func TestMonitor_Once(t *testing.T) {
	f := shared.Fixture(t)
	bin := testrig.BuildBinary(t, "./cmd/archiver")
	out, err := exec.Command(bin, "monitor", "--once", "--store", f.Dir, "--source", f.SourceURL, "--slot", "", "--feed=false").Output()
	var r struct {
		Compared int               `json:"compared"`
		Findings []json.RawMessage `json:"findings"`
	}
	if err != nil || json.Unmarshal(out, &r) != nil || r.Compared == 0 || len(r.Findings) != 0 {
		t.Fatalf("clean round: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "monitor", "--once", "--store", f.Dir, "--source", f.SourceURL, "--slot", "no_such_slot", "--feed=false").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), `replication slot \"no_such_slot\" does not exist`) {
		t.Fatalf("missing slot: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "monitor", "--once", "--store", f.Dir).CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--source is required") {
		t.Fatalf("no --source: %v\n%s", err, out)
	}
}
