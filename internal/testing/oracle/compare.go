package oracle

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// MaxExamples is how many examples of each kind of difference a Diff keeps.
const MaxExamples = 5

// Diff is the difference between a restored table and the expected rows.
type Diff struct {
	// Expected and Actual count the expected rows and the target's rows.
	Expected, Actual int
	// Missing counts expected rows absent from the target.
	Missing int
	// Unexpected counts target rows that are not expected (including
	// duplicates of an expected event id).
	Unexpected int
	// Mismatched counts rows present on both sides whose columns differ.
	Mismatched int

	// MissingExamples, UnexpectedExamples and MismatchedExamples hold the
	// first MaxExamples of each, in event id order.
	MissingExamples    []Row
	UnexpectedExamples []Row
	MismatchedExamples []Mismatch
}

// Mismatch is one event present on both sides with different columns.
type Mismatch struct {
	Expected, Actual Row
	// Fields names the differing columns.
	Fields []string
}

// Empty reports whether the target matches exactly.
func (d Diff) Empty() bool {
	return d.Missing == 0 && d.Unexpected == 0 && d.Mismatched == 0
}

// String summarises the difference with its examples.
func (d Diff) String() string {
	if d.Empty() {
		return fmt.Sprintf("no differences (%d rows)", d.Expected)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d rows expected, %d in target: %d missing, %d unexpected, %d mismatched",
		d.Expected, d.Actual, d.Missing, d.Unexpected, d.Mismatched)
	for _, r := range d.MissingExamples {
		fmt.Fprintf(&b, "\n  missing:    %s", r.short())
	}
	for _, r := range d.UnexpectedExamples {
		fmt.Fprintf(&b, "\n  unexpected: %s", r.short())
	}
	for _, m := range d.MismatchedExamples {
		fmt.Fprintf(&b, "\n  mismatched: %s: %s", m.Expected.short(), strings.Join(m.Fields, ", "))
		for _, f := range m.Fields {
			e, a := m.Expected.field(f), m.Actual.field(f)
			fmt.Fprintf(&b, "\n    %s: want %s, got %s", f, clip(e), clip(a))
		}
	}
	return b.String()
}

func (r Row) short() string {
	return fmt.Sprintf("%s %q v%d %s", r.EventID, r.StreamID, r.StreamVersion, r.EventType)
}

func (r Row) field(name string) string {
	switch name {
	case "stream_id":
		return fmt.Sprintf("%q", r.StreamID)
	case "stream_version":
		return fmt.Sprint(r.StreamVersion)
	case "event_type":
		return r.EventType
	case "event_data":
		return r.EventData
	case "metadata":
		return r.Metadata
	case "created_at":
		return r.CreatedAt
	}
	return ""
}

func clip(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%s… (%d bytes)", s[:80], len(s))
	}
	return s
}

// diffFields lists the columns in which a and b differ.
func diffFields(a, b Row) []string {
	var f []string
	if a.StreamID != b.StreamID {
		f = append(f, "stream_id")
	}
	if a.StreamVersion != b.StreamVersion {
		f = append(f, "stream_version")
	}
	if a.EventType != b.EventType {
		f = append(f, "event_type")
	}
	if a.EventData != b.EventData {
		f = append(f, "event_data")
	}
	if a.Metadata != b.Metadata {
		f = append(f, "metadata")
	}
	if a.CreatedAt != b.CreatedAt {
		f = append(f, "created_at")
	}
	return f
}

// CompareTable compares table in the target database with the source rows
// committed at or before t (see Expected): event ids, stream ids, versions,
// types, and the text of event_data, metadata and created_at. Both sides
// are streamed in event id order, so tables of millions of rows compare in
// constant memory.
func CompareTable(ctx context.Context, sourceURL, targetURL, table string, t time.Time) (Diff, error) {
	src, err := connect(ctx, sourceURL)
	if err != nil {
		return Diff{}, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	dst, err := connect(ctx, targetURL)
	if err != nil {
		return Diff{}, err
	}
	defer dst.Close(context.WithoutCancel(ctx))

	order := ` ORDER BY event_id::text COLLATE "C"`
	want, err := src.Query(ctx, `SELECT `+rowColumns+` FROM `+quoteTable(table)+`
		WHERE pg_xact_commit_timestamp(xmin) <= $1`+order, t)
	if err != nil {
		return Diff{}, fmt.Errorf("query source %s: %w", table, err)
	}
	defer want.Close()
	got, err := dst.Query(ctx, `SELECT `+rowColumns+` FROM `+quoteTable(table)+order)
	if err != nil {
		return Diff{}, fmt.Errorf("query target %s: %w", table, err)
	}
	defer got.Close()
	return mergeDiff(&rowCursor{rows: want}, &rowCursor{rows: got})
}

// rowCursor reads Rows one at a time.
type rowCursor struct {
	rows pgx.Rows
	cur  Row
	ok   bool
}

func (c *rowCursor) next() error {
	c.ok = c.rows.Next()
	if !c.ok {
		return c.rows.Err()
	}
	r := &c.cur
	return c.rows.Scan(&r.EventID, &r.StreamID, &r.StreamVersion, &r.EventType, &r.EventData, &r.Metadata, &r.CreatedAt)
}

// mergeDiff walks two cursors sorted by event id and records differences.
func mergeDiff(want, got *rowCursor) (Diff, error) {
	var d Diff
	if err := want.next(); err != nil {
		return d, fmt.Errorf("read source: %w", err)
	}
	if err := got.next(); err != nil {
		return d, fmt.Errorf("read target: %w", err)
	}
	lastGot := ""
	for want.ok || got.ok {
		switch {
		case got.ok && got.cur.EventID == lastGot: // duplicate in the target
			d.addUnexpected(got.cur)
			d.Actual++
			if err := got.next(); err != nil {
				return d, fmt.Errorf("read target: %w", err)
			}
			continue
		case !got.ok || (want.ok && want.cur.EventID < got.cur.EventID):
			d.Missing++
			if len(d.MissingExamples) < MaxExamples {
				d.MissingExamples = append(d.MissingExamples, want.cur)
			}
			d.Expected++
			if err := want.next(); err != nil {
				return d, fmt.Errorf("read source: %w", err)
			}
			continue
		case !want.ok || got.cur.EventID < want.cur.EventID:
			d.addUnexpected(got.cur)
		default:
			if f := diffFields(want.cur, got.cur); len(f) > 0 {
				d.Mismatched++
				if len(d.MismatchedExamples) < MaxExamples {
					d.MismatchedExamples = append(d.MismatchedExamples, Mismatch{Expected: want.cur, Actual: got.cur, Fields: f})
				}
			}
			d.Expected++
			if err := want.next(); err != nil {
				return d, fmt.Errorf("read source: %w", err)
			}
		}
		lastGot = got.cur.EventID
		d.Actual++
		if err := got.next(); err != nil {
			return d, fmt.Errorf("read target: %w", err)
		}
	}
	return d, nil
}

func (d *Diff) addUnexpected(r Row) {
	d.Unexpected++
	if len(d.UnexpectedExamples) < MaxExamples {
		d.UnexpectedExamples = append(d.UnexpectedExamples, r)
	}
}
