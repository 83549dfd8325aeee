package cdc

import (
	"context"
	"fmt"
	"strings"
)

// Problem is one failed set-up check, with what to change.
type Problem struct {
	// Check names the check ("wal_level", "replication_role", "table", …).
	Check string `json:"check"`
	// Message says what is wrong.
	Message string `json:"message"`
	// Fix says exactly what to change.
	Fix string `json:"fix"`
}

// String renders the problem and its fix on one line.
func (p Problem) String() string { return p.Message + ": " + p.Fix }

// CheckError lists every set-up check the source failed.
type CheckError struct {
	Problems []Problem
}

// Error lists every problem with its fix.
func (e *CheckError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return ErrSourceNotReady.Error() + ": " + strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, ErrSourceNotReady) hold.
func (e *CheckError) Unwrap() error { return ErrSourceNotReady }

// checkSource runs the source checks. needSlot says a slot will be created
// (so a free slot is required).
func checkSource(ctx context.Context, q querier, cfg Config, needSlot bool) ([]Problem, error) {
	var ps []Problem
	add := func(check, msg, fix string) { ps = append(ps, Problem{Check: check, Message: msg, Fix: fix}) }

	var walLevel, role string
	var super, repl bool
	var maxSlots, usedSlots, maxSenders, usedSenders int
	err := q.QueryRow(ctx, `
SELECT current_setting('wal_level'), current_user, r.rolsuper, r.rolreplication,
       current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_replication_slots)::int,
       current_setting('max_wal_senders')::int,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')::int
  FROM pg_roles r WHERE r.rolname = current_user`).Scan(&walLevel, &role, &super, &repl, &maxSlots, &usedSlots, &maxSenders, &usedSenders)
	if err != nil {
		return nil, fmt.Errorf("check source settings: %w", err)
	}
	if walLevel != "logical" {
		add("wal_level", fmt.Sprintf("wal_level is %s, capture needs logical", walLevel),
			"set wal_level = logical in postgresql.conf and restart")
	}
	if !super && !repl {
		add("replication_role", fmt.Sprintf("role %s has neither REPLICATION nor SUPERUSER", role),
			fmt.Sprintf("run ALTER ROLE %s REPLICATION (as a superuser)", quoteIdent(role)))
	}
	if needSlot && usedSlots >= maxSlots {
		add("replication_slots", fmt.Sprintf("all %d replication slots are in use", maxSlots),
			"drop an unused slot with SELECT pg_drop_replication_slot('name'), or raise max_replication_slots in postgresql.conf and restart")
	}
	if usedSenders >= maxSenders {
		add("wal_senders", fmt.Sprintf("all %d WAL senders are in use", maxSenders),
			"stop an unused replication client, or raise max_wal_senders in postgresql.conf and restart")
	}
	for _, qt := range cfg.Tables {
		schema, name, _ := splitTable(qt)
		ps = append(ps, checkTable(ctx, q, role, schema, name)...)
	}
	return ps, nil
}

func checkTable(ctx context.Context, q querier, role, schema, name string) []Problem {
	qn := quoteIdent(schema) + "." + quoteIdent(name)
	var exists, canSelect, hasPK bool
	err := q.QueryRow(ctx, `
SELECT c.oid IS NOT NULL,
       COALESCE(has_table_privilege(c.oid, 'SELECT'), false),
       COALESCE(EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), false)
  FROM (SELECT (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')) AS oid) c`, schema, name).Scan(&exists, &canSelect, &hasPK)
	if err != nil {
		return []Problem{{Check: "table", Message: fmt.Sprintf("table %s.%s could not be checked: %v", schema, name, err),
			Fix: "check that the role may read the system catalogs"}}
	}
	if !exists {
		return []Problem{{Check: "table", Message: fmt.Sprintf("table %s.%s does not exist", schema, name),
			Fix: "create it (for EventCore: apply its schema) or correct --tables"}}
	}
	var ps []Problem
	if !canSelect {
		ps = append(ps, Problem{Check: "table_privilege", Message: fmt.Sprintf("role %s may not SELECT from %s.%s", role, schema, name),
			Fix: fmt.Sprintf("run GRANT SELECT ON %s TO %s", qn, quoteIdent(role))})
	}
	if !hasPK {
		ps = append(ps, Problem{Check: "primary_key", Message: fmt.Sprintf("table %s.%s has no primary key", schema, name),
			Fix: fmt.Sprintf("add one: ALTER TABLE %s ADD PRIMARY KEY (…)", qn)})
	}
	return ps
}

// quoteIdent quotes a SQL identifier when it needs it.
func quoteIdent(s string) string {
	plain := s != ""
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
