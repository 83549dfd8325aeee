package testkit

import (
	"fmt"
	"os"
	"testing"
)

// Main is a TestMain that releases what a package's tests shared: it runs
// the tests, then each close in turn (reporting failures on stderr), and
// exits with the tests' status. Closes are needed because os.Exit skips
// test cleanups.
func Main(m *testing.M, closes ...func() error) {
	code := m.Run()
	for _, c := range closes {
		if err := c(); err != nil {
			fmt.Fprintln(os.Stderr, "after the tests:", err)
		}
	}
	os.Exit(code)
}
