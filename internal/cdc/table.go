package cdc

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// querier is what table lookups need from a pool or a connection.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// tableColumnsSQL lists a table's published columns (pgoutput skips
// dropped and generated columns) in attribute order.
const tableColumnsSQL = `
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid::int8, a.attnotnull,
       COALESCE(a.attnum = ANY (i.indkey), false)
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
 WHERE n.nspname = $1 AND c.relname = $2
   AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
 ORDER BY a.attnum`

// loadTable reads a table's definition from the catalog. It returns an
// error naming the table when it does not exist.
func loadTable(ctx context.Context, q querier, schema, name string) (event.Table, error) {
	rows, err := q.Query(ctx, tableColumnsSQL, schema, name)
	if err != nil {
		return event.Table{}, fmt.Errorf("read definition of %s.%s: %w", schema, name, err)
	}
	t := event.Table{Schema: schema, Name: name}
	for rows.Next() {
		var c event.Column
		var oid int64
		if err := rows.Scan(&c.Name, &c.Type, &oid, &c.NotNull, &c.Key); err != nil {
			rows.Close()
			return event.Table{}, fmt.Errorf("read definition of %s.%s: %w", schema, name, err)
		}
		c.OID = uint32(oid)
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return event.Table{}, fmt.Errorf("read definition of %s.%s: %w", schema, name, err)
	}
	if len(t.Columns) == 0 {
		return event.Table{}, fmt.Errorf("read definition of %s.%s: table not found", schema, name)
	}
	return t, nil
}

// tableForRelation returns the definition matching a Relation message: the
// catalog's when its columns agree with the message, otherwise one built
// from the message (the table changed after the decoded change).
func tableForRelation(ctx context.Context, q querier, r *Relation) (event.Table, error) {
	cat, err := loadTable(ctx, q, r.Namespace, r.Name)
	if err == nil && columnsMatch(cat, r) {
		return cat, nil
	}
	t := event.Table{Schema: r.Namespace, Name: r.Name}
	for _, rc := range r.Columns {
		c := event.Column{Name: rc.Name, OID: rc.TypeOID}
		if err := q.QueryRow(ctx, "SELECT format_type($1::int8::oid, $2)", int64(rc.TypeOID), rc.TypMod).Scan(&c.Type); err != nil {
			return event.Table{}, fmt.Errorf("format type of %s.%s.%s: %w", r.Namespace, r.Name, rc.Name, err)
		}
		if i := cat.ColumnIndex(rc.Name); i >= 0 {
			c.NotNull, c.Key = cat.Columns[i].NotNull, cat.Columns[i].Key
		}
		t.Columns = append(t.Columns, c)
	}
	return t, nil
}

func columnsMatch(t event.Table, r *Relation) bool {
	if len(t.Columns) != len(r.Columns) {
		return false
	}
	for i, c := range t.Columns {
		if c.Name != r.Columns[i].Name || c.OID != r.Columns[i].TypeOID {
			return false
		}
	}
	return true
}

// relation is a Relation message resolved to its table definition.
type relation struct {
	msg       *Relation
	table     event.Table
	layout    event.Layout
	qualified string
	keyCols   []int
	// enc is the table with its ID and layout precomputed for encoding.
	enc *feed.EventTable
}

func newRelation(m *Relation, t event.Table) *relation {
	r := &relation{msg: m, table: t, layout: event.LayoutOf(t), qualified: t.QualifiedName()}
	r.enc = feed.NewEventTable(&r.table)
	for i, c := range t.Columns {
		if c.Key {
			r.keyCols = append(r.keyCols, i)
		}
	}
	return r
}

// tableRegistry publishes table definitions to META once per definition.
type tableRegistry struct {
	kv   jetstream.KeyValue
	done map[string]bool
}

// ensure writes et's definition under feed.TableKey(et.ID) unless
// already written by this process. It runs for every transaction, so it
// takes the precomputed ID (computing it is a JSON encoding and a SHA-256).
func (r *tableRegistry) ensure(ctx context.Context, et *feed.EventTable) error {
	id, t := et.ID, et.Table
	if r.done[id] {
		return nil
	}
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode table %s: %w", t.QualifiedName(), err)
	}
	if _, err := r.kv.Put(ctx, feed.TableKey(id), b); err != nil {
		return fmt.Errorf("put table definition %s (%s) in META: %w", t.QualifiedName(), id, err)
	}
	if r.done == nil {
		r.done = map[string]bool{}
	}
	r.done[id] = true
	return nil
}
