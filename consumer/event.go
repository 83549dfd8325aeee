package consumer

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// Event is one inserted row of a captured table, as the source committed it.
type Event struct {
	// Position is the event's place in the history; save it to resume after it.
	Position Position
	// CommitTime is the source's commit timestamp (UTC, microseconds).
	CommitTime time.Time
	// XID is the source transaction id.
	XID uint32
	// Table is the qualified source table, "public.eventcore_events".
	Table string
	// EventID, StreamID, EventType and StreamVersion are EventCore's
	// columns, empty (0) when the table lacks them.
	EventID, StreamID, EventType string
	StreamVersion                int64
	// Row is the row as a JSON object, one key per column, in the feed's
	// encoding (docs/feed.md, "Body").
	Row json.RawMessage
	// Snapshot marks rows capture read in its initial snapshot.
	Snapshot bool
	// Live is true for an event read from the live feed, false for one
	// read from the archive.
	Live bool

	columns []event.Column
	values  [][]byte
}

// Value returns a column's value in PostgreSQL's text form; ok is false
// for a column the table lacks or an SQL NULL.
func (e *Event) Value(column string) (value string, ok bool) {
	for i, c := range e.columns {
		if c.Name == column {
			if i >= len(e.values) || e.values[i] == nil {
				return "", false
			}
			return string(e.values[i]), true
		}
	}
	return "", false
}

// Columns returns the table's column names in the table's order.
func (e *Event) Columns() []string {
	out := make([]string, len(e.columns))
	for i, c := range e.columns {
		out[i] = c.Name
	}
	return out
}

// Transaction is the selected events of one source transaction, in order.
type Transaction struct {
	// End is the transaction's chain position.
	End LSN
	// CommitTime and XID are the source transaction's.
	CommitTime time.Time
	XID        uint32
	// Events are the transaction's events the cursor selects (at least one).
	Events []*Event
}

// Position is the position of the transaction's last selected event.
func (t *Transaction) Position() Position { return t.Events[len(t.Events)-1].Position }

// Filter selects events. The zero Filter selects every event. StreamIDs
// and StreamPrefixes together name the selected streams (an event matches
// if either does); EventTypes, when set, further restricts to those types.
// Filters are applied by the client: the cursor reads every item of the
// feed because the chain that proves nothing is missing runs through all
// of them (docs/consumers.md, "Filters").
type Filter struct {
	StreamIDs      []string
	StreamPrefixes []string
	EventTypes     []string
}

func (f Filter) empty() bool {
	return len(f.StreamIDs) == 0 && len(f.StreamPrefixes) == 0 && len(f.EventTypes) == 0
}

// match reports whether an event with this stream id and type is selected.
func (f Filter) match(streamID, eventType string) bool {
	if len(f.StreamIDs) > 0 || len(f.StreamPrefixes) > 0 {
		ok := false
		for _, s := range f.StreamIDs {
			if s == streamID {
				ok = true
				break
			}
		}
		for _, p := range f.StreamPrefixes {
			if ok {
				break
			}
			ok = strings.HasPrefix(streamID, p)
		}
		if !ok {
			return false
		}
	}
	if len(f.EventTypes) > 0 {
		for _, t := range f.EventTypes {
			if t == eventType {
				return true
			}
		}
		return false
	}
	return true
}

// newEvent converts an internal event read with table definition t.
func newEvent(t *event.Table, l event.Layout, e *event.Event, archive string, live bool) *Event {
	out := &Event{
		Position:   Position{Archive: archive, End: LSN(e.EndLSN), Index: e.Index},
		CommitTime: e.CommitTime.UTC(), XID: e.XID, Table: t.QualifiedName(),
		EventID: string(e.Value(l.EventID)), StreamID: string(e.Value(l.StreamID)), EventType: string(e.Value(l.EventType)),
		Row:      feed.AppendRow(nil, t, e.Values),
		Snapshot: e.Snapshot, Live: live, columns: t.Columns, values: e.Values,
	}
	if v := e.Value(l.StreamVersion); v != nil {
		out.StreamVersion, _ = strconv.ParseInt(string(v), 10, 64)
	}
	return out
}
