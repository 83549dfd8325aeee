package cdc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/internal/event"
)

// pgoutput protocol version 1 messages, as sent inside XLogData. The parser
// is bounds-checked: a malformed message is an error, never a panic, and
// tuple values alias the message buffer (no per-column copies).

// Message kinds of pgoutput protocol version 1.
const (
	msgBegin    = 'B'
	msgCommit   = 'C'
	msgOrigin   = 'O'
	msgRelation = 'R'
	msgType     = 'Y'
	msgInsert   = 'I'
	msgUpdate   = 'U'
	msgDelete   = 'D'
	msgTruncate = 'T'
	msgMessage  = 'M'
)

// Tuple column kinds.
const (
	colNull      = 'n'
	colUnchanged = 'u'
	colText      = 't'
	colBinary    = 'b'
)

// errShort is returned when a message ends before a field does.
var errShort = errors.New("message truncated")

// pgEpoch is the zero of Postgres timestamps (microseconds since 2000-01-01).
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Begin starts a transaction.
type Begin struct {
	FinalLSN   event.Position // the commit record's LSN
	CommitTime time.Time
	XID        uint32
}

// Commit ends a transaction.
type Commit struct {
	Flags      uint8
	CommitLSN  event.Position
	EndLSN     event.Position // the end of the commit record: the transaction's chain position
	CommitTime time.Time
}

// Origin names the origin of a replicated transaction (ignored).
type Origin struct {
	LSN  event.Position
	Name string
}

// RelationColumn is one column of a Relation message.
type RelationColumn struct {
	Flags   uint8 // 1: part of the replica identity key
	Name    string
	TypeOID uint32
	TypMod  int32
}

// Relation describes a table before its first change in a session.
type Relation struct {
	ID              uint32
	Namespace, Name string
	ReplicaIdentity uint8
	Columns         []RelationColumn
}

// TypeMsg describes a non-builtin type (ignored: the catalog is queried).
type TypeMsg struct {
	OID             uint32
	Namespace, Name string
}

// Tuple is a row: Values[i] is nil for NULL; Unchanged[i] marks an
// unchanged TOASTed value that was not sent.
type Tuple struct {
	Values    [][]byte
	Unchanged []bool
}

// Insert is a new row.
type Insert struct {
	RelationID uint32
	New        Tuple
	// Raw is the encoded tuple (aliasing the message), for spooling.
	Raw []byte
}

// Update is a changed row; Old is the key ('K') or old row ('O') when sent.
type Update struct {
	RelationID uint32
	OldKind    byte // 0, 'K' or 'O'
	Old        Tuple
	New        Tuple
}

// Delete is a removed row; Old is the key ('K') or old row ('O').
type Delete struct {
	RelationID uint32
	OldKind    byte
	Old        Tuple
}

// Truncate empties tables.
type Truncate struct {
	Options     uint8 // 1: CASCADE, 2: RESTART IDENTITY
	RelationIDs []uint32
}

// LogicalMessage is a pg_logical_emit_message payload.
type LogicalMessage struct {
	Transactional bool
	LSN           event.Position // the end of the message record
	Prefix        string
	Content       []byte
}

// ParseMessage decodes one pgoutput v1 message. It returns one of *Begin,
// *Commit, *Origin, *Relation, *TypeMsg, *Insert, *Update, *Delete,
// *Truncate or *LogicalMessage; byte slices alias data.
func ParseMessage(data []byte) (any, error) {
	if len(data) == 0 {
		return nil, errors.New("parse pgoutput: empty message")
	}
	r := &wireReader{b: data[1:]}
	var m any
	switch data[0] {
	case msgBegin:
		m = &Begin{FinalLSN: event.Position(r.u64()), CommitTime: r.time(), XID: r.u32()}
	case msgCommit:
		m = &Commit{Flags: r.u8(), CommitLSN: event.Position(r.u64()), EndLSN: event.Position(r.u64()), CommitTime: r.time()}
	case msgOrigin:
		m = &Origin{LSN: event.Position(r.u64()), Name: r.str()}
	case msgRelation:
		m = parseRelation(r)
	case msgType:
		m = &TypeMsg{OID: r.u32(), Namespace: r.str(), Name: r.str()}
	case msgInsert:
		m = parseInsert(r)
	case msgUpdate:
		m = parseUpdate(r)
	case msgDelete:
		m = parseDelete(r)
	case msgTruncate:
		m = parseTruncate(r)
	case msgMessage:
		m = &LogicalMessage{Transactional: r.u8() == 1, LSN: event.Position(r.u64()), Prefix: r.str(), Content: r.bytes(int(r.u32()))}
	default:
		return nil, fmt.Errorf("parse pgoutput: unknown message type %q", data[0])
	}
	if r.err != nil {
		return nil, fmt.Errorf("parse pgoutput %q: %w", data[0], r.err)
	}
	if r.off != len(r.b) {
		return nil, fmt.Errorf("parse pgoutput %q: %d trailing bytes", data[0], len(r.b)-r.off)
	}
	return m, nil
}

func parseRelation(r *wireReader) *Relation {
	m := &Relation{ID: r.u32(), Namespace: r.str(), Name: r.str(), ReplicaIdentity: r.u8()}
	n := int(r.u16())
	if r.err == nil && n > len(r.b) {
		r.fail(errShort)
		return m
	}
	m.Columns = make([]RelationColumn, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		m.Columns = append(m.Columns, RelationColumn{Flags: r.u8(), Name: r.str(), TypeOID: r.u32(), TypMod: int32(r.u32())})
	}
	return m
}

func parseInsert(r *wireReader) *Insert {
	m := &Insert{RelationID: r.u32()}
	if k := r.u8(); r.err == nil && k != 'N' {
		r.fail(fmt.Errorf("insert: tuple kind %q, want 'N'", k))
		return m
	}
	start := r.off
	m.New = r.tuple()
	if r.err == nil {
		m.Raw = r.b[start:r.off]
	}
	return m
}

func parseUpdate(r *wireReader) *Update {
	m := &Update{RelationID: r.u32()}
	k := r.u8()
	if k == 'K' || k == 'O' {
		m.OldKind = k
		m.Old = r.tuple()
		k = r.u8()
	}
	if r.err == nil && k != 'N' {
		r.fail(fmt.Errorf("update: tuple kind %q, want 'N'", k))
		return m
	}
	m.New = r.tuple()
	return m
}

func parseDelete(r *wireReader) *Delete {
	m := &Delete{RelationID: r.u32()}
	k := r.u8()
	if r.err == nil && k != 'K' && k != 'O' {
		r.fail(fmt.Errorf("delete: tuple kind %q, want 'K' or 'O'", k))
		return m
	}
	m.OldKind = k
	m.Old = r.tuple()
	return m
}

func parseTruncate(r *wireReader) *Truncate {
	n := int(r.u32())
	m := &Truncate{Options: r.u8()}
	if r.err == nil && n*4 > len(r.b)-r.off {
		r.fail(errShort)
		return m
	}
	for i := 0; i < n && r.err == nil; i++ {
		m.RelationIDs = append(m.RelationIDs, r.u32())
	}
	return m
}

// DecodeTuple decodes an encoded tuple (Insert.Raw) on its own.
func DecodeTuple(raw []byte) (Tuple, error) {
	r := &wireReader{b: raw}
	t := r.tuple()
	if r.err != nil {
		return Tuple{}, fmt.Errorf("decode tuple: %w", r.err)
	}
	if r.off != len(raw) {
		return Tuple{}, fmt.Errorf("decode tuple: %d trailing bytes", len(raw)-r.off)
	}
	return t, nil
}

// wireReader reads big-endian fields; the first error sticks and every
// later read returns zero values.
type wireReader struct {
	b   []byte
	off int
	err error
}

func (r *wireReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *wireReader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = errShort
		return false
	}
	return true
}

func (r *wireReader) u8() uint8 {
	if !r.need(1) {
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *wireReader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *wireReader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *wireReader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

func (r *wireReader) time() time.Time {
	return pgTime(int64(r.u64()))
}

func (r *wireReader) bytes(n int) []byte {
	if !r.need(n) {
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

// str reads a NUL-terminated string.
func (r *wireReader) str() string {
	if r.err != nil {
		return ""
	}
	for i := r.off; i < len(r.b); i++ {
		if r.b[i] == 0 {
			s := string(r.b[r.off:i])
			r.off = i + 1
			return s
		}
	}
	r.err = errors.New("string not terminated")
	return ""
}

func (r *wireReader) tuple() Tuple {
	n := int(r.u16())
	if r.err != nil {
		return Tuple{}
	}
	if n > len(r.b)-r.off {
		r.fail(errShort)
		return Tuple{}
	}
	t := Tuple{Values: make([][]byte, n)}
	for i := 0; i < n && r.err == nil; i++ {
		switch k := r.u8(); k {
		case colNull:
		case colUnchanged:
			if t.Unchanged == nil {
				t.Unchanged = make([]bool, n)
			}
			t.Unchanged[i] = true
		case colText, colBinary:
			l := r.u32()
			if r.err == nil && l > uint32(len(r.b)-r.off) {
				r.fail(errShort)
				break
			}
			v := r.bytes(int(l))
			if v == nil && r.err == nil {
				v = []byte{}
			}
			t.Values[i] = v
		default:
			r.fail(fmt.Errorf("column %d: unknown kind %q", i, k))
		}
	}
	return t
}

// pgTime converts microseconds since 2000-01-01 to UTC time.
func pgTime(us int64) time.Time {
	return pgEpoch.Add(time.Duration(us) * time.Microsecond)
}
