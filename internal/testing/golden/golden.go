package golden

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Check compares got with the golden file at path; with update set it
// rewrites the file instead (creating its directory) and logs that it did.
// A mismatch fails the test with the first differing offset and the
// command that regenerates the file.
func Check(tb testing.TB, path string, got []byte, update bool) {
	tb.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		tb.Logf("wrote golden file %s (%d bytes)", path, len(got))
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read golden file: %v (a new golden file is written with -update)", err)
	}
	if !bytes.Equal(got, want) {
		tb.Errorf("%s: encoding differs from the golden file: %s\n"+
			"If the format change is intended, bump the format version where the spec requires it, "+
			"rerun with -update and commit the new golden file together with the docs.", path, Diff(want, got))
	}
}

// Diff describes where got first differs from want ("" when equal).
func Diff(want, got []byte) string {
	if bytes.Equal(want, got) {
		return ""
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	return fmt.Sprintf("first difference at byte %d (golden %d bytes, got %d): golden %q, got %q",
		i, len(want), len(got), window(want, i), window(got, i))
}

// window returns up to 24 bytes of b around offset i.
func window(b []byte, i int) []byte {
	lo, hi := max(0, i-8), min(len(b), i+16)
	if lo > hi {
		return nil
	}
	return b[lo:hi]
}

// Read returns the golden file at path, failing the test when it is missing.
func Read(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read golden file: %v (a new golden file is written with -update)", err)
	}
	return b
}

// Testdata returns this package's testdata directory, where the fixtures
// shared by several packages' tests live.
func Testdata() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("golden: cannot locate the package's source directory")
	}
	return filepath.Join(filepath.Dir(file), "testdata")
}
