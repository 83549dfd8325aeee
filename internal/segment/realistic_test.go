package segment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
)

// eventCoreGen makes EventCore rows as the benchmarks' loader writes them
// (internal/testing/bench, Load) and as capture then sees them: transactions
// of 1–10 events over 1–3 of 10,000 streams, UUIDv7 event ids, a random
// correlation id per transaction and causation id per event (loadgen's
// metadata), loadgen's event data, created_at the transaction's start, the
// jsonb columns in PostgreSQL's jsonb text form, and positions, xids and
// commit times of a source running at rate events per second.
type eventCoreGen struct {
	p        *loadgen.Payloads
	rng      *rand.Rand
	now      time.Time
	lastMS   int64
	lsn      event.Position
	xid      uint32
	versions map[int]int64
	rate     float64
	streams  int // stream ids are bench-0 … bench-(streams-1)
}

func newEventCoreGen(seed uint64, rate float64) *eventCoreGen {
	return &eventCoreGen{p: loadgen.NewPayloads(seed, 0), rng: rand.New(rand.NewPCG(seed, 99)),
		now: time.Date(2026, 11, 25, 10, 15, 0, 0, time.UTC), lsn: 0x16B3740000, xid: 5000,
		versions: map[int]int64{}, rate: rate, streams: 10_000}
}

// uuid4 is a random (version 4) UUID, as uuid.NewString makes.
func (g *eventCoreGen) uuid4() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

// uuid7 is a time-ordered UUID as uuid.NewV7 makes at the generator's clock.
func (g *eventCoreGen) uuid7() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	nano := g.now.UnixNano()
	ms, seq := nano/1e6, (nano%1e6)>>8
	if now := ms<<12 + seq; now <= g.lastMS {
		now = g.lastMS + 1
		ms, seq = now>>12, now&0xfff
		g.lastMS = now
	} else {
		g.lastMS = now
	}
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = 0x70 | byte(seq>>8)&0x0f
	b[7] = byte(seq)
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

func formatUUID(b [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// tx returns one transaction.
func (g *eventCoreGen) tx() []*event.Event {
	n := 1 + g.p.IntN(10)
	k := min(1+g.p.IntN(3), n, g.streams)
	streams := make([]int, 0, k)
	for len(streams) < k {
		s := g.rng.IntN(g.streams)
		dup := false
		for _, p := range streams {
			dup = dup || p == s
		}
		if !dup {
			streams = append(streams, s)
		}
	}
	counts := make([]int, k)
	for i := range counts {
		counts[i] = 1
	}
	for range n - k {
		counts[g.p.IntN(k)]++
	}
	start := g.now
	created := []byte(start.Format("2006-01-02 15:04:05.999999") + "+00")
	correlation := g.uuid4()
	prev := g.lsn
	var out []*event.Event
	for i, s := range streams {
		for range counts[i] {
			g.versions[s]++
			typ := g.p.EventType()
			g.now = g.now.Add(time.Duration(float64(time.Second) / g.rate))
			out = append(out, &event.Event{Table: "public.eventcore_events", Values: [][]byte{
				[]byte(g.uuid7()), []byte("bench-" + strconv.Itoa(s)), []byte(strconv.FormatInt(g.versions[s], 10)),
				[]byte(typ), jsonbText(g.p.EventData(typ)), jsonbText(g.p.Metadata(correlation)), created}})
		}
	}
	for _, e := range out {
		g.lsn += event.Position(300 + len(e.Values[4]) + len(e.Values[5]) + g.rng.IntN(64))
	}
	commit := g.lsn
	g.lsn += 48
	g.xid++
	ct := g.now.Truncate(time.Microsecond)
	for i, e := range out {
		e.CommitLSN, e.EndLSN, e.PrevLSN, e.CommitTime, e.XID, e.Index, e.Count = commit, g.lsn, prev, ct, g.xid, i, len(out)
	}
	return out
}

// events returns about n events in whole transactions.
func (g *eventCoreGen) events(n int) []*event.Event {
	var out []*event.Event
	for len(out) < n {
		out = append(out, g.tx()...)
	}
	return out
}

// jsonbText re-renders a JSON document as PostgreSQL prints jsonb: object
// keys sorted by length, then bytes; ", " and ": " between members.
func jsonbText(doc []byte) []byte {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		panic(err)
	}
	var b bytes.Buffer
	writeJSONB(&b, v)
	return b.Bytes()
}

func writeJSONB(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if len(keys[i]) != len(keys[j]) {
				return len(keys[i]) < len(keys[j])
			}
			return keys[i] < keys[j]
		})
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONString(b, k)
			b.WriteString(": ")
			writeJSONB(b, v[k])
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONB(b, x)
		}
		b.WriteByte(']')
	case string:
		writeJSONString(b, v)
	case json.Number:
		b.WriteString(v.String())
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case nil:
		b.WriteString("null")
	}
}

// writeJSONString escapes as PostgreSQL's escape_json does.
func writeJSONString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	b.WriteByte('"')
}

// rowJSONBytes is the size of row_to_json(e)::text for an eventcore_events
// row: the raw JSON the archive ratio is measured against.
func rowJSONBytes(e *event.Event) int {
	var b bytes.Buffer
	b.WriteString(`{"event_id":`)
	writeJSONString(&b, string(e.Values[0]))
	b.WriteString(`,"stream_id":`)
	writeJSONString(&b, string(e.Values[1]))
	b.WriteString(`,"stream_version":`)
	b.Write(e.Values[2])
	b.WriteString(`,"event_type":`)
	writeJSONString(&b, string(e.Values[3]))
	b.WriteString(`,"event_data":`)
	b.Write(e.Values[4])
	b.WriteString(`,"metadata":`)
	b.Write(e.Values[5])
	b.WriteString(`,"created_at":`)
	ts, err := time.Parse("2006-01-02 15:04:05.999999-07", string(e.Values[6]))
	if err != nil {
		panic(err)
	}
	writeJSONString(&b, ts.UTC().Format("2006-01-02T15:04:05.999999")+"+00:00")
	b.WriteByte('}')
	return b.Len()
}
