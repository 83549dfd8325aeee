package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Table describes a captured table as the source defined it, so that an
// archive alone can recreate it (restorer --create-table).
type Table struct {
	// Schema is the Postgres schema, e.g. "public".
	Schema string `json:"schema"`
	// Name is the table name, e.g. "eventcore_events".
	Name string `json:"name"`
	// Columns are in the source's attribute order; Event.Values follow it.
	Columns []Column `json:"columns"`
}

// Column is one column of a captured table.
type Column struct {
	// Name is the column name.
	Name string `json:"name"`
	// Type is the SQL type as format_type() prints it ("jsonb", "uuid",
	// "timestamp with time zone", "numeric(10,2)").
	Type string `json:"type"`
	// OID is the type's OID on the source.
	OID uint32 `json:"oid"`
	// NotNull is true for NOT NULL columns.
	NotNull bool `json:"not_null,omitempty"`
	// Key is true for primary-key columns.
	Key bool `json:"key,omitempty"`
}

// QualifiedName returns "schema.name".
func (t Table) QualifiedName() string { return t.Schema + "." + t.Name }

// ID returns a short, stable identifier of the table's definition: the same
// definition always yields the same ID, a changed one a different ID.
func (t Table) ID() string {
	b, _ := json.Marshal(t)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// ColumnIndex returns the index of the named column, or -1.
func (t Table) ColumnIndex(name string) int {
	for i, c := range t.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// Event is one inserted row together with its source position. Capture
// produces it, JetStream carries it, segments store it, restore replays it.
type Event struct {
	// Table is the qualified source table, "public.eventcore_events".
	Table string
	// CommitLSN is the LSN of the transaction's commit record. For snapshot
	// rows it is a synthetic, strictly increasing position below the slot's
	// consistent point.
	CommitLSN Position
	// EndLSN is the transaction's position in the chain: confirming the slot
	// at EndLSN means this transaction is never sent again.
	EndLSN Position
	// PrevLSN is the EndLSN of the previous item (transaction or heartbeat)
	// capture emitted, or the position streaming started from. A reader that
	// has every item up to PrevLSN can prove nothing is missing before this one.
	PrevLSN Position
	// CommitTime is the source's commit timestamp, microsecond precision, UTC.
	CommitTime time.Time
	// XID is the source transaction id.
	XID uint32
	// Index is the event's 0-based position within its transaction.
	Index int
	// Count is the number of events in the transaction.
	Count int
	// Snapshot marks rows read by the initial snapshot rather than streamed.
	Snapshot bool
	// Values hold each column's value in Postgres text format, in the
	// table's column order. A nil slice is SQL NULL; an empty non-nil slice
	// is the empty string.
	Values [][]byte
}

// Heartbeat is an item in the chain that carries no events: every
// transaction whose commit record precedes LSN has already been emitted.
type Heartbeat struct {
	// LSN is the heartbeat's position; confirming the slot here is safe once
	// every earlier item is durable.
	LSN Position
	// PrevLSN is the EndLSN of the previous item capture emitted.
	PrevLSN Position
	// Time is the source's clock when the heartbeat was written.
	Time time.Time
	// SnapshotDone marks the heartbeat capture emits at the slot's consistent
	// point once the initial snapshot has been published.
	SnapshotDone bool
	// Resync, when set, opens or closes a resync (see Resync).
	Resync *Resync
}

// Layout locates EventCore's well-known columns in a table, so code that
// needs stream ids or versions does not search by name per event.
type Layout struct {
	EventID, StreamID, StreamVersion, EventType, EventData, Metadata, CreatedAt int
}

// LayoutOf returns the layout of t; missing columns are -1.
func LayoutOf(t Table) Layout {
	return Layout{
		EventID:       t.ColumnIndex("event_id"),
		StreamID:      t.ColumnIndex("stream_id"),
		StreamVersion: t.ColumnIndex("stream_version"),
		EventType:     t.ColumnIndex("event_type"),
		EventData:     t.ColumnIndex("event_data"),
		Metadata:      t.ColumnIndex("metadata"),
		CreatedAt:     t.ColumnIndex("created_at"),
	}
}

// Value returns the text value of column i, or nil when i is -1 or out of range.
func (e *Event) Value(i int) []byte {
	if i < 0 || i >= len(e.Values) {
		return nil
	}
	return e.Values[i]
}

// Equal reports whether two events carry the same position and values.
func (e *Event) Equal(o *Event) bool {
	if e.Table != o.Table || e.CommitLSN != o.CommitLSN || e.EndLSN != o.EndLSN ||
		e.PrevLSN != o.PrevLSN || !e.CommitTime.Equal(o.CommitTime) || e.XID != o.XID ||
		e.Index != o.Index || e.Count != o.Count || e.Snapshot != o.Snapshot ||
		len(e.Values) != len(o.Values) {
		return false
	}
	for i := range e.Values {
		if (e.Values[i] == nil) != (o.Values[i] == nil) || !bytes.Equal(e.Values[i], o.Values[i]) {
			return false
		}
	}
	return true
}

// String identifies the event for logs and errors.
func (e *Event) String() string {
	return fmt.Sprintf("%s@%s#%d/%d", e.Table, e.CommitLSN, e.Index, e.Count)
}
