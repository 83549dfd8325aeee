package segment

import (
	"flag"
	"os"
	"testing"
)

// TestMain caps how long `go test -fuzz` minimizes each new input at 2 s
// unless -fuzzminimizetime is given: segments are hundreds of bytes and Go's
// minimizer is quadratic in the input size, so with the 60 s default a short
// run (-fuzztime=10s) would spend all its time minimizing instead of fuzzing.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.fuzzminimizetime" })
	if !set {
		_ = flag.Set("test.fuzzminimizetime", "2s")
	}
	os.Exit(m.Run())
}
