package feed

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/event"
)

// Feed format versions. A message without HeaderFeed is version 1.
const (
	FeedV1 = 1
	FeedV2 = 2
	// FeedCurrent is the version capture writes.
	FeedCurrent = FeedV2
)

// Headers of the version 2 event message (docs/feed.md, "Event messages").
// Version 1 carried sixteen headers per event; version 2 carries five: what
// the body already says (event id, stream id, version, type) is no longer
// repeated, and the chain fields travel in one header whose prefix is
// shared by every event of a transaction.
const (
	HeaderFeed = "Tidemark-Feed" // "2"; absent on version 1 messages
	HeaderTxn  = "Tidemark-Txn"  // "<system id> <end> <prev> <commit lsn> <commit time> <xid> <index>/<count>[ snapshot]"
)

const (
	feedV2Value   = "2"
	snapshotToken = "snapshot"
)

// Envelope is what an event message says besides the row: where it sits in
// the chain and which table definition decodes its body.
type Envelope struct {
	Version    int
	SystemID   string
	Table      string // schema.table; version 1 only (version 2 names it by TableDef)
	TableDef   string
	CommitLSN  event.Position
	EndLSN     event.Position
	PrevLSN    event.Position
	CommitTime time.Time
	XID        uint32
	Index      int
	Count      int
	Snapshot   bool
}

// Version returns the feed format a message was written in.
func Version(m *nats.Msg) int {
	switch m.Header.Get(HeaderFeed) {
	case "":
		return FeedV1
	case feedV2Value:
		return FeedV2
	}
	return 0
}

// SystemID returns the source system identifier a message names.
func SystemID(m *nats.Msg) string {
	if v := m.Header.Get(HeaderSystemID); v != "" {
		return v
	}
	if tx := m.Header.Get(HeaderTxn); tx != "" {
		id, _, _ := strings.Cut(tx, " ")
		return id
	}
	return ""
}

// TxnPrefix is the part of a version 2 Tidemark-Txn header every event of
// one transaction shares; capture builds it once per transaction.
type TxnPrefix string

// NewTxnPrefix returns the shared header prefix of e's transaction.
func NewTxnPrefix(systemID string, e *event.Event) TxnPrefix {
	b := make([]byte, 0, 96)
	b = append(b, systemID...)
	b = append(b, ' ')
	b = append(b, e.EndLSN.String()...)
	b = append(b, ' ')
	b = append(b, e.PrevLSN.String()...)
	b = append(b, ' ')
	b = append(b, e.CommitLSN.String()...)
	b = append(b, ' ')
	b = e.CommitTime.UTC().AppendFormat(b, TimeLayout)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(e.XID), 10)
	b = append(b, ' ')
	return TxnPrefix(b)
}

// txnHeader completes p with the event's index, count and snapshot flag.
func (p TxnPrefix) txnHeader(e *event.Event) string {
	b := make([]byte, 0, len(p)+24)
	b = append(b, p...)
	b = strconv.AppendInt(b, int64(e.Index), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(e.Count), 10)
	if e.Snapshot {
		b = append(b, ' ')
		b = append(b, snapshotToken...)
	}
	return string(b)
}

// v2Headers is how many headers a version 2 event message carries.
const v2Headers = 5

// EncodeEvent builds the message for e (a source whose snapshot rows are
// not involved; capture uses EncodeTxnEvent with a precomputed table).
func (s Subjects) EncodeEvent(systemID string, t *event.Table, l event.Layout, e *event.Event) *nats.Msg {
	return s.EncodeEventFor(systemID, systemID, &EventTable{Table: t, ID: t.ID(), Qualified: t.QualifiedName(), Layout: l}, e)
}

// EncodeEventFor builds the version 2 message for e. systemID is the
// source's; msgSystemID is the system-id part of its Nats-Msg-Id (it
// differs for rows of an initial snapshot, docs/feed.md "Snapshot").
func (s Subjects) EncodeEventFor(systemID, msgSystemID string, et *EventTable, e *event.Event) *nats.Msg {
	return s.EncodeTxnEvent(NewTxnPrefix(systemID, e), msgSystemID, et, e)
}

// EncodeTxnEvent is EncodeEventFor with the transaction's header prefix
// built once for all its events.
func (s Subjects) EncodeTxnEvent(p TxnPrefix, msgSystemID string, et *EventTable, e *event.Event) *nats.Msg {
	t, l := et.Table, et.Layout
	m := &nats.Msg{
		Subject: s.Event(t.Schema, t.Name, string(e.Value(l.EventType)), string(e.Value(l.StreamID))),
		Header:  make(nats.Header, v2Headers),
	}
	vals := [v2Headers]string{MsgID(msgSystemID, e), feedV2Value, kindEvent, et.ID, p.txnHeader(e)}
	m.Header[HeaderMsgID] = vals[0:1:1]
	m.Header[HeaderFeed] = vals[1:2:2]
	m.Header[HeaderKind] = vals[2:3:3]
	m.Header[HeaderSchemaID] = vals[3:4:4]
	m.Header[HeaderTxn] = vals[4:5:5]
	m.Data = AppendRow(make([]byte, 0, rowSizeHint(t, e.Values)), t, e.Values)
	return m
}

func rowSizeHint(t *event.Table, values [][]byte) int {
	size := 2
	for i, c := range t.Columns {
		size += len(c.Name) + 4
		if i < len(values) {
			size += len(values[i]) + 2
		}
	}
	return size + size/8
}

// DecodeEnvelope reads an event message's chain fields without its body,
// in either feed version. It returns ErrNotEvent for other messages.
func DecodeEnvelope(m *nats.Msg) (Envelope, error) {
	h := m.Header
	if h.Get(HeaderKind) != kindEvent {
		return Envelope{}, ErrNotEvent
	}
	var (
		env Envelope
		err error
	)
	switch v := Version(m); v {
	case FeedV1:
		env, err = decodeEnvelopeV1(h)
	case FeedV2:
		env, err = decodeEnvelopeV2(h)
	default:
		return Envelope{}, fmt.Errorf("decode event: feed version %q is newer than this reader; upgrade it", h.Get(HeaderFeed))
	}
	if err != nil {
		return Envelope{}, err
	}
	if env.Count < 1 || env.Index < 0 || env.Index >= env.Count {
		return Envelope{}, fmt.Errorf("decode event: index %d of %d out of range", env.Index, env.Count)
	}
	env.CommitTime = env.CommitTime.UTC()
	return env, nil
}

func decodeEnvelopeV2(h nats.Header) (Envelope, error) {
	env := Envelope{Version: FeedV2, TableDef: h.Get(HeaderSchemaID)}
	tx := h.Get(HeaderTxn)
	// Seven fields, and an optional eighth, split without allocating: this
	// runs for every event the archiver reads.
	var f [8]string
	n, rest := 0, tx
	for n < len(f) {
		var ok bool
		f[n], rest, ok = strings.Cut(rest, " ")
		n++
		if !ok {
			break
		}
	}
	bad := func(err error) (Envelope, error) {
		return Envelope{}, fmt.Errorf("decode event: header %s %q: %w", HeaderTxn, tx, err)
	}
	switch {
	case n == 8 && rest == "" && f[7] == snapshotToken:
		env.Snapshot = true
	case n != 7:
		return bad(errors.New("want 7 fields"))
	}
	if env.SystemID = f[0]; env.SystemID == "" {
		return bad(errors.New("empty system id"))
	}
	var err error
	if env.EndLSN, err = event.ParsePosition(f[1]); err != nil {
		return bad(err)
	}
	if env.PrevLSN, err = event.ParsePosition(f[2]); err != nil {
		return bad(err)
	}
	if env.CommitLSN, err = event.ParsePosition(f[3]); err != nil {
		return bad(err)
	}
	if env.CommitTime, err = time.Parse(time.RFC3339Nano, f[4]); err != nil {
		return bad(err)
	}
	xid, err := strconv.ParseUint(f[5], 10, 32)
	if err != nil {
		return bad(err)
	}
	env.XID = uint32(xid)
	idx, cnt, ok := strings.Cut(f[6], "/")
	if !ok {
		return bad(errors.New("want <index>/<count>"))
	}
	if env.Index, err = strconv.Atoi(idx); err != nil {
		return bad(err)
	}
	if env.Count, err = strconv.Atoi(cnt); err != nil {
		return bad(err)
	}
	return env, nil
}

func decodeEnvelopeV1(h nats.Header) (Envelope, error) {
	env := Envelope{Version: FeedV1, SystemID: h.Get(HeaderSystemID), Table: h.Get(HeaderTable),
		TableDef: h.Get(HeaderSchemaID), Snapshot: h.Get(HeaderSnapshot) == "true"}
	var err error
	parse := func(name string, f func(string) error) {
		if err != nil {
			return
		}
		if perr := f(h.Get(name)); perr != nil {
			err = fmt.Errorf("decode event: header %s: %w", name, perr)
		}
	}
	parse(HeaderCommitLSN, func(s string) (e2 error) { env.CommitLSN, e2 = event.ParsePosition(s); return })
	parse(HeaderEndLSN, func(s string) (e2 error) { env.EndLSN, e2 = event.ParsePosition(s); return })
	parse(HeaderPrevLSN, func(s string) (e2 error) { env.PrevLSN, e2 = event.ParsePosition(s); return })
	parse(HeaderCommitTime, func(s string) (e2 error) { env.CommitTime, e2 = time.Parse(time.RFC3339Nano, s); return })
	parse(HeaderXID, func(s string) error {
		v, e2 := strconv.ParseUint(s, 10, 32)
		env.XID = uint32(v)
		return e2
	})
	parse(HeaderIndex, func(s string) (e2 error) { env.Index, e2 = strconv.Atoi(s); return })
	parse(HeaderCount, func(s string) (e2 error) { env.Count, e2 = strconv.Atoi(s); return })
	return env, err
}
