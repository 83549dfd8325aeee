package segment

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
)

var testWords = []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
	"india", "juliett", "kilo", "lima", "mike", "tide", "mark", "wave", "harbour", "anchor"}

// gen makes EventCore-like events in chain order: transactions of 1–5
// events, ~500-byte event_data, ~150-byte metadata, commit times that jitter
// backwards, per-stream versions, some NULL and empty values.
type gen struct {
	rng      *rand.Rand
	lsn      event.Position
	xid      uint32
	t        time.Time
	versions map[string]int64
	streams  int
}

func newGen(seed uint64, streams int) *gen {
	return &gen{rng: rand.New(rand.NewPCG(seed, 7)), lsn: 0x16B3740000, xid: 1000,
		t:        time.Date(2026, 11, 25, 10, 15, 0, 0, time.UTC),
		versions: map[string]int64{}, streams: streams}
}

func (g *gen) uuid() string {
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", g.rng.Uint32(), g.rng.Uint32()&0xffff,
		g.rng.Uint32()&0xfff, g.rng.Uint32()&0xfff, g.rng.Uint64()&0xffffffffffff)
}

func (g *gen) words(n int) string {
	var b bytes.Buffer
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(testWords[g.rng.IntN(len(testWords))])
	}
	return b.String()
}

func (g *gen) data(typ string, seq int64) string {
	m := map[string]any{
		"type": typ, "sequence": seq,
		"amount":   map[string]any{"value": g.rng.IntN(1_000_000), "currency": []string{"EUR", "USD", "GBP"}[g.rng.IntN(3)]},
		"customer": map[string]any{"id": g.uuid(), "name": g.words(2), "email": g.words(1) + "@example.com", "address": map[string]any{"street": g.words(2), "city": g.words(1), "postal_code": strconv.Itoa(10000 + g.rng.IntN(89999)), "country": "NL"}},
		"lines":    []any{map[string]any{"sku": "SKU-" + strconv.Itoa(g.rng.IntN(9999)), "quantity": 1 + g.rng.IntN(5), "price": map[string]any{"value": g.rng.IntN(10000), "currency": "EUR"}}},
		"tags":     []string{g.words(1), g.words(1)},
		"note":     g.words(8),
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// tx returns one transaction of n events.
func (g *gen) tx(n int) []*event.Event {
	prev := g.lsn
	g.lsn += event.Position(100 + g.rng.IntN(5000))
	commit := g.lsn
	g.lsn += 48
	g.xid++
	// Commit times are not monotonic in LSN order: jitter up to ±2 s.
	g.t = g.t.Add(time.Duration(g.rng.IntN(50)) * time.Millisecond)
	ct := g.t.Add(time.Duration(g.rng.IntN(4000)-2000) * time.Millisecond).Truncate(time.Microsecond)
	out := make([]*event.Event, n)
	for i := range out {
		sid := fmt.Sprintf("account-%d", g.rng.IntN(g.streams))
		g.versions[sid]++
		typ := testWords[g.rng.IntN(len(testWords))]
		meta := []byte(fmt.Sprintf(`{"correlation_id":"%s","causation_id":"%s","user_id":"user-%d","source":"api"}`,
			g.uuid(), g.uuid(), g.rng.IntN(1000)))
		switch g.rng.IntN(20) {
		case 0:
			meta = nil // NULL
		case 1:
			meta = []byte{} // empty string, distinct from NULL
		}
		out[i] = &event.Event{Table: "public.eventcore_events", CommitLSN: commit, EndLSN: g.lsn, PrevLSN: prev,
			CommitTime: ct, XID: g.xid, Index: i, Count: n,
			Values: [][]byte{[]byte(g.uuid()), []byte(sid), []byte(strconv.FormatInt(g.versions[sid], 10)),
				[]byte(typ), []byte(g.data(typ, g.versions[sid])), meta, []byte(ct.Format("2006-01-02 15:04:05.999999-07"))}}
	}
	return out
}

// events returns about n events in whole transactions.
func (g *gen) events(n int) []*event.Event {
	var out []*event.Event
	for len(out) < n {
		out = append(out, g.tx(1+g.rng.IntN(5))...)
	}
	return out
}

// encode writes events into a segment and returns its bytes and trailer.
func encode(tb testing.TB, opts WriterOptions, events []*event.Event) ([]byte, *Trailer) {
	tb.Helper()
	if opts.Table.Name == "" {
		opts.Table = eventcore.TableDef()
	}
	if opts.SystemID == "" {
		opts.SystemID = "7345034223590588888"
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, opts)
	if err != nil {
		tb.Fatalf("NewWriter: %v", err)
	}
	for _, e := range events {
		if err := w.Append(e); err != nil {
			tb.Fatalf("Append(%s): %v", e, err)
		}
	}
	tr, err := w.Close()
	if err != nil {
		tb.Fatalf("Close: %v", err)
	}
	return buf.Bytes(), tr
}

func mustKeyring(tb testing.TB, texts ...string) *Keyring {
	tb.Helper()
	var all string
	for _, t := range texts {
		all += t + "\n"
	}
	k, err := ParseKeyring(all)
	if err != nil {
		tb.Fatalf("ParseKeyring: %v", err)
	}
	return k
}

func mustGenerateKey(tb testing.TB) string {
	tb.Helper()
	k, err := GenerateKey()
	if err != nil {
		tb.Fatalf("GenerateKey: %v", err)
	}
	return k
}

// rehash recomputes the footer checksum of data (a copy), so a test can
// reach the checks behind it.
func rehash(data []byte) []byte {
	out := bytes.Clone(data)
	if len(out) < footerLen {
		return out
	}
	sum := sha256.Sum256(out[:len(out)-footerLen])
	copy(out[len(out)-footerLen+8:], sum[:])
	return out
}

// forge builds a plaintext segment from raw parts with a valid checksum, so
// tests can present hostile content behind it. hdr and trl are marshalled
// as given (trl's header_sha256 is filled in when empty).
func forge(hdr any, body []byte, trl *trailerJSON) []byte {
	return forgeVersion(Version, hdr, body, trl)
}

// forgeVersion is forge with the given version byte.
func forgeVersion(version byte, hdr any, body []byte, trl *trailerJSON) []byte {
	hj, _ := json.Marshal(hdr)
	env := make([]byte, prefixLen)
	copy(env, Magic)
	env[5] = version
	binary.BigEndian.PutUint32(env[8:], uint32(len(hj)))
	env = append(env, hj...)
	if trl.HeaderSHA256 == "" {
		s := sha256.Sum256(env)
		trl.HeaderSHA256 = hex.EncodeToString(s[:])
	}
	tj, _ := json.Marshal(trl)
	out := append(bytes.Clone(env), body...)
	out = append(out, tj...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(tj)))
	sum := sha256.Sum256(out)
	out = binary.BigEndian.AppendUint64(out, uint64(len(out)-len(env)))
	out = append(out, sum[:]...)
	return append(out, EndMagic...)
}

func testHeader(c Compression) headerJSON {
	return headerJSON{Version: Version, Compression: &c, SystemID: "1", Table: eventcore.TableDef(),
		Created: time.Date(2026, 11, 25, 10, 15, 0, 0, time.UTC)}
}
