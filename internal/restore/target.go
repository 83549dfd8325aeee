package restore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidemark/tidemark/internal/event"
)

// targetTable is what the restorer learned about the table it writes to.
type targetTable struct {
	schema, name string
	exists       bool
	oid          uint32
	columns      map[string]bool // column name → generated (cannot be written)
	triggers     []trigger       // user (non-internal) triggers
	owner        bool            // current role owns the table (or is a member of the owner)
	superuser    bool
}

// trigger is one user trigger and its enabled state (pg_trigger.tgenabled:
// O origin, A always, R replica, D disabled).
type trigger struct {
	name    string
	enabled string
}

// ident returns the quoted qualified name.
func (t *targetTable) ident() string { return pgx.Identifier{t.schema, t.name}.Sanitize() }

// qualified returns "schema.name" unquoted, for messages.
func (t *targetTable) qualified() string { return t.schema + "." + t.name }

// stateIdent returns the quoted name of the restore-state table, kept in the
// target table's schema.
func (t *targetTable) stateIdent() string {
	return pgx.Identifier{t.schema, StateTable}.Sanitize()
}

// splitTableName parses "schema.name" or "name" (schema defaults to def).
func splitTableName(s, def string) (schema, name string) {
	if a, b, ok := strings.Cut(s, "."); ok {
		return a, b
	}
	return def, s
}

// inspectTarget reads the target table's definition, triggers and the
// current role's rights, without writing anything.
func inspectTarget(ctx context.Context, conn *pgx.Conn, schema, name string) (*targetTable, error) {
	t := &targetTable{schema: schema, name: name, columns: map[string]bool{}}
	if err := conn.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&t.superuser); err != nil {
		return nil, fmt.Errorf("read role: %w", err)
	}
	err := conn.QueryRow(ctx, `
		SELECT c.oid, pg_has_role(c.relowner, 'USAGE')
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, schema, name).Scan(&t.oid, &t.owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspect table %s: %w", t.qualified(), err)
	}
	t.exists = true
	rows, err := conn.Query(ctx, `
		SELECT attname, attgenerated <> '' FROM pg_attribute
		 WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, t.oid)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t.qualified(), err)
	}
	for rows.Next() {
		var col string
		var gen bool
		if err := rows.Scan(&col, &gen); err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", t.qualified(), err)
		}
		t.columns[col] = gen
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t.qualified(), err)
	}
	if t.triggers, err = readTriggers(ctx, conn, t.oid); err != nil {
		return nil, fmt.Errorf("read triggers of %s: %w", t.qualified(), err)
	}
	return t, nil
}

// querier is what readTriggers needs: *pgx.Conn or pgx.Tx.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func readTriggers(ctx context.Context, q querier, oid uint32) ([]trigger, error) {
	rows, err := q.Query(ctx, `SELECT tgname, tgenabled::text FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal ORDER BY tgname`, oid)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (trigger, error) {
		var tr trigger
		err := r.Scan(&tr.name, &tr.enabled)
		return tr, err
	})
}

// copyColumns maps the target's writable columns to archive column indexes.
// Every archived column must exist in the target; target columns the
// archive lacks take their defaults.
func (t *targetTable) copyColumns(def event.Table) (names []string, idx []int, err error) {
	for i, c := range def.Columns {
		gen, ok := t.columns[c.Name]
		if !ok {
			return nil, nil, failf(ErrTarget, "restore into a table created by the same migrations, or use --create-table on an empty database",
				"target table %s has no column %q, which the archive holds", t.qualified(), c.Name)
		}
		if gen {
			continue // generated columns recompute themselves
		}
		names = append(names, c.Name)
		idx = append(idx, i)
	}
	return names, idx, nil
}

// isEmpty reports whether the table holds no row.
func (t *targetTable) isEmpty(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var any bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+t.ident()+`)`).Scan(&any); err != nil {
		return false, fmt.Errorf("check %s is empty: %w", t.qualified(), err)
	}
	return !any, nil
}

// createTableSQL returns CREATE TABLE for the archived definition: the
// columns with their types and NOT NULL, and the primary key.
func createTableSQL(schema, name string, def event.Table) string {
	var b strings.Builder
	b.WriteString("CREATE TABLE ")
	b.WriteString(pgx.Identifier{schema, name}.Sanitize())
	b.WriteString(" (\n")
	var keys []string
	for i, c := range def.Columns {
		if i > 0 {
			b.WriteString(",\n")
		}
		b.WriteString("  ")
		b.WriteString(pgx.Identifier{c.Name}.Sanitize())
		b.WriteString(" ")
		b.WriteString(c.Type)
		if c.NotNull {
			b.WriteString(" NOT NULL")
		}
		if c.Key {
			keys = append(keys, pgx.Identifier{c.Name}.Sanitize())
		}
	}
	if len(keys) > 0 {
		b.WriteString(",\n  PRIMARY KEY (" + strings.Join(keys, ", ") + ")")
	}
	b.WriteString("\n)")
	return b.String()
}

// validType accepts the type names format_type() prints, refusing anything
// that could smuggle SQL into CREATE TABLE (the definition comes from the bucket).
func validType(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(` _()[],."`, r):
		default:
			return false
		}
	}
	return strings.Count(s, `"`)%2 == 0 && !strings.Contains(s, "--")
}

// bypassMode is how a batch keeps triggers from touching restored rows.
type bypassMode int

const (
	bypassNone    bypassMode = iota // no enabled user triggers
	bypassReplica                   // SET LOCAL session_replication_role = replica (superuser)
	bypassDisable                   // ALTER TABLE … DISABLE TRIGGER, re-enabled before commit (owner)
)

// chooseBypass picks how to keep the table's triggers from firing, or
// explains which privilege is missing.
func (t *targetTable) chooseBypass() (bypassMode, error) {
	var active, always []string
	for _, tr := range t.triggers {
		switch tr.enabled {
		case "D":
		case "A", "R":
			always = append(always, tr.name)
			active = append(active, tr.name)
		default:
			active = append(active, tr.name)
		}
	}
	switch {
	case len(active) == 0:
		return bypassNone, nil
	case t.superuser && len(always) == 0:
		return bypassReplica, nil
	case t.owner || t.superuser:
		return bypassDisable, nil
	}
	return 0, failf(ErrPrivilege,
		"connect as a superuser, or as the table's owner (who has ALTER TABLE … DISABLE TRIGGER rights)",
		"table %s has triggers (%s) that would rewrite or refuse restored rows; bypassing them needs superuser, or ALTER TABLE … DISABLE TRIGGER rights (table owner), which the current role lacks",
		t.qualified(), strings.Join(active, ", "))
}

// execer runs SQL; pgx.Tx satisfies it.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// beginBypass makes the current transaction's writes skip the triggers.
func (t *targetTable) beginBypass(ctx context.Context, tx execer, mode bypassMode) error {
	switch mode {
	case bypassReplica:
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return privilegeErr(t, err)
		}
	case bypassDisable:
		for _, tr := range t.triggers {
			if tr.enabled == "D" {
				continue
			}
			if _, err := tx.Exec(ctx, `ALTER TABLE `+t.ident()+` DISABLE TRIGGER `+pgx.Identifier{tr.name}.Sanitize()); err != nil {
				return privilegeErr(t, err)
			}
		}
	}
	return nil
}

// endBypass re-enables, in the same transaction, the triggers beginBypass
// disabled, each in its original mode.
func (t *targetTable) endBypass(ctx context.Context, tx execer, mode bypassMode) error {
	if mode != bypassDisable {
		return nil
	}
	for _, tr := range t.triggers {
		var how string
		switch tr.enabled {
		case "D":
			continue
		case "A":
			how = "ENABLE ALWAYS TRIGGER "
		case "R":
			how = "ENABLE REPLICA TRIGGER "
		default:
			how = "ENABLE TRIGGER "
		}
		if _, err := tx.Exec(ctx, `ALTER TABLE `+t.ident()+` `+how+pgx.Identifier{tr.name}.Sanitize()); err != nil {
			return fmt.Errorf("re-enable trigger %s: %w", tr.name, err)
		}
	}
	return nil
}

func privilegeErr(t *targetTable, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42501" || pe.Code == "42809") {
		return withHint(ErrPrivilege, fmt.Errorf("bypass triggers on %s: %w", t.qualified(), err),
			"connect as a superuser, or as the table's owner (who has ALTER TABLE … DISABLE TRIGGER rights)")
	}
	return fmt.Errorf("bypass triggers on %s: %w", t.qualified(), err)
}
