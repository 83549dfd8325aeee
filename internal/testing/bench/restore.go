package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/testing/eventcore"
)

// RestoreRun is one run of `restorer restore`.
type RestoreRun struct {
	// To is the --to value.
	To string
	// Events is what the restorer reports it restored.
	Events int64
	// Segments and Bytes are what it downloaded.
	Segments int
	Bytes    int64
	// Wall is the process's wall time; Reported the duration it reports.
	Wall, Reported time.Duration
	// MaxRSS is the process's peak resident set size in bytes.
	MaxRSS int64
	// CPU is the process's user plus system time.
	CPU time.Duration
}

// EventsPerSecond is Events over the process's wall time.
func (r RestoreRun) EventsPerSecond() float64 { return rate(r.Events, r.Wall) }

// RunRestorer restores the archive at storeURL into targetURL (whose
// eventcore_events table exists and is empty) up to to, running the
// restorer binary, and returns its figures.
func RunRestorer(ctx context.Context, bin string, env []string, storeURL, targetURL, to, logPath string) (RestoreRun, error) {
	res, err := runProcess(ctx, logPath, env, bin, "restore", "--store", storeURL, "--target", targetURL, "--to", to, "--json")
	run := RestoreRun{To: to, Wall: res.Wall, MaxRSS: res.MaxRSS, CPU: res.CPU}
	if err != nil {
		return run, err
	}
	sc := bufio.NewScanner(bytes.NewReader(res.Stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	found := false
	for sc.Scan() {
		var rec struct {
			Type     string `json:"type"`
			Events   int64  `json:"events"`
			Segments int    `json:"segments"`
			Bytes    int64  `json:"bytes"`
			Duration int64  `json:"duration_ns"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.Type != "result" {
			continue
		}
		run.Events, run.Segments, run.Bytes, run.Reported = rec.Events, rec.Segments, rec.Bytes, time.Duration(rec.Duration)
		found = true
	}
	if !found {
		return run, fmt.Errorf("restorer printed no result record (log %s)", logPath)
	}
	return run, nil
}

// NewEventcoreDatabase creates a database on the cluster at adminURL with
// EventCore's schema (indexes and triggers) and returns its URL.
func NewEventcoreDatabase(ctx context.Context, create func(context.Context) (string, error)) (string, error) {
	url, err := create(ctx)
	if err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", fmt.Errorf("connect target: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := eventcore.Apply(ctx, conn); err != nil {
		return "", err
	}
	return url, nil
}

// eventColumns are the columns COPY moves, in table order.
const eventColumns = "event_id, stream_id, stream_version, event_type, event_data, metadata, created_at"

// ExportRows writes the rows of eventcore_events whose stream id starts with
// prefix to path in COPY text format and returns how many it wrote.
func ExportRows(ctx context.Context, srcURL, prefix, path string) (int64, error) {
	conn, err := pgx.Connect(ctx, srcURL)
	if err != nil {
		return 0, fmt.Errorf("connect source: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	f, err := os.Create(path)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", path, err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	q := "COPY (SELECT " + eventColumns + " FROM eventcore_events WHERE starts_with(stream_id, " +
		quoteLiteral(prefix+"-") + ")) TO STDOUT"
	tag, err := conn.PgConn().CopyTo(ctx, w, q)
	if err != nil {
		return 0, fmt.Errorf("export rows: %w", err)
	}
	if err := w.Flush(); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	return tag.RowsAffected(), f.Close()
}

// CopyRows loads a COPY text file into eventcore_events at targetURL the
// plain way — one COPY FROM STDIN, triggers bypassed with
// session_replication_role = replica as the restorer does — and returns
// the rows loaded and the time from connecting to commit.
func CopyRows(ctx context.Context, targetURL, path string) (int64, time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	start := time.Now()
	conn, err := pgx.Connect(ctx, targetURL)
	if err != nil {
		return 0, 0, fmt.Errorf("connect target: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		return 0, 0, fmt.Errorf("bypass triggers: %w", err)
	}
	tag, err := conn.PgConn().CopyFrom(ctx, bufio.NewReaderSize(f, 1<<20), "COPY eventcore_events ("+eventColumns+") FROM STDIN")
	if err != nil {
		return 0, 0, fmt.Errorf("copy rows: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, fmt.Errorf("commit copy: %w", err)
	}
	return tag.RowsAffected(), time.Since(start), nil
}

// CommitTimeAt returns the commit time of the n-th (1-based) event, in
// commit order, among those whose stream id starts with prefix, and how
// many events committed at or before it.
func CommitTimeAt(ctx context.Context, srcURL, prefix string, n int64) (time.Time, int64, error) {
	conn, err := pgx.Connect(ctx, srcURL)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("connect source: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var t time.Time
	var upTo int64
	err = conn.QueryRow(ctx, `
		WITH c AS (SELECT pg_xact_commit_timestamp(xmin) AS ts FROM eventcore_events WHERE starts_with(stream_id, $1)),
		     t AS (SELECT ts FROM c ORDER BY ts OFFSET $2 LIMIT 1)
		SELECT t.ts, (SELECT count(*) FROM c WHERE c.ts <= t.ts) FROM t`, prefix+"-", max(n-1, 0)).Scan(&t, &upTo)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("find commit time of event %d: %w", n, err)
	}
	return t.UTC(), upTo, nil
}

func quoteLiteral(s string) string {
	var b bytes.Buffer
	writeLiteral(&b, []byte(s))
	return b.String()
}
