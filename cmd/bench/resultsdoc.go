package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/testing/bench"
)

// Markers delimit the generated part of docs/benchmarks.md; everything
// outside them is hand-written and kept.
const (
	beginMarker = "<!-- bench:results:begin (written by `make bench`; edits inside are overwritten) -->"
	endMarker   = "<!-- bench:results:end -->"
)

// writeDoc replaces the generated results section of path (creating the
// file with just that section when it does not exist).
func writeDoc(path string, res *bench.Results, m machine, command string) error {
	section := beginMarker + "\n" + resultsSection(res, m, command) + endMarker + "\n"
	old, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		old = []byte("# Benchmarks\n\n" + beginMarker + "\n" + endMarker + "\n")
	} else if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	text := string(old)
	i, j := strings.Index(text, beginMarker), strings.Index(text, endMarker)
	if i < 0 || j < i {
		text += "\n" + section
	} else {
		text = text[:i] + section + text[j+len(endMarker)+1:]
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func resultsSection(res *bench.Results, m machine, command string) string {
	c := res.Config
	var b strings.Builder
	fmt.Fprintf(&b, "## Last full run\n\n")
	fmt.Fprintf(&b, "- date: %s (took %s)\n", res.Finished.UTC().Format(time.RFC3339), res.Finished.Sub(res.Started).Round(time.Second))
	fmt.Fprintf(&b, "- machine: %s\n", m)
	fmt.Fprintf(&b, "- command: `%s`\n", command)
	fmt.Fprintf(&b, "- data: %s events in %s transactions over %s streams; %s events/s steady for %s; archive store: %s\n\n",
		count(float64(res.Load.Events)), count(float64(res.Load.Transactions)), count(float64(c.Streams)), count(c.SteadyRate), c.SteadyDuration, c.Store)
	b.WriteString(bench.Markdown(res.Rows()))
	b.WriteString("\nCPU used per phase, in cores (CPU seconds ÷ wall seconds); \"other\" is the rest of the machine (other load on a shared host):\n\n")
	b.WriteString(bench.CPUMarkdown(res.CPU))
	b.WriteString("\n")
	return b.String()
}

// count formats a number with thousands separators.
func count(f float64) string {
	s := strconv.FormatFloat(f, 'f', 0, 64)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return sign + b.String()
}
