package testrig

import (
	"fmt"
	"os"

	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// running reports whether p has been started and not yet exited.
func running(p *testkit.Proc) bool {
	if p == nil {
		return false
	}
	exited, _ := p.Exited()
	return !exited
}

// startupError describes a server that failed to start, with its log tail.
func startupError(name, logPath string, err error) error {
	tail := fileTail(logPath, 40)
	if tail == "" {
		return fmt.Errorf("start %s: %w (log %s is empty)", name, err, logPath)
	}
	return fmt.Errorf("start %s: %w\n--- %s (tail) ---\n%s", name, err, logPath, tail)
}

// fileTail returns the last n lines of a log file ("" if unreadable).
func fileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return testkit.Tail(string(b), n)
}
