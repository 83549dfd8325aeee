package restore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
)

// chunk is a run of one segment's selected events inside a batch.
type chunk struct {
	key    string
	events []*event.Event
	end    int // index, among the segment's selected events, after the chunk
}

// dbRestore is one restore into a database.
type dbRestore struct {
	p     *Plan
	opts  *Options
	conn  *pgx.Conn
	t     *targetTable
	def   event.Table
	mode  bypassMode
	cols  []int
	names []string
	res   *Result

	resume   *restoreState // non-nil when continuing an interrupted restore
	baseRows int64         // rows already in place from the interrupted run
}

func restoreToDB(ctx context.Context, p *Plan, opts *Options) (*Result, error) {
	conn, err := connect(ctx, opts.TargetURL, "target")
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	schema, name := splitTableName(p.Table, "public")
	if opts.TargetTable != "" {
		schema, name = splitTableName(opts.TargetTable, schema)
	}
	d := &dbRestore{p: p, opts: opts, conn: conn, res: &Result{Table: schema + "." + name, Empty: p.BeforeFirst}}
	if err := d.lock(ctx, schema+"."+name); err != nil {
		return nil, err
	}
	if d.t, err = inspectTarget(ctx, conn, schema, name); err != nil {
		return nil, classifyPGErr(err)
	}
	if err := d.checkTarget(ctx); err != nil {
		return nil, err
	}
	refs := p.Segments
	if d.resume != nil {
		if refs, err = d.resumeRefs(); err != nil {
			return nil, err
		}
	}
	if err := preflight(ctx, p.archive.Store, refs); err != nil {
		return nil, err
	}
	f := &fetcher{store: p.archive.Store, keyring: p.archive.Keyring, target: p.Target, maxEnd: p.Window.WatermarkLSN, filter: opts.Filter,
		maxBytes: opts.MaxSegmentBytes, progress: opts.Progress}
	d.initProgress(refs)
	pl := startPipeline(ctx, f, refs, opts.Parallel)
	defer pl.stop()
	// The first segment gives the archived definition; nothing is written
	// before it has been downloaded and verified.
	first, ok, err := pl.next(ctx)
	if err != nil {
		return nil, err
	}
	if ok {
		d.def = first.table
	} else if d.def, err = d.definitionWithoutPlan(ctx, f); err != nil {
		return nil, err
	}
	if err := d.prepare(ctx); err != nil {
		return nil, err
	}
	if first != nil {
		if err := d.load(ctx, pl, first); err != nil {
			return nil, err
		}
	}
	return d.finish(ctx)
}

// lock takes a session advisory lock on the target table so two restorers
// never write the same table. It waits a few seconds, long enough for the
// server to notice that an interrupted restorer's connection is gone.
func (d *dbRestore) lock(ctx context.Context, table string) error {
	err := pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '10s'`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_advisory_lock(hashtext('tidemark-restore:' || $1))`, table)
		return err
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "55P03" {
		return failf(ErrTarget, "wait for the other restore to finish, or stop it", "another restore into %s is running", table)
	}
	if err != nil {
		return classifyPGErr(fmt.Errorf("lock target %s: %w", table, err))
	}
	return nil
}

// checkTarget decides, without writing, whether the target can take this
// restore: fresh, resumed, or refused.
func (d *dbRestore) checkTarget(ctx context.Context) error {
	t, p, opts := d.t, d.p, d.opts
	if !t.exists {
		if !opts.CreateTable {
			return failf(ErrTarget, "create it with the application's migrations, or pass --create-table to create it from the archived definition",
				"target table %s does not exist", t.qualified())
		}
		return nil
	}
	if opts.IntoExisting {
		return nil
	}
	st, err := readState(ctx, d.conn, t)
	if err != nil {
		return err
	}
	empty, err := t.isEmpty(ctx, d.conn)
	if err != nil {
		return err
	}
	if empty {
		return nil
	}
	hint := "restore into an empty table (a fresh database, or --target-table NAME with --create-table), or use --into-existing to add only missing events"
	switch {
	case st == nil:
		return failf(ErrTarget, hint, "target table %s is not empty", t.qualified())
	case st.Finished:
		return failf(ErrTarget, hint, "target table %s already holds a finished restore (archive %s, target time %s)",
			t.qualified(), st.ArchiveID, FormatTime(st.TargetTime))
	case st.ArchiveID != p.ArchiveID:
		return failf(ErrTarget, hint, "target table %s holds an unfinished restore of another archive (%s, this one is %s)",
			t.qualified(), st.ArchiveID, p.ArchiveID)
	case !st.TargetTime.Equal(p.Target):
		return failf(ErrTarget, "re-run with --to "+FormatTime(st.TargetTime)+" to resume it, or restore into an empty table",
			"target table %s holds an unfinished restore to %s, not %s", t.qualified(), FormatTime(st.TargetTime), FormatTime(p.Target))
	case st.Filter != opts.Filter.Fingerprint():
		return failf(ErrTarget, "re-run with the same --stream/--stream-prefix/--event-type options to resume it",
			"target table %s holds an unfinished restore with a different filter", t.qualified())
	}
	var n int64
	if err := d.conn.QueryRow(ctx, `SELECT count(*) FROM `+t.ident()).Scan(&n); err != nil {
		return fmt.Errorf("count %s: %w", t.qualified(), err)
	}
	if n != st.Events {
		return failf(ErrTarget, hint, "target table %s holds %d rows but its unfinished restore recorded %d: it was changed since, cannot resume",
			t.qualified(), n, st.Events)
	}
	d.resume, d.baseRows = st, st.Events
	d.res.Resumed = true
	return nil
}

// resumeRefs returns the planned segments from the one the interrupted
// restore stopped in.
func (d *dbRestore) resumeRefs() ([]catalog.SegmentRef, error) {
	if d.resume.SegmentKey == "" {
		return d.p.Segments, nil
	}
	for i, s := range d.p.Segments {
		if s.Key == d.resume.SegmentKey {
			return d.p.Segments[i:], nil
		}
	}
	return nil, failf(ErrTarget, "restore into an empty table",
		"cannot resume: segment %s recorded by the interrupted restore is not in the plan", d.resume.SegmentKey)
}

func (d *dbRestore) initProgress(refs []catalog.SegmentRef) {
	pr := d.opts.Progress
	var bytes, events int64
	for _, r := range refs {
		bytes += r.Size
		events += int64(r.Events)
	}
	pr.BytesTotal.Store(bytes)
	pr.EventsTotal.Store(d.baseRows + events)
	pr.EventsApplied.Store(d.baseRows)
	pr.SegmentsTotal.Store(int64(len(refs)))
	pr.setPhase("download")
	pr.start()
}

// definitionWithoutPlan returns the archived table definition when the
// plan reads no segment: needed only to create the table.
func (d *dbRestore) definitionWithoutPlan(ctx context.Context, f *fetcher) (event.Table, error) {
	if d.t.exists || !d.opts.CreateTable {
		return event.Table{}, nil
	}
	for _, s := range d.p.archive.Catalog.Segments() {
		if s.Table == d.p.Table {
			got, err := f.fetch(ctx, s)
			if err != nil {
				return event.Table{}, err
			}
			return got.table, nil
		}
	}
	return event.Table{}, failf(ErrTarget, "create the table with the application's migrations",
		"the archive holds no segment of %s yet, so --create-table has no definition to create it from", d.p.Table)
}

// prepare validates the target against the definition, then (first write)
// creates the table if asked and records the restore's start.
func (d *dbRestore) prepare(ctx context.Context) error {
	t := d.t
	created := false
	if !t.exists && len(d.def.Columns) > 0 {
		for _, c := range d.def.Columns {
			if !validType(c.Type) {
				return failf(ErrIntegrity, "restorer verify --store URL", "archived column %s has an unusable type %q", c.Name, c.Type)
			}
		}
		t.columns = map[string]bool{}
		for _, c := range d.def.Columns {
			t.columns[c.Name] = false
		}
		created = true
	}
	if len(d.def.Columns) > 0 {
		var err error
		if d.names, d.cols, err = t.copyColumns(d.def); err != nil {
			return err
		}
	}
	mode, err := t.chooseBypass()
	if err != nil {
		return err
	}
	d.mode = mode
	d.res.TriggerBypass = [...]string{"none", "session_replication_role", "disable_trigger"}[mode]
	if d.opts.IntoExisting && len(d.keyColumns()) == 0 && len(d.def.Columns) > 0 {
		return failf(ErrUsage, "restore into an empty table instead", "--into-existing needs a primary key in the archived definition to recognise events already present")
	}
	if !t.exists && len(d.def.Columns) == 0 {
		return failf(ErrTarget, "create it with the application's migrations", "target table %s does not exist", t.qualified())
	}
	if d.resume != nil {
		return nil
	}
	return pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		if created {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{t.schema}.Sanitize()); err != nil {
				return classifyPGErr(fmt.Errorf("create schema %s: %w", t.schema, err))
			}
			if _, err := tx.Exec(ctx, createTableSQL(t.schema, t.name, d.def)); err != nil {
				return classifyPGErr(fmt.Errorf("create table %s: %w", t.qualified(), err))
			}
			if err := tx.QueryRow(ctx, `SELECT $1::regclass::oid`, t.ident()).Scan(&t.oid); err != nil {
				return fmt.Errorf("look up %s: %w", t.qualified(), err)
			}
			t.exists, t.owner = true, true
			d.res.CreatedTable = true
		}
		if d.opts.IntoExisting {
			return nil
		}
		return classifyPGErr(startState(ctx, tx, t, &restoreState{ArchiveID: d.p.ArchiveID, TargetTime: d.p.Target, Filter: d.opts.Filter.Fingerprint()}))
	})
}

// keyColumns returns the archived primary-key column names.
func (d *dbRestore) keyColumns() []string {
	var keys []string
	for _, c := range d.def.Columns {
		if c.Key {
			keys = append(keys, c.Name)
		}
	}
	return keys
}

// load streams every fetched segment into batches and commits them.
func (d *dbRestore) load(ctx context.Context, pl *pipeline, first *fetched) error {
	pr := d.opts.Progress
	pr.setPhase("load")
	var batch []chunk
	rows := 0
	f := first
	for {
		evs := f.events
		off := 0
		if d.resume != nil && f.ref.Key == d.resume.SegmentKey {
			off = d.resume.SegmentOffset
			if off > len(evs) {
				return failf(ErrTarget, "restore into an empty table",
					"cannot resume: the interrupted restore recorded %d rows of segment %s, which selects only %d", off, f.ref.Key, len(evs))
			}
		}
		pl.release()
		pr.EventsTotal.Add(int64(len(evs) - f.ref.Events - off))
		d.res.Segments++
		d.res.Bytes += f.ref.Size
		for off < len(evs) {
			n := min(len(evs)-off, d.opts.BatchRows-rows)
			for off+n < len(evs) && evs[off+n].EndLSN == evs[off+n-1].EndLSN {
				n++ // end batches on a transaction boundary
			}
			batch = append(batch, chunk{key: f.ref.Key, events: evs[off : off+n], end: off + n})
			rows += n
			off += n
			if rows >= d.opts.BatchRows {
				if err := d.flush(ctx, batch); err != nil {
					return err
				}
				batch, rows = nil, 0
			}
		}
		pr.SegmentsDone.Add(1)
		var ok bool
		var err error
		if f, ok, err = pl.next(ctx); err != nil {
			return err
		} else if !ok {
			break
		}
	}
	if rows > 0 {
		return d.flush(ctx, batch)
	}
	return nil
}

// flush commits one batch: rows and restore state in one transaction, with
// the triggers bypassed inside it only.
func (d *dbRestore) flush(ctx context.Context, batch []chunk) error {
	last := batch[len(batch)-1]
	var rows, inserted int64
	err := pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		// Durability comes from the final, synchronous commit: a crash can
		// only lose whole batches together with their state rows.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		if err := d.t.beginBypass(ctx, tx, d.mode); err != nil {
			return err
		}
		r := newRowReader(batch, d.cols)
		into := d.t.ident()
		if d.opts.IntoExisting {
			if err := d.ensureStaging(ctx, tx); err != nil {
				return err
			}
			into = stagingTable
		}
		tag, err := tx.Conn().PgConn().CopyFrom(ctx, r, `COPY `+into+` (`+quoteNames(d.names)+`) FROM STDIN`)
		if err != nil {
			return classifyPGErr(fmt.Errorf("copy into %s: %w", d.t.qualified(), err))
		}
		rows = tag.RowsAffected()
		if d.opts.IntoExisting {
			if inserted, err = d.mergeStaging(ctx, tx); err != nil {
				return err
			}
		} else if err := advanceState(ctx, tx, d.t, last.key, last.end, rows); err != nil {
			return err
		}
		return d.t.endBypass(ctx, tx, d.mode)
	})
	if err != nil {
		if isInterrupted(err) || ctx.Err() != nil {
			return fmt.Errorf("load batch: %w", context.Cause(ctx))
		}
		return err
	}
	d.res.Batches++
	if d.opts.IntoExisting {
		d.res.EventsThisRun += inserted
		d.res.EventsAlreadyPresent += rows - inserted
	} else {
		d.res.EventsThisRun += rows
	}
	d.opts.Progress.EventsApplied.Add(rows)
	if d.opts.AfterBatch != nil {
		return d.opts.AfterBatch(d.res.Batches, d.res.EventsThisRun)
	}
	return nil
}

func quoteNames(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = pgx.Identifier{n}.Sanitize()
	}
	return strings.Join(q, ", ")
}
