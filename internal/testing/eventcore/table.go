package eventcore

import "github.com/tidemark/tidemark/internal/event"

// TableDef returns the event table's definition as capture records it from
// a database the schema is applied to: the one literal of it that tests
// building segments, feeds and catalogs by hand share.
func TableDef() event.Table {
	return event.Table{Schema: "public", Name: Table, Columns: []event.Column{
		{Name: "event_id", Type: "uuid", OID: 2950, NotNull: true, Key: true},
		{Name: "stream_id", Type: "text", OID: 25, NotNull: true},
		{Name: "stream_version", Type: "bigint", OID: 20, NotNull: true},
		{Name: "event_type", Type: "text", OID: 25, NotNull: true},
		{Name: "event_data", Type: "jsonb", OID: 3802, NotNull: true},
		{Name: "metadata", Type: "jsonb", OID: 3802, NotNull: true},
		{Name: "created_at", Type: "timestamp with time zone", OID: 1184, NotNull: true},
	}}
}
