package testkit

import (
	"testing"
	"time"
)

// pollInterval is how often WaitFor evaluates its condition.
const pollInterval = 50 * time.Millisecond

// WaitFor polls cond until it holds, failing tb after timeout with what it
// waited for.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	WaitForLog(tb, timeout, what, cond, nil)
}

// WaitForLog is WaitFor that adds log() — the output of the processes
// involved — to the failure message; a nil log adds nothing.
func WaitForLog(tb testing.TB, timeout time.Duration, what string, cond func() bool, log func() string) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			if log == nil {
				tb.Fatalf("timed out after %s waiting for %s", timeout, what)
			}
			tb.Fatalf("timed out after %s waiting for %s; output:\n%s", timeout, what, log())
		}
		time.Sleep(pollInterval)
	}
}
