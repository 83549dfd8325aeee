package loadgen

import (
	"testing"
	"time"
)

// TestSteadyLimiter_StartsEmpty checks that a rated run starts at its rate
// rather than with a burst, and that its bucket holds 20 ms of events.
func TestSteadyLimiter_StartsEmpty(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := newSteadyLimiter(5000, now)
	if got := l.TokensAt(now); got > 0.001 {
		t.Fatalf("tokens at start = %v, want 0", got)
	}
	if got := l.TokensAt(now.Add(10 * time.Millisecond)); got < 49.9 || got > 50.1 {
		t.Fatalf("tokens after 10 ms = %v, want 50", got)
	}
	if got := l.TokensAt(now.Add(time.Second)); got != 100 {
		t.Fatalf("tokens after 1 s = %v, want the burst of 100", got)
	}
	if got := newSteadyLimiter(100, now).Burst(); got != maxCommandEvents {
		t.Fatalf("burst at 100 events/s = %d, want one command's %d", got, maxCommandEvents)
	}
}
