package cdc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// memValues is a values store in memory, for the encoding rules alone
// (the real object store is exercised by the tests against nats-server).
type memValues map[string][]byte

func (m memValues) GetInfo(_ context.Context, name string, _ ...jetstream.GetObjectInfoOpt) (*jetstream.ObjectInfo, error) {
	b, ok := m[name]
	if !ok {
		return nil, jetstream.ErrObjectNotFound
	}
	return &jetstream.ObjectInfo{Size: uint64(len(b)), Digest: digestOf(b)}, nil
}

func (m memValues) Put(_ context.Context, meta jetstream.ObjectMeta, r io.Reader) (*jetstream.ObjectInfo, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	m[meta.Name] = b
	return &jetstream.ObjectInfo{Size: uint64(len(b)), Digest: digestOf(b)}, nil
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "SHA-256=" + base64.URLEncoding.EncodeToString(s[:])
}

func testEmitter(values valueStore, maxPayload int64) *emitter {
	return &emitter{subjects: feed.Subjects{Prefix: "tidemark"}, systemID: "1", values: values, stream: "TIDEMARK",
		extBytes: 256 << 10, maxPayload: func() int64 { return maxPayload }, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// TestEncodeEvent_MovesLargestValuesUntilItFits: below the threshold no
// value moves; while the message exceeds max_payload the largest values
// move out (in the body they are escaped to twice their size), and the
// objects hold the values' text.
func TestEncodeEvent_MovesLargestValuesUntilItFits(t *testing.T) {
	tbl := event.Table{Schema: "public", Name: "wide", Columns: []event.Column{
		{Name: "event_id", Type: "text", OID: 25, Key: true},
		{Name: "a", Type: "text", OID: 25}, {Name: "b", Type: "text", OID: 25}, {Name: "c", Type: "text", OID: 25},
		{Name: "d", Type: "text", OID: 25}, {Name: "e", Type: "text", OID: 25}}}
	rel := newRelation(&Relation{}, tbl)
	vals := [][]byte{[]byte("id-1")}
	for _, n := range []int{3900, 3800, 3700, 3600, 3500} {
		vals = append(vals, []byte(strings.Repeat(`"`, n))) // 2n bytes in the body
	}
	store := memValues{}
	em := testEmitter(store, 16<<10) // threshold 4 KiB: no value is above it
	ev := &event.Event{CommitLSN: 0x100, EndLSN: 0x120, CommitTime: time.Unix(0, 0), Count: 1}
	msg, err := em.encodeEvent(context.Background(), feed.NewTxnPrefix("1", ev), "1", rel, ev, vals, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := msgSize(msg); n > 16<<10 {
		t.Fatalf("message is %d bytes, max_payload 16 KiB", n)
	}
	vs, err := feed.ParseExternal(msg.Header.Get(feed.HeaderExternal), len(tbl.Columns))
	if err != nil {
		t.Fatal(err)
	}
	var cols []int
	for _, v := range vs {
		cols = append(cols, v.Column)
		b := store[feed.ValueObjectName(msg.Header.Get(nats.MsgIdHdr), v.Column)]
		if !bytes.Equal(b, vals[v.Column]) || v.SHA256 != sha256.Sum256(b) || v.Size != int64(len(b)) {
			t.Errorf("column %d: object of %d bytes does not match", v.Column, len(b))
		}
	}
	if len(cols) != 3 || cols[0] != 1 || cols[1] != 2 || cols[2] != 3 {
		t.Fatalf("external columns %v, want the three largest [1 2 3]", cols)
	}
	if !strings.Contains(string(msg.Data), `"a":null,"b":null,"c":null,"d":"\"`) {
		t.Fatalf("body %.80s…", msg.Data)
	}

	// The same event with room in the message moves nothing.
	small := testEmitter(memValues{}, 1<<20)
	msg, err = small.encodeEvent(context.Background(), feed.NewTxnPrefix("1", ev), "1", rel, ev, vals, nil)
	if err != nil || msg.Header.Get(feed.HeaderExternal) != "" {
		t.Fatalf("with 1 MiB of room: header %q, %v", msg.Header.Get(feed.HeaderExternal), err)
	}
}

// TestEncodeEvent_UnmovableTooLarge: a message that cannot fit even with
// every movable value outside (its event id alone is too large) is a
// fatal error that names max_payload, not a skip.
func TestEncodeEvent_UnmovableTooLarge(t *testing.T) {
	tbl := event.Table{Schema: "public", Name: "t", Columns: []event.Column{
		{Name: "event_id", Type: "text", OID: 25, Key: true}, {Name: "a", Type: "text", OID: 25}}}
	rel := newRelation(&Relation{}, tbl)
	em := testEmitter(memValues{}, 16<<10)
	ev := &event.Event{CommitLSN: 0x100, EndLSN: 0x120, CommitTime: time.Unix(0, 0), Count: 1}
	_, err := em.encodeEvent(context.Background(), feed.NewTxnPrefix("1", ev), "1", rel, ev, [][]byte{bytes.Repeat([]byte("x"), 20<<10), []byte("v")}, nil)
	var fe *FatalError
	if !errors.As(err, &fe) || !errors.Is(err, nats.ErrMaxPayload) || !strings.Contains(fe.Hint, "max_payload") {
		t.Fatalf("err = %v", err)
	}
}

// TestValuesStoreConfig: the values outlive the messages naming them.
func TestValuesStoreConfig(t *testing.T) {
	cfg := Defaults()
	cfg.Replicas = 3
	oc := ValuesStoreConfig(cfg)
	if oc.Bucket != "TIDEMARK_VALUES" || oc.TTL != 0 || oc.Replicas != 3 || oc.Storage != jetstream.FileStorage {
		t.Fatalf("unlimited stream: %+v", oc)
	}
	cfg.MaxAge = 7 * 24 * time.Hour
	if oc := ValuesStoreConfig(cfg); oc.TTL <= cfg.MaxAge {
		t.Fatalf("TTL %s for a stream max age of %s", oc.TTL, cfg.MaxAge)
	}
}
