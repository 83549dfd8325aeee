package testrig

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ModuleRoot returns the directory holding the Tidemark go.mod, searching
// upward from the working directory and then from this source file. It
// returns "" when neither is inside the module.
func ModuleRoot() string {
	if wd, err := os.Getwd(); err == nil {
		if root := findModuleRoot(wd); root != "" {
			return root
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		return findModuleRoot(filepath.Dir(file))
	}
	return ""
}

// findModuleRoot walks up from dir to the first directory with a go.mod
// declaring the Tidemark module.
func findModuleRoot(dir string) string {
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/tidemark/tidemark") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// FailpointsTag is the build tag that compiles test-only failpoints into a
// program (the archiver's crash hook). Tests that use one build their
// binary with it; the default build, the production one, has none.
const FailpointsTag = "failpoints"

var builds sync.Map // package path and tags → *buildResult

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// BuildBinary builds a main package of this module (for example
// "./cmd/capture") with the given build tags (FailpointsTag) once per test
// process and returns the binary's path. It fails the test when the build
// fails.
func BuildBinary(tb testing.TB, pkg string, tags ...string) string {
	tb.Helper()
	path, err := BuildPackage(context.Background(), pkg, tags...)
	if err != nil {
		tb.Fatalf("testrig: %v", err)
	}
	return path
}

// BuildPackage is BuildBinary without testing: it builds pkg once per
// process into a per-process temporary directory (removed by a later
// process once this one has exited) and returns the binary's path.
func BuildPackage(ctx context.Context, pkg string, tags ...string) (string, error) {
	v, _ := builds.LoadOrStore(pkg+" "+strings.Join(tags, ","), &buildResult{})
	r := v.(*buildResult)
	r.once.Do(func() { r.path, r.err = buildPackage(ctx, pkg, tags) })
	return r.path, r.err
}

func buildPackage(ctx context.Context, pkg string, tags []string) (string, error) {
	root := ModuleRoot()
	if root == "" {
		return "", errors.New("build " + pkg + ": tidemark module root not found")
	}
	dir, err := processBinDir()
	if err != nil {
		return "", err
	}
	name := filepath.Base(strings.TrimSuffix(pkg, "/"))
	if name == "." || name == "/" || name == "" {
		name = "main"
	}
	if len(tags) > 0 {
		name += "-" + strings.Join(tags, "-")
	}
	out := filepath.Join(dir, name)
	if err := goBuild(ctx, root, out, pkg, tags...); err != nil {
		return "", err
	}
	return out, nil
}

var (
	binDirOnce sync.Once
	binDir     string
	binDirErr  error
)

// processBinDir returns a temporary directory for this process's binaries,
// first removing those left by processes that no longer exist.
func processBinDir() (string, error) {
	binDirOnce.Do(func() {
		base := filepath.Join(os.TempDir(), "tidemark-testrig-bin")
		if err := os.MkdirAll(base, 0o755); err != nil {
			binDirErr = fmt.Errorf("create binary dir: %w", err)
			return
		}
		removeStaleBinDirs(base)
		binDir = filepath.Join(base, strconv.Itoa(os.Getpid()))
		if err := os.MkdirAll(binDir, 0o755); err != nil {
			binDirErr = fmt.Errorf("create binary dir: %w", err)
		}
	})
	return binDir, binDirErr
}

func removeStaleBinDirs(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
}

// goBuild runs `go build -o out [-tags tags] pkg` in the module root.
func goBuild(ctx context.Context, root, out, pkg string, tags ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	args := []string{"build", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.CommandContext(ctx, goTool(), append(args, pkg)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(append(args[3:], pkg), " "), err, b)
	}
	return nil
}

// goTool returns the go command: "go" from PATH, else /usr/local/go/bin/go.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if isExecutable("/usr/local/go/bin/go") {
		return "/usr/local/go/bin/go"
	}
	return "go"
}

// toolBinary returns <ModuleRoot>/bin/<name>, building pkg (a tool pinned
// in go.mod) there first if it is missing. A file lock keeps parallel test
// binaries from building it at the same time.
func toolBinary(ctx context.Context, name, pkg string) (string, error) {
	root := ModuleRoot()
	if root == "" {
		return "", fmt.Errorf("find %s: tidemark module root not found", name)
	}
	out := filepath.Join(root, "bin", name)
	if isExecutable(out) {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("create bin dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(root, "bin", ".build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("open build lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock build: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if isExecutable(out) {
		return out, nil
	}
	tmp := out + ".tmp" + strconv.Itoa(os.Getpid())
	if err := goBuild(ctx, root, tmp, pkg); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("install %s: %w", name, err)
	}
	return out, nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}
