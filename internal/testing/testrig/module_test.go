package testrig_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func TestModuleRoot(t *testing.T) {
	root := testrig.ModuleRoot()
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatalf("ModuleRoot() = %q: %v", root, err)
	}
	if !strings.Contains(string(b), "module github.com/tidemark/tidemark") {
		t.Fatalf("%s/go.mod is not the tidemark module", root)
	}
}

func TestBuildBinary(t *testing.T) {
	bin := testrig.BuildBinary(t, "./cmd/loadgen")
	if again := testrig.BuildBinary(t, "./cmd/loadgen"); again != bin {
		t.Fatalf("second build path %q, want cached %q", again, bin)
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "loadgen") {
		t.Fatalf("%s --help: %v\n%s", bin, err, out)
	}
	if _, err := testrig.BuildPackage(context.Background(), "./cmd/does-not-exist"); err == nil {
		t.Fatal("building a missing package succeeded")
	}
}

func TestStartPostgresProcess_MissingBinaries(t *testing.T) {
	_, err := testrig.StartPostgresProcess(context.Background(), t.TempDir(), testrig.WithBinDir("/nonexistent/pg/bin"))
	if err == nil || !strings.Contains(err.Error(), "postgres 15 not found at /nonexistent/pg/bin") ||
		!strings.Contains(err.Error(), "make test") {
		t.Fatalf("err = %v, want a clear 'postgres 15 not found' error", err)
	}
}
