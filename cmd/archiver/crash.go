//go:build failpoints

package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/cli"
)

// envCrashHook returns the hook crashEnv asks for, or nil when it is unset;
// a malformed value is a usage error. This is the failpoints build's
// version; the default build's (crash_off.go) never crashes.
func envCrashHook(w io.Writer) (func(string), error) {
	hook, err := crashHook(os.Getenv(crashEnv), w)
	if err != nil {
		return nil, cli.Usage(err, "unset "+crashEnv+" (it is for tests only)")
	}
	return hook, nil
}

// crashHook parses spec and returns the hook, or nil when spec is empty.
func crashHook(spec string, w io.Writer) (func(string), error) {
	if spec == "" {
		return nil, nil
	}
	stage, count, ok := strings.Cut(spec, ":")
	n, err := strconv.Atoi(count)
	if !ok || err != nil || n < 1 {
		return nil, fmt.Errorf("%s=%q: want <stage>:<n> with n >= 1", crashEnv, spec)
	}
	all := append(slices.Clone(archive.Stages), archive.MergeStages...)
	if !slices.Contains(all, stage) {
		return nil, fmt.Errorf("%s=%q: unknown stage (want one of %s)", crashEnv, spec, strings.Join(all, ", "))
	}
	var (
		mu   sync.Mutex
		hits int
	)
	return func(s string) {
		if s != stage {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if hits++; hits == n {
			fmt.Fprintf(w, "crash hook: exiting at %s #%d\n", stage, n)
			os.Exit(137)
		}
	}, nil
}
