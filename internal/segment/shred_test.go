package segment

import (
	"bytes"
	"fmt"
	"testing"
)

func TestShredJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		skel string // placeholders as '#'
		lits []string
	}{
		{`{"a": 1, "b": "x", "c": [true, null, -2.5e3], "d": {}}`, `{"a": #, "b": "#", "c": [#, #, #], "d": {}}`,
			[]string{"1", "x", "true", "null", "-2.5e3"}},
		{`[]`, `[]`, nil},
		{"{\n \"k\" :\t\"v\" }", "{\n \"k\" :\t\"#\" }", []string{"v"}},
		{`{"a\"b": "c\"d\\"}`, `{"a\"b": "#"}`, []string{`c\"d\\`}},
		{`{"": ""}`, `{"": "#"}`, []string{""}},
		{`["k", "v"]`, `["#", "#"]`, []string{"k", "v"}},
		{`{"u": "\u0000"}`, `{"u": "#"}`, []string{`\u0000`}},
	} {
		skel, lits, ok := shredJSON([]byte(tc.in), nil, nil)
		if !ok {
			t.Errorf("shredJSON(%q) refused", tc.in)
			continue
		}
		if got := string(bytes.ReplaceAll(skel, []byte{placeholder}, []byte("#"))); got != tc.skel {
			t.Errorf("shredJSON(%q) skeleton %q, want %q", tc.in, got, tc.skel)
		}
		if fmt.Sprintf("%q", bytesToStrings(lits)) != fmt.Sprintf("%q", tc.lits) && !(len(lits) == 0 && len(tc.lits) == 0) {
			t.Errorf("shredJSON(%q) literals %q, want %q", tc.in, bytesToStrings(lits), tc.lits)
		}
	}
	for _, in := range []string{"", "1", `"s"`, "true", "{", `{"a":}`, `{"a": 1} x`, "{\"a\": \"\x00\"}", "[1,]", "\x00[]"} {
		if skel, lits, ok := shredJSON([]byte(in), nil, nil); ok {
			t.Errorf("shredJSON(%q) = %q, %q; want refused", in, skel, lits)
		}
	}
}

func bytesToStrings(b [][]byte) []string {
	out := make([]string, len(b))
	for i := range b {
		out[i] = string(b[i])
	}
	return out
}

func TestUUIDText(t *testing.T) {
	const u = "0e3fc9a8-3a5b-4c5e-9f1a-2b3c4d5e6f70"
	b, ok := parseUUIDText([]byte(u))
	if !ok || string(appendUUIDText(nil, b[:])) != u {
		t.Fatalf("parseUUIDText(%q) = %x, %v", u, b, ok)
	}
	for _, bad := range []string{"", "0E3FC9A8-3A5B-4C5E-9F1A-2B3C4D5E6F70", "0e3fc9a83a5b4c5e9f1a2b3c4d5e6f70",
		"0e3fc9a8-3a5b-4c5e-9f1a-2b3c4d5e6f7", "0e3fc9a8-3a5b-4c5e-9f1a-2b3c4d5e6f7g", "{e3fc9a8-3a5b-4c5e-9f1a-2b3c4d5e6f70}",
		"0e3fc9a8-3a5b-4c5e-9f1a+2b3c4d5e6f70", "0e3fc9a8-3a5b-4c5e-9f1a-2b3c4d5e6f70 "} {
		if _, ok := parseUUIDText([]byte(bad)); ok {
			t.Errorf("parseUUIDText(%q) accepted", bad)
		}
	}
}

// FuzzShredJSON checks the writer's promise behind the JSON split: the
// skeleton's placeholders filled with the literals give the value back, and
// a UUID's 16 bytes give its text back.
func FuzzShredJSON(f *testing.F) {
	for _, v := range oddValues {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		skel, lits, ok := shredJSON(v, nil, nil)
		if ok {
			var b blockEncoder
			if !b.roundTrips(v, skel, lits) {
				t.Fatalf("shredJSON(%q) = %q, %q does not give it back", v, skel, lits)
			}
		}
		if u, ok := parseUUIDText(v); ok && !bytes.Equal(appendUUIDText(nil, u[:]), v) {
			t.Fatalf("UUID %q comes back as %q", v, appendUUIDText(nil, u[:]))
		}
	})
}
