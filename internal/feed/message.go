package feed

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/event"
)

// Header names carried by every event message. Values are plain text.
const (
	HeaderMsgID         = nats.MsgIdHdr // deterministic: <system id>-<commit LSN>-<index>
	HeaderEventID       = "Tidemark-Event-Id"
	HeaderStreamID      = "Tidemark-Stream-Id"
	HeaderStreamVersion = "Tidemark-Stream-Version"
	HeaderEventType     = "Tidemark-Event-Type"
	HeaderTable         = "Tidemark-Table"       // schema.table
	HeaderSchemaID      = "Tidemark-Table-Def"   // event.Table.ID(); definition in the META bucket
	HeaderCommitLSN     = "Tidemark-Commit-Lsn"  // X/X
	HeaderEndLSN        = "Tidemark-End-Lsn"     // X/X
	HeaderPrevLSN       = "Tidemark-Prev-Lsn"    // X/X, the chain link
	HeaderCommitTime    = "Tidemark-Commit-Time" // RFC 3339, microseconds, UTC
	HeaderXID           = "Tidemark-Xid"         // decimal
	HeaderIndex         = "Tidemark-Index"       // 0-based within the transaction
	HeaderCount         = "Tidemark-Count"       // events in the transaction
	HeaderSnapshot      = "Tidemark-Snapshot"    // "true" on snapshot rows
	HeaderSystemID      = "Tidemark-System-Id"   // source system identifier
	HeaderKind          = "Tidemark-Kind"        // "event", "heartbeat" or "tamper"
	TimeLayout          = "2006-01-02T15:04:05.000000Z07:00"
	kindEvent           = "event"
	kindHeartbeat       = "heartbeat"
	kindTamper          = "tamper"
	jsonOID, jsonbOID   = 114, 3802
	int2OID, int4OID    = 21, 23
	int8OID             = 20
)

// ErrNotEvent is returned by DecodeEvent for a message that is not an event.
var ErrNotEvent = errors.New("feed: not an event message")

// MsgID returns the deterministic JetStream message id of an event: any
// replay of the same source position yields the same id.
func MsgID(systemID string, e *event.Event) string {
	return systemID + "-" + strconv.FormatUint(uint64(e.CommitLSN), 16) + "-" + strconv.Itoa(e.Index)
}

// EventTable is a table definition with what encoding its events needs
// computed once: building it per event (a JSON marshal and a SHA-256 for
// the ID) was a third of capture's encoding cost.
type EventTable struct {
	Table     *event.Table
	ID        string
	Qualified string
	Layout    event.Layout
}

// NewEventTable precomputes t's ID, name and layout.
func NewEventTable(t *event.Table) *EventTable {
	return &EventTable{Table: t, ID: t.ID(), Qualified: t.QualifiedName(), Layout: event.LayoutOf(*t)}
}

// EncodeEventV1For builds the version 1 message for e, as capture wrote it
// before version 2: sixteen headers. msgSystemID is the system-id part of
// its Nats-Msg-Id; a snapshot row's message also needs HeaderSystemID set
// to the source's system id. Kept so that tests can write the feeds earlier
// versions wrote (an upgrade reads both).
func (s Subjects) EncodeEventV1For(msgSystemID string, et *EventTable, e *event.Event) *nats.Msg {
	t, l := et.Table, et.Layout
	m := &nats.Msg{
		Subject: s.Event(t.Schema, t.Name, string(e.Value(l.EventType)), string(e.Value(l.StreamID))),
		Header:  make(nats.Header, eventHeaders),
	}
	// One backing array for every header value instead of one per Set.
	vals := make([]string, 0, eventHeaders)
	set := func(k, v string) {
		vals = append(vals, v)
		n := len(vals)
		m.Header[k] = vals[n-1 : n : n]
	}
	set(HeaderKind, kindEvent)
	set(HeaderMsgID, MsgID(msgSystemID, e))
	set(HeaderSystemID, msgSystemID)
	set(HeaderTable, et.Qualified)
	set(HeaderSchemaID, et.ID)
	if l.EventID >= 0 {
		set(HeaderEventID, string(e.Value(l.EventID)))
	}
	if l.StreamID >= 0 {
		set(HeaderStreamID, string(e.Value(l.StreamID)))
	}
	if l.StreamVersion >= 0 {
		set(HeaderStreamVersion, string(e.Value(l.StreamVersion)))
	}
	if l.EventType >= 0 {
		set(HeaderEventType, string(e.Value(l.EventType)))
	}
	set(HeaderCommitLSN, e.CommitLSN.String())
	set(HeaderEndLSN, e.EndLSN.String())
	set(HeaderPrevLSN, e.PrevLSN.String())
	set(HeaderCommitTime, e.CommitTime.UTC().Format(TimeLayout))
	set(HeaderXID, strconv.FormatUint(uint64(e.XID), 10))
	set(HeaderIndex, strconv.Itoa(e.Index))
	set(HeaderCount, strconv.Itoa(e.Count))
	if e.Snapshot {
		set(HeaderSnapshot, "true")
	}
	m.Data = AppendRow(make([]byte, 0, rowSizeHint(t, e.Values)), t, e.Values)
	return m
}

// eventHeaders is how many headers a version 1 event message carries at most.
const eventHeaders = 17

// AppendRow appends the JSON object form of a row to dst.
func AppendRow(dst []byte, t *event.Table, values [][]byte) []byte {
	dst = append(dst, '{')
	for i, c := range t.Columns {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendKey(dst, c.Name)
		dst = append(dst, ':')
		var v []byte
		if i < len(values) {
			v = values[i]
		}
		switch {
		case v == nil:
			dst = append(dst, "null"...)
		case c.OID == jsonOID || c.OID == jsonbOID:
			dst = append(dst, v...)
		case (c.OID == int2OID || c.OID == int4OID || c.OID == int8OID) && len(v) > 0:
			dst = append(dst, v...)
		default:
			dst = appendJSONString(dst, v)
		}
	}
	return append(dst, '}')
}

// appendKey writes a column name exactly as strconv.AppendQuote does
// (FuzzAppendKey holds it to that). Names are nearly always printable
// ASCII without quotes or backslashes, which need no escaping: copying
// them skips AppendQuote's per-rune work, 5 % of capture's CPU.
func appendKey(dst []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return strconv.AppendQuote(dst, name)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, name...)
	return append(dst, '"')
}

// DecodeEvent rebuilds an event from a message of either feed version,
// given the definition of its table (looked up by the HeaderSchemaID
// header).
func DecodeEvent(m *nats.Msg, t *event.Table) (*event.Event, error) {
	env, err := DecodeEnvelope(m)
	if err != nil {
		return nil, err
	}
	if env.Version == FeedV1 && env.Table != t.QualifiedName() {
		return nil, fmt.Errorf("decode event: table %q does not match definition %q", env.Table, t.QualifiedName())
	}
	e := &event.Event{Table: t.QualifiedName(), CommitLSN: env.CommitLSN, EndLSN: env.EndLSN, PrevLSN: env.PrevLSN,
		CommitTime: env.CommitTime, XID: env.XID, Index: env.Index, Count: env.Count, Snapshot: env.Snapshot}
	if e.Values, err = DecodeRow(t, m.Data); err != nil {
		return nil, err
	}
	return e, nil
}

// IsTamper reports whether m is a tamper report (not part of the archive).
func IsTamper(m *nats.Msg) bool { return m.Header.Get(HeaderKind) == kindTamper }

// IsHeartbeat reports whether m is a heartbeat message.
func IsHeartbeat(m *nats.Msg) bool { return m.Header.Get(HeaderKind) == kindHeartbeat }

type heartbeatBody struct {
	LSN          event.Position `json:"lsn"`
	PrevLSN      event.Position `json:"prev_lsn"`
	Time         string         `json:"time"`
	SnapshotDone bool           `json:"snapshot_done,omitempty"`
	// Resync (issue 18) opens or closes a resync after a failover; absent
	// on every other heartbeat, so older readers ignore it.
	Resync *event.Resync `json:"resync,omitempty"`
}

// EncodeHeartbeat builds the message for a heartbeat. Its message id is
// deterministic from the system id and LSN.
func (s Subjects) EncodeHeartbeat(systemID string, hb event.Heartbeat) *nats.Msg {
	m := nats.NewMsg(s.Heartbeat())
	m.Header.Set(HeaderFeed, feedV2Value)
	m.Header.Set(HeaderKind, kindHeartbeat)
	m.Header.Set(HeaderMsgID, systemID+"-hb-"+strconv.FormatUint(uint64(hb.LSN), 16))
	m.Header.Set(HeaderSystemID, systemID)
	m.Header.Set(HeaderEndLSN, hb.LSN.String())
	m.Header.Set(HeaderPrevLSN, hb.PrevLSN.String())
	m.Header.Set(HeaderCommitTime, hb.Time.UTC().Format(TimeLayout))
	m.Data, _ = json.Marshal(heartbeatBody{LSN: hb.LSN, PrevLSN: hb.PrevLSN, Time: hb.Time.UTC().Format(TimeLayout), SnapshotDone: hb.SnapshotDone, Resync: hb.Resync})
	return m
}

// DecodeHeartbeat parses a heartbeat message.
func DecodeHeartbeat(m *nats.Msg) (event.Heartbeat, error) {
	if !IsHeartbeat(m) {
		return event.Heartbeat{}, errors.New("feed: not a heartbeat message")
	}
	var b heartbeatBody
	if err := json.Unmarshal(m.Data, &b); err != nil {
		return event.Heartbeat{}, fmt.Errorf("decode heartbeat: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, b.Time)
	if err != nil {
		return event.Heartbeat{}, fmt.Errorf("decode heartbeat: time: %w", err)
	}
	if b.Resync != nil {
		if err := checkResync(b.Resync, b.LSN); err != nil {
			return event.Heartbeat{}, fmt.Errorf("decode heartbeat: %w", err)
		}
	}
	return event.Heartbeat{LSN: b.LSN, PrevLSN: b.PrevLSN, Time: t.UTC(), SnapshotDone: b.SnapshotDone, Resync: b.Resync}, nil
}

// Tamper describes an UPDATE, DELETE or TRUNCATE seen on a captured table.
type Tamper struct {
	Op         string          `json:"op"` // "update", "delete" or "truncate"
	Table      string          `json:"table"`
	XID        uint32          `json:"xid"`
	CommitLSN  event.Position  `json:"commit_lsn"`
	CommitTime string          `json:"commit_time"`
	Old        json.RawMessage `json:"old,omitempty"` // row identity or old row, as known
	New        json.RawMessage `json:"new,omitempty"`
}

// EncodeTamper builds the message for a tamper report.
func (s Subjects) EncodeTamper(systemID, schema, table string, tp Tamper) *nats.Msg {
	m := nats.NewMsg(s.Tamper(schema, table, tp.Op))
	m.Header.Set(HeaderFeed, feedV2Value)
	m.Header.Set(HeaderKind, kindTamper)
	m.Header.Set(HeaderSystemID, systemID)
	m.Header.Set(HeaderTable, tp.Table)
	m.Header.Set(HeaderCommitLSN, tp.CommitLSN.String())
	m.Data, _ = json.Marshal(tp)
	return m
}

func appendJSONString(dst, v []byte) []byte {
	simple := true
	for _, c := range v {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			simple = false
			break
		}
	}
	if simple {
		dst = append(dst, '"')
		dst = append(dst, v...)
		return append(dst, '"')
	}
	b, _ := json.Marshal(string(v))
	return append(dst, b...)
}
