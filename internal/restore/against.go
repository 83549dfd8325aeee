package restore

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/redact"
)

// against compares the archived event ids with the live source's.
func (v *verifier) against(ctx context.Context, a *Archive, opts VerifyOptions) error {
	table := opts.Table
	if table == "" {
		tables := a.Tables()
		if len(tables) != 1 {
			return failf(ErrUsage, "pass --table", "the archive holds %d tables (%v); name the one to compare", len(tables), tables)
		}
		table = tables[0]
	}
	conn, err := connect(ctx, opts.AgainstURL, "source")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rep := &AgainstReport{Source: redact.URL(opts.AgainstURL), Table: table}
	v.rep.Against = rep
	wm := a.Window().Watermark
	schema, name := splitTableName(table, "public")
	rows, err := conn.Query(ctx, `SELECT event_id::text, stream_id::text, pg_xact_commit_timestamp(xmin) FROM `+
		pgx.Identifier{schema, name}.Sanitize())
	if err != nil {
		return classifyPGErr(fmt.Errorf("read source %s: %w", table, err))
	}
	var src []uint64
	var id string
	var stream *string
	var ts *time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &stream, &ts}, func() error {
		h := maphash.String(v.seed, id)
		src = append(src, h)
		archived := v.archived(h)
		switch {
		case ts != nil && ts.After(wm):
			if archived {
				rep.AfterWatermark++
			}
		default:
			rep.SourceEvents++
			if !archived {
				rep.Missing++
				s := ""
				if stream != nil {
					s = *stream
				}
				when := "without a commit timestamp"
				if ts != nil {
					when = "committed " + FormatTime(*ts)
				}
				v.problem(SeverityFailure, "against", "", s, "source event %s (%s, at or before the watermark %s) is not in the archive",
					id, when, FormatTime(wm))
			}
		}
		return nil
	})
	if err != nil {
		return classifyPGErr(fmt.Errorf("read source %s: %w", table, err))
	}
	slices.Sort(src)
	for _, r := range v.ids {
		if _, found := slices.BinarySearch(src, r.h); !found {
			rep.Extra++
			v.problem(SeverityFailure, "against", v.segs[r.seg], "", "an archived event is not in the source table %s", table)
		}
	}
	if rep.AfterWatermark > 0 {
		v.problem(SeverityWarning, "against", "", "", "%d archived events committed after the watermark %s on the source (the watermark lags the archive)",
			rep.AfterWatermark, FormatTime(wm))
	}
	return nil
}

// archived reports whether an event id digest is in the archive (v.ids is sorted).
func (v *verifier) archived(h uint64) bool {
	_, found := slices.BinarySearchFunc(v.ids, h, func(r idRef, h uint64) int {
		switch {
		case r.h < h:
			return -1
		case r.h > h:
			return 1
		}
		return 0
	})
	return found
}
