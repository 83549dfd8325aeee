package restore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// stagingTable is the session-temporary table --into-existing copies into
// before inserting only the missing rows.
const stagingTable = "tidemark_restore_staging"

// ensureStaging creates the staging table, shaped like the copied columns
// of the target and emptied at every commit.
func (d *dbRestore) ensureStaging(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS `+stagingTable+` ON COMMIT DELETE ROWS AS SELECT `+
		quoteNames(d.names)+` FROM `+d.t.ident()+` WITH NO DATA`)
	if err != nil {
		return classifyPGErr(fmt.Errorf("create staging table: %w", err))
	}
	return nil
}

// mergeStaging inserts the staged rows whose primary key is not in the
// target yet and returns how many it inserted.
func (d *dbRestore) mergeStaging(ctx context.Context, tx pgx.Tx) (int64, error) {
	var cond []string
	for _, k := range d.keyColumns() {
		q := pgx.Identifier{k}.Sanitize()
		cond = append(cond, "x."+q+" = s."+q)
	}
	cols := quoteNames(d.names)
	sel := make([]string, len(d.names))
	for i, n := range d.names {
		sel[i] = "s." + pgx.Identifier{n}.Sanitize()
	}
	tag, err := tx.Exec(ctx, `INSERT INTO `+d.t.ident()+` (`+cols+`) SELECT `+strings.Join(sel, ", ")+
		` FROM `+stagingTable+` s WHERE NOT EXISTS (SELECT 1 FROM `+d.t.ident()+` x WHERE `+strings.Join(cond, " AND ")+`)`)
	if err != nil {
		return 0, classifyPGErr(fmt.Errorf("insert missing events into %s: %w", d.t.qualified(), err))
	}
	return tag.RowsAffected(), nil
}

// finish marks the restore finished (a synchronous commit, which makes
// every earlier batch durable too), brings sequences past the restored
// values, refreshes statistics and verifies.
func (d *dbRestore) finish(ctx context.Context) (*Result, error) {
	t, res := d.t, d.res
	if !d.opts.IntoExisting {
		if err := pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error { return finishState(ctx, tx, t) }); err != nil {
			return nil, classifyPGErr(err)
		}
		res.Events = d.baseRows + res.EventsThisRun
	} else {
		res.Events = res.EventsThisRun + res.EventsAlreadyPresent
	}
	if err := d.fixSequences(ctx); err != nil {
		return nil, err
	}
	if _, err := d.conn.Exec(ctx, `ANALYZE `+t.ident()); err != nil {
		return nil, classifyPGErr(fmt.Errorf("analyze %s: %w", t.qualified(), err))
	}
	if d.opts.NoVerify {
		res.Verification = &Verification{Status: VerifySkipped}
		return res, nil
	}
	d.opts.Progress.setPhase("verify")
	v, err := d.verify(ctx)
	if err != nil {
		return nil, err
	}
	res.Verification = v
	res.Streams = v.Streams
	if v.Status == VerifyFailed {
		return res, failf(ErrVerify, "inspect the target; `restorer verify --store URL` checks the archive itself",
			"verification of %s failed: %s", t.qualified(), strings.Join(v.Problems, "; "))
	}
	return res, nil
}

// fixSequences moves every sequence owned by a restored column past the
// largest restored value, so the application's next insert does not collide.
func (d *dbRestore) fixSequences(ctx context.Context) error {
	rows, err := d.conn.Query(ctx, `
		SELECT a.attname, pg_get_serial_sequence($1, a.attname)
		  FROM pg_attribute a
		 WHERE a.attrelid = $2 AND a.attnum > 0 AND NOT a.attisdropped
		   AND pg_get_serial_sequence($1, a.attname) IS NOT NULL`, d.t.ident(), d.t.oid)
	if err != nil {
		return fmt.Errorf("find sequences of %s: %w", d.t.qualified(), err)
	}
	type seq struct{ col, name string }
	seqs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (seq, error) {
		var s seq
		err := r.Scan(&s.col, &s.name)
		return s, err
	})
	if err != nil {
		return fmt.Errorf("find sequences of %s: %w", d.t.qualified(), err)
	}
	for _, s := range seqs {
		col := pgx.Identifier{s.col}.Sanitize()
		_, err := d.conn.Exec(ctx, `SELECT setval($1::regclass, m) FROM (SELECT max(`+col+`) AS m FROM `+d.t.ident()+`) x
			WHERE m IS NOT NULL AND m > (SELECT last_value FROM `+s.name+`)`, s.name)
		if err != nil {
			return fmt.Errorf("advance sequence %s: %w", s.name, err)
		}
	}
	return nil
}
