package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidemark/tidemark/internal/event"
)

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
	src      *chainReader
	in       *lookahead // src, with the event that did not fit the last batch
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
	d.src = newChainReader(p, opts, d.resume)
	defer d.src.close()
	d.in = &lookahead{next: d.src.next}
	d.initProgress()
	// The first segment gives the archived definition; nothing is written
	// before it has been downloaded and verified.
	def, ok, err := d.src.start(ctx)
	if err != nil {
		return nil, err
	}
	if ok {
		d.def = def
	} else if d.def, err = d.definitionWithoutPlan(ctx); err != nil {
		return nil, err
	}
	if err := d.prepare(ctx); err != nil {
		return nil, err
	}
	if ok {
		if err := d.load(ctx); err != nil {
			return nil, err
		}
	}
	d.res.Segments, d.res.Bytes = d.src.segments, d.src.bytes
	d.res.FromFallback = d.src.progress.FromFallback.Load()
	if d.src.replans > 0 {
		d.res.Replans = d.src.replans
		d.res.Notes = append(d.res.Notes, replanNote(d.src.replans))
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
	case !st.sameArchive(p.ArchiveID, p.origin):
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

func (d *dbRestore) initProgress() {
	pr := d.opts.Progress
	pr.BytesTotal.Store(d.p.Bytes)
	pr.EventsTotal.Store(d.baseRows + d.p.MaxEvents)
	pr.EventsApplied.Store(d.baseRows)
	pr.SegmentsTotal.Store(int64(d.p.SegmentCount))
	pr.setPhase("download")
	pr.start()
}

// definitionWithoutPlan returns the archived table definition when the
// plan reads no segment: needed only to create the table.
func (d *dbRestore) definitionWithoutPlan(ctx context.Context) (event.Table, error) {
	if d.t.exists || !d.opts.CreateTable {
		return event.Table{}, nil
	}
	for _, s := range d.p.archive.Catalog.Segments() {
		if s.Table == d.p.Table {
			return d.src.f.definition(ctx, s)
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
		return classifyPGErr(pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error { return migrateState(ctx, tx, t) }))
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
		return classifyPGErr(startState(ctx, tx, t, &restoreState{ArchiveID: d.p.ArchiveID, Origin: d.p.origin, TargetTime: d.p.Target, Filter: d.opts.Filter.Fingerprint()}))
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

// load streams the selected events into batches and commits them.
func (d *dbRestore) load(ctx context.Context) error {
	pr := d.opts.Progress
	pr.setPhase("load")
	for {
		more, err := d.flush(ctx)
		if err != nil {
			return err
		}
		if !more {
			pr.EventsTotal.Store(pr.EventsApplied.Load())
			return nil
		}
	}
}

// flush commits one batch: rows streamed with COPY straight from the
// segments being decoded, and the restore state, in one transaction with
// the triggers bypassed inside it only. It reports whether events remain.
func (d *dbRestore) flush(ctx context.Context) (bool, error) {
	first, err := d.in.pull(ctx)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	d.in.unpull(first)
	b := &batchReader{ctx: ctx, in: d.in, cols: d.cols, limit: d.opts.BatchRows}
	var rows, inserted int64
	err = pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		// Durability comes from the final, synchronous commit: a crash can
		// only lose whole batches together with their state rows.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		if err := d.t.beginBypass(ctx, tx, d.mode); err != nil {
			return err
		}
		into := d.t.ident()
		if d.opts.IntoExisting {
			if err := d.ensureStaging(ctx, tx); err != nil {
				return err
			}
			into = stagingTable
		}
		tag, err := tx.Conn().PgConn().CopyFrom(ctx, b, `COPY `+into+` (`+quoteNames(d.names)+`) FROM STDIN`)
		if berr := b.close(); berr != nil {
			return berr // the events' failure, not COPY's report of it
		}
		if err != nil {
			return classifyPGErr(fmt.Errorf("copy into %s: %w", d.t.qualified(), err))
		}
		rows = tag.RowsAffected()
		if d.opts.IntoExisting {
			if inserted, err = d.mergeStaging(ctx, tx); err != nil {
				return err
			}
		} else if err := advanceState(ctx, tx, d.t, b.last, rows); err != nil {
			return err
		}
		return d.t.endBypass(ctx, tx, d.mode)
	})
	if err != nil {
		if isInterrupted(err) || ctx.Err() != nil {
			return false, fmt.Errorf("load batch: %w", context.Cause(ctx))
		}
		return false, err
	}
	d.committed(rows, inserted)
	if d.opts.AfterBatch != nil {
		if err := d.opts.AfterBatch(d.res.Batches, d.res.EventsThisRun); err != nil {
			return false, err
		}
	}
	return !b.exhausted, nil
}

// committed counts a committed batch.
func (d *dbRestore) committed(rows, inserted int64) {
	d.res.Batches++
	if d.opts.IntoExisting {
		d.res.EventsThisRun += inserted
		d.res.EventsAlreadyPresent += rows - inserted
	} else {
		d.res.EventsThisRun += rows
	}
	d.opts.Progress.EventsApplied.Add(rows)
}

func quoteNames(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = pgx.Identifier{n}.Sanitize()
	}
	return strings.Join(q, ", ")
}
