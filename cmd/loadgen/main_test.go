package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func run(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func TestLoadgen_CLI(t *testing.T) {
	bin := testrig.BuildBinary(t, "./cmd/loadgen")
	pg := testrig.StartPostgres(t)
	url := pg.NewDatabase(t)

	t.Run("help", func(t *testing.T) {
		out, _, code := run(t, bin, "--help")
		if code != 0 || !strings.Contains(out, "--writers") || !strings.Contains(out, "--json") {
			t.Fatalf("help exit %d:\n%s", code, out)
		}
	})
	t.Run("usage errors exit 2", func(t *testing.T) {
		for _, args := range [][]string{{"--bogus"}, {"--events", "5"}, {"--pg", url}, {"hard", "nope", "--pg", url}} {
			if _, errOut, code := run(t, bin, args...); code != 2 || errOut == "" {
				t.Fatalf("%v: exit %d, stderr %q; want 2 and a message", args, code, errOut)
			}
		}
	})
	t.Run("workload with json summary", func(t *testing.T) {
		out, errOut, code := run(t, bin, "--pg", url, "--apply-schema", "--events", "120", "--writers", "3", "--streams", "10", "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var sum struct {
			Events       int64 `json:"events"`
			Transactions int64 `json:"transactions"`
		}
		if err := json.Unmarshal([]byte(out), &sum); err != nil {
			t.Fatalf("summary %q: %v", out, err)
		}
		ctx := context.Background()
		var n int64
		if err := testrig.Connect(t, url).QueryRow(ctx, "SELECT count(*) FROM eventcore_events").Scan(&n); err != nil {
			t.Fatalf("count: %v", err)
		}
		if sum.Events != 120 || n != 120 || sum.Transactions == 0 {
			t.Fatalf("summary %+v, table %d rows; want 120 events", sum, n)
		}
	})
	t.Run("hard cases", func(t *testing.T) {
		out, errOut, code := run(t, bin, "hard", "huge", "rolledback", "savepoint", "--rows", "1000", "--pg", url)
		if code != 0 || strings.Count(out, "wrote hard case") != 3 {
			t.Fatalf("exit %d, out %q, err %q", code, out, errOut)
		}
	})
}
