package chaos

import (
	"bufio"
	"context"
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
// decode and commit-time cut as a database restore, without a database),
// and each file is compared with the oracle held in memory.
type instantCheck struct {
	rows  []oracle.Row   // the source's rows up to the watermark, by commit time
	index map[string]int // event id → position in rows
}

// CheckInstants restores n instants besides extra ones (half of them
// commit times exactly, half 1 µs before a commit time, plus every merge
// bucket edge of spans, exactly and 1 µs before) with --output and compares
// each with the oracle: every source event committed at or before the
// instant, once, every column equal, with its commit time; nothing else.
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
	tos := c.pick(e, n, spans)
	dir := filepath.Join(e.Dir, "instants")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var (
		mu   sync.Mutex
		bad  []string
		next = make(chan int)
		wg   sync.WaitGroup
		fail error
	)
	for range 2 { // the restorer is mostly single-threaded here; the machine has 2 cores
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
	if fail != nil {
		return nil, fail
	}
	if err := e.Ctx.Err(); err != nil {
		return nil, err
	}
	e.Note("instants=%d", len(tos))
	if len(bad) == 0 {
		return nil, nil
	}
	slices.Sort(bad)
	return []*Violation{violation("I3", "%d of %d instants restored (--output) differ from the oracle: %s",
		len(bad), len(tos), strings.Join(bad[:min(3, len(bad))], "; "))}, nil
}

// pick chooses the instants: n/2 distinct commit times, each exactly and
// 1 µs before, and the bucket edges of spans within the window.
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
	for _, i := range e.Rand.Perm(len(times))[:min(len(times), (n+1)/2)] {
		out = append(out, times[i], times[i].Add(-time.Microsecond))
	}
	first, last := times[0], times[len(times)-1]
	for _, span := range spans {
		for t := first.Truncate(span).Add(span); !t.After(last); t = t.Add(span) {
			out = append(out, t, t.Add(-time.Microsecond))
		}
	}
	return out
}

// restoreAndCompare restores instant t to a JSON-lines file and compares
// it; it returns a description of the difference ("" when equal).
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
	d, err := c.compare(e.Ctx, file, out.Target)
	if err != nil {
		return fmt.Sprintf("restore --to %s: %v", to, err), nil
	}
	if d != "" {
		return fmt.Sprintf("restore --to %s: %s", to, d), nil
	}
	return "", nil
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

// compare checks a restored file against the oracle rows committed at or
// before t.
func (c *instantCheck) compare(ctx context.Context, file string, t time.Time) (string, error) {
	want, _ := slices.BinarySearchFunc(c.rows, t, func(r oracle.Row, t time.Time) int {
		if r.CommitTime.After(t) {
			return 1
		}
		return -1 // rows at t sort before it: want counts rows ≤ t
	})
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	seen := make(map[string]bool, want)
	var unexpected, dups, mismatched int
	var example string
	note := func(s string) {
		if example == "" {
			example = s
		}
	}
	for sc.Scan() {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		var l jsonLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return "", fmt.Errorf("line %q: %w", clipLine(sc.Text()), err)
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
	if err := sc.Err(); err != nil {
		return "", err
	}
	missing := want - len(seen)
	if missing == 0 && unexpected == 0 && dups == 0 && mismatched == 0 {
		return "", nil
	}
	if missing > 0 && example == "" {
		for _, r := range c.rows[:want] {
			if !seen[r.EventID] {
				note("missing " + r.EventID)
				break
			}
		}
	}
	return fmt.Sprintf("%d expected: %d missing, %d unexpected, %d duplicated, %d mismatched (%s)", want, missing, unexpected, dups, mismatched, example), nil
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
