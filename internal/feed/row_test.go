package feed

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"unicode/utf8"
)

func TestDecodeRow_RoundTrip(t *testing.T) {
	rows := [][][]byte{
		{[]byte("0191f3a0-0000-7000-8000-000000000001"), []byte("s"), []byte("1"), []byte("T"),
			[]byte(`{"a": {"b": [1, "x}]\"", {"c": null}]}, "d": "\\u00fc"}`), []byte(`[]`), []byte("2026-11-25 10:15:30+00"), []byte("")},
		{[]byte("id"), []byte("tab\there\nnewline \"q\" \\ ü \u2028"), []byte("-9223372036854775808"), []byte(""),
			[]byte(`"a string"`), []byte(`123.5e3`), nil, nil},
		{nil, nil, nil, nil, []byte(`true`), []byte(`null`), nil, []byte("}")}, // JSON null in NOT NULL jsonb
		{nil, nil, nil, nil, []byte(`null`), []byte(`{}`), nil, []byte("null")},
	}
	for _, values := range rows {
		body := AppendRow(nil, &testTable, values)
		got, err := DecodeRow(&testTable, body)
		if err != nil {
			t.Fatalf("DecodeRow(%s): %v", body, err)
		}
		for i := range values {
			// A jsonb value of JSON null comes back as SQL NULL: AppendRow cannot tell them apart.
			if string(values[i]) == "null" && testTable.Columns[i].OID == jsonbOID && !testTable.Columns[i].NotNull {
				continue
			}
			if (values[i] == nil) != (got[i] == nil) || !bytes.Equal(values[i], got[i]) {
				t.Errorf("column %s: got %q (nil %v), want %q (nil %v)", testTable.Columns[i].Name, got[i], got[i] == nil, values[i], values[i] == nil)
			}
		}
	}
}

func TestDecodeRow_Rejects(t *testing.T) {
	for _, body := range []string{
		``, `[]`, `{"event_id":"a"`, `{"event_id":"a",}`, `{"bogus":1}`, `{"event_id":"a","event_id":"b"}`,
		`{"event_id" "a"}`, `{"event_id":"a"} x`, `"str"`,
	} {
		if _, err := DecodeRow(&testTable, []byte(body)); err == nil {
			t.Errorf("DecodeRow(%q) accepted", body)
		}
	}
	got, err := DecodeRow(&testTable, []byte(` { "note" : "x" , "stream_version" : 3 } `))
	if err != nil || string(got[7]) != "x" || string(got[2]) != "3" || got[0] != nil {
		t.Fatalf("whitespace and order: %q, %v", got, err)
	}
}

func FuzzDecodeRow(f *testing.F) {
	f.Add([]byte(`{"event_id":"a","event_data":{"x":[1,2]},"note":null}`))
	f.Add([]byte(`{"stream_id":"\u00fc\"","metadata":"{}"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		values, err := DecodeRow(&testTable, body)
		if err != nil {
			return
		}
		again, err := DecodeRow(&testTable, AppendRow(nil, &testTable, values))
		if err != nil {
			t.Fatalf("re-encoded row does not decode: %v", err)
		}
		for i := range values {
			c := testTable.Columns[i]
			if values[i] == nil && c.NotNull && c.OID == jsonbOID {
				continue // absent from the body: re-encoded as null, read back as JSON null
			}
			if (values[i] == nil) != (again[i] == nil) || !bytes.Equal(values[i], again[i]) {
				t.Fatalf("column %d changed: %q -> %q", i, values[i], again[i])
			}
		}
	})
}

// FuzzValidJSON holds validJSON to encoding/json's answer on every input
// (invalid UTF-8 aside, which DecodeRow rejects on its own).
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e-3,-0,true,false,null,"\u00fc\ud83d\ude00"]}`, `{"a":}`, `[1,]`, `"\x"`, `01`, `1.`, `-`, `{"a":1}{}`,
		" \t\r\n{}\n", `"a\u12"`, "\"\x01\"", `1e`, `{"a" 1}`, `nul`, `[`, ``, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			return
		}
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}

// FuzzAppendKey holds appendKey to strconv.AppendQuote's output, which
// pins the row format's keys.
func FuzzAppendKey(f *testing.F) {
	for _, s := range []string{"event_id", "", "a\"b", `a\b`, "ü", "tab\t", "\x7f", "\xff", "stream id"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := appendKey([]byte("x"), name), strconv.AppendQuote([]byte("x"), name); !bytes.Equal(got, want) {
			t.Fatalf("appendKey(%q) = %s, AppendQuote gives %s", name, got, want)
		}
	})
}
