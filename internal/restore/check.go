package restore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Verification outcomes.
const (
	VerifyOK      = "ok"
	VerifyFailed  = "failed"
	VerifySkipped = "skipped"
)

// Verification is the result of checking a restored table.
type Verification struct {
	// Status is "ok", "failed" or "skipped".
	Status string `json:"status"`
	// Checks lists each check and its outcome.
	Checks []Check `json:"checks,omitempty"`
	// Problems describe every failed check, naming streams and ids.
	Problems []string `json:"problems,omitempty"`
	// Streams is the number of distinct streams in the checked rows.
	Streams int64 `json:"streams"`
	// Rows is the number of checked rows.
	Rows int64 `json:"rows"`
}

// Check is one verification step.
type Check struct {
	// Name identifies the check: "count", "duplicate_ids", "stream_versions".
	Name string `json:"name"`
	// Status is "ok", "failed" or "skipped".
	Status string `json:"status"`
	// Detail explains the outcome.
	Detail string `json:"detail,omitempty"`
}

func (v *Verification) add(name, status, detail string) {
	v.Checks = append(v.Checks, Check{Name: name, Status: status, Detail: detail})
	if status == VerifyFailed {
		v.Status = VerifyFailed
		v.Problems = append(v.Problems, detail)
	}
}

// maxExamples bounds the streams or ids a failed check names.
const maxExamples = 10

// verify checks the restored table: row count against what was loaded, no
// duplicate event ids, and per-stream versions contiguous from 1.
func (d *dbRestore) verify(ctx context.Context) (*Verification, error) {
	v := &Verification{Status: VerifyOK}
	cols := d.t.columns
	_, hasStream := cols["stream_id"]
	_, hasVersion := cols["stream_version"]
	_, hasID := cols["event_id"]
	scope, args := d.scope()
	ident := d.t.ident()

	if hasStream && hasVersion {
		// With a unique index on (stream_id, stream_version) no version
		// repeats, and count = max with min = 1 proves contiguity cheaply.
		distinct := " OR count(DISTINCT stream_version) <> count(*)"
		if ok, err := d.uniqueOn(ctx, "stream_id", "stream_version"); err != nil {
			return nil, err
		} else if ok {
			distinct = ""
		}
		var streams, bad, rows int64
		err := d.conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE bad), coalesce(sum(n), 0) FROM (
			SELECT count(*) AS n, min(stream_version) <> 1 OR max(stream_version) <> count(*)`+distinct+` AS bad
			  FROM `+ident+` WHERE `+scope+` GROUP BY stream_id) s`, args...).Scan(&streams, &bad, &rows)
		if err != nil {
			return nil, classifyPGErr(fmt.Errorf("verify stream versions of %s: %w", d.t.qualified(), err))
		}
		v.Streams, v.Rows = streams, rows
		switch {
		case !d.opts.Filter.WholeStreams():
			v.add("stream_versions", VerifySkipped, "an --event-type restore holds parts of streams")
		case d.opts.IncludeDiverged:
			v.add("stream_versions", VerifySkipped, "--include-diverged: the diverged history may repeat stream versions")
		case bad == 0:
			v.add("stream_versions", VerifyOK, fmt.Sprintf("%d streams contiguous from version 1", streams))
		default:
			ex, err := d.badStreams(ctx, scope, args)
			if err != nil {
				return nil, err
			}
			v.add("stream_versions", VerifyFailed, fmt.Sprintf("%d streams have versions not contiguous from 1: %s", bad, strings.Join(ex, ", ")))
		}
	} else {
		if err := d.conn.QueryRow(ctx, `SELECT count(*) FROM `+ident+` WHERE `+scope, args...).Scan(&v.Rows); err != nil {
			return nil, classifyPGErr(fmt.Errorf("count %s: %w", d.t.qualified(), err))
		}
		v.add("stream_versions", VerifySkipped, "the table has no stream_id/stream_version columns")
	}

	if d.opts.IntoExisting {
		v.add("count", VerifySkipped, fmt.Sprintf("--into-existing: %d rows in scope, %d inserted, %d already present",
			v.Rows, d.res.EventsThisRun, d.res.EventsAlreadyPresent))
	} else if want := d.baseRows + d.res.EventsThisRun; v.Rows != want {
		v.add("count", VerifyFailed, fmt.Sprintf("the table holds %d rows, the restore loaded %d", v.Rows, want))
	} else {
		v.add("count", VerifyOK, fmt.Sprintf("%d rows, as loaded from the planned segments", v.Rows))
	}

	switch unique, err := d.uniqueOn(ctx, "event_id"); {
	case err != nil:
		return nil, err
	case !hasID:
		v.add("duplicate_ids", VerifySkipped, "the table has no event_id column")
	case unique:
		v.add("duplicate_ids", VerifyOK, "guaranteed by a unique index on event_id")
	default:
		rows, err := d.conn.Query(ctx, `SELECT event_id::text FROM `+ident+` WHERE `+scope+
			` GROUP BY event_id HAVING count(*) > 1 LIMIT `+fmt.Sprint(maxExamples), args...)
		if err != nil {
			return nil, classifyPGErr(fmt.Errorf("check duplicate ids in %s: %w", d.t.qualified(), err))
		}
		dups, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("check duplicate ids in %s: %w", d.t.qualified(), err)
		}
		if len(dups) == 0 {
			v.add("duplicate_ids", VerifyOK, "no event id twice")
		} else {
			v.add("duplicate_ids", VerifyFailed, "event ids present more than once: "+strings.Join(dups, ", "))
		}
	}
	return v, nil
}

// scope returns the WHERE clause selecting the rows this restore is about:
// every row, or for --into-existing the filtered streams.
func (d *dbRestore) scope() (string, []any) {
	f := d.opts.Filter
	if !d.opts.IntoExisting || (len(f.Streams) == 0 && len(f.StreamPrefixes) == 0) {
		return "true", nil
	}
	var or []string
	var args []any
	if len(f.Streams) > 0 {
		args = append(args, f.Streams)
		or = append(or, fmt.Sprintf("stream_id = ANY($%d)", len(args)))
	}
	for _, p := range f.StreamPrefixes {
		args = append(args, p)
		or = append(or, fmt.Sprintf("starts_with(stream_id, $%d)", len(args)))
	}
	return "(" + strings.Join(or, " OR ") + ")", args
}

// badStreams names up to maxExamples streams whose versions are broken.
func (d *dbRestore) badStreams(ctx context.Context, scope string, args []any) ([]string, error) {
	rows, err := d.conn.Query(ctx, `SELECT format('%s (%s events, versions %s…%s)', stream_id, count(*), min(stream_version), max(stream_version))
		FROM `+d.t.ident()+` WHERE `+scope+` GROUP BY stream_id
		HAVING min(stream_version) <> 1 OR max(stream_version) <> count(*) OR count(DISTINCT stream_version) <> count(*)
		ORDER BY stream_id LIMIT `+fmt.Sprint(maxExamples), args...)
	if err != nil {
		return nil, fmt.Errorf("name broken streams: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// uniqueOn reports whether a non-partial unique index on exactly the named
// columns (in any order) exists.
func (d *dbRestore) uniqueOn(ctx context.Context, cols ...string) (bool, error) {
	var ok bool
	err := d.conn.QueryRow(ctx, `SELECT EXISTS (
		SELECT 1 FROM pg_index i
		 WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indnkeyatts = cardinality($2::text[])
		   AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
		          FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])) =
		       (SELECT array_agg(c ORDER BY c) FROM unnest($2::text[]) c))`,
		d.t.oid, cols).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("inspect indexes of %s: %w", d.t.qualified(), err)
	}
	return ok, nil
}
