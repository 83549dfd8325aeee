package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/testing/oracle"
)

// instantCheck restores many instants cheaply: `restorer restore --output
// FILE` writes the restore's events as JSON lines (the same plan, download,
// decode and commit-time cut as a database restore, without a database).
// One restore to the watermark is compared with the oracle column by
// column; every other instant must then print exactly the lines of that
// one whose commit time is at or before it, in the same (chain) order —
// a byte comparison, so hundreds of instants cost little more than the
// restores themselves.
type instantCheck struct {
	rows  []oracle.Row   // the source's rows up to the watermark, by commit time
	index map[string]int // event id → position in rows
	full  []outLine      // the restore to the watermark, checked against rows
}

// outLine is one line of restore --output with its commit time.
type outLine struct {
	text   []byte
	commit time.Time
}

// CheckInstants restores n instants (commit times exactly and 1 µs before,
// and up to 8 bucket edges of each of spans, exactly and 1 µs before) with
// --output and compares each with the oracle: every source event committed
// at or before the instant, once, every column equal, with its commit
// time; nothing else.
func (e *Env) CheckInstants(n int, spans []time.Duration) ([]*Violation, error) {
	cat, err := catalog.Load(e.Ctx, e.Store)
	if err != nil {
		return nil, err
	}
	wm := cat.Watermark().CommitTime
	rows, err := oracle.Expected(e.Ctx, e.H.SourceURL, table, wm)
	if err != nil {
		return nil, err
	}
	c := &instantCheck{rows: rows, index: make(map[string]int, len(rows))}
	for i, r := range rows {
		c.index[r.EventID] = i
	}
	dir := filepath.Join(e.Dir, "instants")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if problem, err := c.restoreFull(e, dir, wm); err != nil || problem != "" {
		if err != nil {
			return nil, err
		}
		return []*Violation{violation("I3", "%s", problem)}, nil
	}
	tos := c.pick(e, n, spans)
	bad, err := c.run(e, dir, tos)
	if err != nil {
		return nil, err
	}
	e.Note("instants=%d", len(tos)+1)
	if len(bad) == 0 {
		return nil, nil
	}
	slices.Sort(bad)
	return []*Violation{violation("I3", "%d of %d instants restored (--output) differ from the oracle: %s",
		len(bad), len(tos), strings.Join(bad[:min(3, len(bad))], "; "))}, nil
}

// run restores and compares the instants, two at a time (the machine has
// two cores), and returns the differences found.
func (c *instantCheck) run(e *Env, dir string, tos []time.Time) ([]string, error) {
	var (
		mu   sync.Mutex
		bad  []string
		fail error
		next = make(chan int)
		wg   sync.WaitGroup
	)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				problem, err := c.restoreAndCompare(e, dir, i, tos[i])
				mu.Lock()
				if err != nil && fail == nil {
					fail = err
				}
				if problem != "" {
					bad = append(bad, problem)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range tos {
		if e.Ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if fail == nil {
		fail = e.Ctx.Err()
	}
	return bad, fail
}

// pick chooses the instants: bucket edges of spans (up to 8 of each span,
// seeded), exactly and 1 µs before, then distinct commit times, exactly
// and 1 µs before, up to n in all.
func (c *instantCheck) pick(e *Env, n int, spans []time.Duration) []time.Time {
	var times []time.Time
	for _, r := range c.rows {
		if len(times) == 0 || !r.CommitTime.Equal(times[len(times)-1]) {
			times = append(times, r.CommitTime)
		}
	}
	var out []time.Time
	if len(times) == 0 {
		return out
	}
	first, last := times[0], times[len(times)-1]
	for _, span := range spans {
		var edges []time.Time
		for t := first.Truncate(span).Add(span); !t.After(last); t = t.Add(span) {
			edges = append(edges, t)
		}
		for _, i := range e.Rand.Perm(len(edges))[:min(len(edges), 8)] {
			out = append(out, edges[i], edges[i].Add(-time.Microsecond))
		}
	}
	for _, i := range e.Rand.Perm(len(times)) {
		if len(out) >= n {
			break
		}
		out = append(out, times[i], times[i].Add(-time.Microsecond))
	}
	return out
}

// restoreFull restores to the watermark and compares every line with the
// oracle; it keeps the lines for the other instants.
func (c *instantCheck) restoreFull(e *Env, dir string, wm time.Time) (string, error) {
	file := filepath.Join(dir, "full.jsonl")
	to := formatT(wm)
	out, err := e.runRestorer(e.Ctx, "instants/restore-full", "restore", "--store", e.H.StoreURL, "--output", file, "--to", to)
	if err != nil {
		return "", err
	}
	if out.ExitCode != 0 {
		return fmt.Sprintf("restore --output --to %s exited %d: %s", to, out.ExitCode, errText(out)), nil
	}
	defer os.Remove(file)
	lines, err := readLines(file)
	if err != nil {
		return "", err
	}
	c.full = lines
	if d := c.compare(lines, out.Target); d != "" {
		return fmt.Sprintf("restore --output --to %s: %s", to, d), nil
	}
	return "", nil
}

// restoreAndCompare restores instant t to a JSON-lines file and compares
// it with the full restore's lines up to t; it returns a description of
// the difference ("" when equal).
func (c *instantCheck) restoreAndCompare(e *Env, dir string, i int, t time.Time) (string, error) {
	file := filepath.Join(dir, fmt.Sprintf("%03d.jsonl", i))
	to := formatT(t)
	out, err := e.runRestorer(e.Ctx, fmt.Sprintf("instants/restore-%03d", i), "restore", "--store", e.H.StoreURL, "--output", file, "--to", to)
	if err != nil {
		return "", err
	}
	if out.ExitCode != 0 {
		return fmt.Sprintf("restore --to %s exited %d: %s", to, out.ExitCode, errText(out)), nil
	}
	defer os.Remove(file)
	got, err := readLines(file)
	if err != nil {
		return "", err
	}
	var want []outLine
	for _, l := range c.full {
		if !l.commit.After(t) {
			want = append(want, l)
		}
	}
	if equalLines(got, want) {
		return "", nil
	}
	// Not the same lines in the same order: say how, against the oracle.
	if d := c.compare(got, t); d != "" {
		return fmt.Sprintf("restore --to %s: %s", to, d), nil
	}
	e.NoteOnce("instant_order_differs") // the oracle's events, in another order than the full restore's
	return "", nil
}

func equalLines(a, b []outLine) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].text, b[i].text) {
			return false
		}
	}
	return true
}

// readLines reads a restore --output file with each line's commit time.
func readLines(file string) ([]outLine, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	const marker = `"commit_time":"`
	var out []outLine
	for len(b) > 0 {
		n := bytes.IndexByte(b, '\n')
		if n < 0 {
			return nil, fmt.Errorf("%s: last line unterminated", file)
		}
		line := b[:n]
		b = b[n+1:]
		i := bytes.LastIndex(line, []byte(marker))
		if i < 0 {
			return nil, fmt.Errorf("%s: line without commit_time: %s", file, clipLine(string(line)))
		}
		rest := line[i+len(marker):]
		end := bytes.IndexByte(rest, '"')
		if end < 0 {
			return nil, fmt.Errorf("%s: malformed commit_time: %s", file, clipLine(string(line)))
		}
		t, err := time.Parse(time.RFC3339Nano, string(rest[:end]))
		if err != nil {
			return nil, fmt.Errorf("%s: commit_time: %w", file, err)
		}
		out = append(out, outLine{text: line, commit: t})
	}
	return out, nil
}

// jsonLine is one event of restore --output, as the feed encodes its row
// plus its commit time.
type jsonLine struct {
	EventID       string          `json:"event_id"`
	StreamID      string          `json:"stream_id"`
	StreamVersion json.RawMessage `json:"stream_version"`
	EventType     string          `json:"event_type"`
	EventData     json.RawMessage `json:"event_data"`
	Metadata      json.RawMessage `json:"metadata"`
	CreatedAt     string          `json:"created_at"`
	CommitTime    time.Time       `json:"commit_time"`
}

// compare checks restored lines against the oracle rows committed at or
// before t; it returns a description of the difference ("" when equal).
func (c *instantCheck) compare(lines []outLine, t time.Time) string {
	want, _ := slices.BinarySearchFunc(c.rows, t, func(r oracle.Row, t time.Time) int {
		if r.CommitTime.After(t) {
			return 1
		}
		return -1 // rows at t sort before it: want counts rows ≤ t
	})
	seen := make(map[string]bool, want)
	var unexpected, dups, mismatched int
	var example string
	note := func(s string) {
		if example == "" {
			example = s
		}
	}
	for _, ln := range lines {
		var l jsonLine
		if err := json.Unmarshal(ln.text, &l); err != nil {
			return fmt.Sprintf("line %q: %v", clipLine(string(ln.text)), err)
		}
		i, ok := c.index[l.EventID]
		switch {
		case !ok || i >= want:
			unexpected++
			note("unexpected " + l.EventID)
		case seen[l.EventID]:
			dups++
			note("duplicated " + l.EventID)
		default:
			seen[l.EventID] = true
			if f := diffLine(c.rows[i], l); f != "" {
				mismatched++
				note(l.EventID + ": " + f)
			}
		}
	}
	missing := want - len(seen)
	if missing == 0 && unexpected == 0 && dups == 0 && mismatched == 0 {
		return ""
	}
	if missing > 0 && example == "" {
		for _, r := range c.rows[:want] {
			if !seen[r.EventID] {
				note("missing " + r.EventID)
				break
			}
		}
	}
	return fmt.Sprintf("%d expected: %d missing, %d unexpected, %d duplicated, %d mismatched (%s)", want, missing, unexpected, dups, mismatched, example)
}

// diffLine names the first column in which an output line differs from its
// source row.
func diffLine(r oracle.Row, l jsonLine) string {
	switch {
	case l.StreamID != r.StreamID:
		return "stream_id"
	case unquoteRaw(l.StreamVersion) != strconv.FormatInt(r.StreamVersion, 10):
		return "stream_version"
	case l.EventType != r.EventType:
		return "event_type"
	case string(l.EventData) != r.EventData:
		return fmt.Sprintf("event_data %s, want %s", clipLine(string(l.EventData)), clipLine(r.EventData))
	case string(l.Metadata) != r.Metadata:
		return fmt.Sprintf("metadata %s, want %s", clipLine(string(l.Metadata)), clipLine(r.Metadata))
	case !sameTimestamp(l.CreatedAt, r.CreatedAt):
		return fmt.Sprintf("created_at %s, want %s", l.CreatedAt, r.CreatedAt)
	case !l.CommitTime.Equal(r.CommitTime):
		return fmt.Sprintf("commit_time %s, want %s", formatT(l.CommitTime), formatT(r.CommitTime))
	}
	return ""
}

func unquoteRaw(b json.RawMessage) string {
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s
	}
	return string(b)
}

// sameTimestamp compares two timestamptz texts: equal text, or the same
// instant (the archive keeps the text capture's session printed, the oracle
// prints in UTC).
func sameTimestamp(a, b string) bool {
	if a == b {
		return true
	}
	ta, errA := parsePGTime(a)
	tb, errB := parsePGTime(b)
	return errA == nil && errB == nil && ta.Equal(tb)
}

func parsePGTime(s string) (time.Time, error) {
	var err error
	for _, layout := range []string{"2006-01-02 15:04:05.999999-07", "2006-01-02 15:04:05.999999-07:00", time.RFC3339Nano} {
		var t time.Time
		if t, err = time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

func clipLine(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
