package feed_test

import (
	"crypto/sha256"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/testing/golden"
)

// sha256("abc") and sha256("") — the digests docs/feed.md uses.
const (
	abcHex   = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	emptyHex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

func TestExternal_Golden(t *testing.T) {
	vs := []feed.ExternalValue{
		{Column: 4, Size: 3, SHA256: sha256.Sum256([]byte("abc"))},
		{Column: 7, Size: 0, SHA256: sha256.Sum256(nil)},
	}
	const want = "4=3:" + abcHex + ",7=0:" + emptyHex
	if got := feed.EncodeExternal(vs); got != want {
		t.Fatalf("EncodeExternal = %q, want %q", got, want)
	}
	got, err := feed.ParseExternal(want, 8)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != vs[0] || got[1] != vs[1] {
		t.Fatalf("ParseExternal = %+v, want %+v", got, vs)
	}
	if b := feed.ValuesBucket("TIDEMARK"); b != "TIDEMARK_VALUES" {
		t.Errorf("ValuesBucket = %q", b)
	}
	if n := feed.ValueObjectName("7300000000000000001-16b3741a58-0", 4); n != "7300000000000000001-16b3741a58-0.4" {
		t.Errorf("ValueObjectName = %q", n)
	}
}

func TestExternal_Refused(t *testing.T) {
	ok := "4=3:" + abcHex
	for _, s := range []string{
		"",
		"4=3",
		"4:3=" + abcHex,
		"8=3:" + abcHex,                  // column beyond the table
		"-1=3:" + abcHex,                 // sign
		"04=3:" + abcHex,                 // leading zero
		"4=03:" + abcHex,                 // leading zero
		"4=+3:" + abcHex,                 // sign
		"4=1073741825:" + abcHex,         // above MaxExternalSize
		"4=3:" + strings.ToUpper(abcHex), // upper-case hex
		"4=3:" + abcHex[:62],             // short digest
		"4=3:" + abcHex[:62] + "zz",      // not hex
		ok + "," + ok,                    // column twice
		"5=3:" + abcHex + "," + ok,       // not ascending
		ok + ",",                         // empty item
		ok + " ",                         // trailing space
		"1=1:" + abcHex + ",2=1:" + abcHex + ",3=1:" + abcHex + ",4=1:" + abcHex +
			",5=1:" + abcHex + ",6=1:" + abcHex + ",7=1:" + abcHex + ",0=1:" + abcHex + ",9=1:" + abcHex, // more values than columns
	} {
		if vs, err := feed.ParseExternal(s, 8); err == nil {
			t.Errorf("ParseExternal(%q) = %+v, want an error", s, vs)
		}
	}
}

// FuzzParseExternal: the header is untrusted input. Whatever parses must be
// exactly what EncodeExternal writes for the result, within the limits.
func FuzzParseExternal(f *testing.F) {
	f.Add("4=3:"+abcHex, 8)
	f.Add("0=0:"+emptyHex+",1=1073741824:"+abcHex, 2)
	f.Add("4=3:"+abcHex+",4=3:"+abcHex, 8)
	f.Add("", 0)
	f.Fuzz(func(t *testing.T, s string, ncols int) {
		vs, err := feed.ParseExternal(s, ncols)
		if err != nil {
			return
		}
		if got := feed.EncodeExternal(vs); got != s {
			t.Fatalf("ParseExternal(%q) then EncodeExternal = %q", s, got)
		}
		for i, v := range vs {
			if v.Column < 0 || v.Column >= ncols || v.Size < 0 || v.Size > feed.MaxExternalSize ||
				i > 0 && v.Column <= vs[i-1].Column {
				t.Fatalf("ParseExternal(%q) accepted %+v", s, v)
			}
		}
	})
}

// TestExternal_GoldenMessage pins an event message whose event_data
// travelled outside it (docs/feed.md, "Large values"): the value null in
// the body, the Tidemark-External header naming column 4, its size and
// SHA-256; the object it names holds the value's text.
func TestExternal_GoldenMessage(t *testing.T) {
	value := []byte(`{"items": ["ü", "😀"], "total": 12.5}`)
	e := goldenEvent()
	e.Values[4] = nil
	m := golden.CaptureEvent(goldenSubjects, goldenSystemID, 0, feed.NewEventTable(&goldenTable), e)
	m.Header.Set(feed.HeaderExternal, feed.EncodeExternal([]feed.ExternalValue{{Column: 4, Size: int64(len(value)), SHA256: sha256.Sum256(value)}}))
	path := filepath.Join(goldenDir, "v2", "event-external.msg")
	golden.Check(t, path, golden.MarshalMsgs(goldenComment, m), *update)

	msgs, err := golden.UnmarshalMsgs(golden.Read(t, path))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("parse golden message: %d messages, %v", len(msgs), err)
	}
	got := msgs[0]
	const wantHeader = "4=40:6ee17623ba6215e104bf36b0da3653dd76023af54294b8eb3ed1a70d13ab6f45"
	hdr := got.Header.Get(feed.HeaderExternal)
	if hdr != wantHeader {
		t.Fatalf("header %s = %q", feed.HeaderExternal, hdr)
	}
	if name := feed.ValueObjectName(got.Header.Get(nats.MsgIdHdr), 4); name != "7300000000000000001-16b37400c8-1.4" {
		t.Errorf("object name %q", name)
	}
	ev, err := feed.DecodeEvent(got, &goldenTable)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := feed.ParseExternal(hdr, len(goldenTable.Columns))
	if err != nil {
		t.Fatal(err)
	}
	if string(ev.Values[4]) != "null" || vs[0].SHA256 != sha256.Sum256(value) || vs[0].Size != int64(len(value)) {
		t.Fatalf("decoded %q, header %+v", ev.Values[4], vs)
	}
	if !strings.Contains(string(got.Data), `"event_data":null`) {
		t.Fatalf("body %s", got.Data)
	}
}
