//go:build !failpoints

package main

import "io"

// envCrashHook is the default build's crash failpoint: there is none, and
// crashEnv is not read. Tests that crash the archiver on purpose build it
// with -tags failpoints (crash.go).
func envCrashHook(io.Writer) (func(string), error) { return nil, nil }
