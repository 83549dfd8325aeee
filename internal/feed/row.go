package feed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	validjson "github.com/segmentio/encoding/json"

	"github.com/tidemark/tidemark/internal/event"
)

var errRowSyntax = errors.New("malformed row object")

// DecodeRow parses a body built by AppendRow back into text values in t's
// column order. Columns absent from the body are NULL; unknown or repeated
// keys are an error. The body is validated as JSON first, then scanned
// once without building a map: this is the archiver's hottest path.
func DecodeRow(t *event.Table, body []byte) ([][]byte, error) {
	if !validJSON(body) {
		return nil, fmt.Errorf("decode row: body is not valid JSON")
	}
	// JSON is UTF-8 (RFC 8259) and capture writes nothing else; the JSON
	// validators do not check it, and a value with invalid bytes would
	// not survive a re-encoding unchanged.
	if !utf8.Valid(body) {
		return nil, fmt.Errorf("decode row: body is not valid UTF-8")
	}
	values := make([][]byte, len(t.Columns))
	seen := make([]bool, len(t.Columns))
	// All values are copied into one buffer: one allocation per row, and
	// nothing keeps the message body alive.
	buf := make([]byte, 0, len(body))
	p := skipSpace(body, 0)
	if p >= len(body) || body[p] != '{' {
		return nil, fmt.Errorf("decode row: want a JSON object")
	}
	p = skipSpace(body, p+1)
	next := 0 // keys usually come in column order
	if p < len(body) && body[p] == '}' {
		return values, nil
	}
	for {
		keyEnd := stringEnd(body, p)
		if keyEnd < 0 {
			return nil, fmt.Errorf("decode row: %w", errRowSyntax)
		}
		key, err := unquote(body[p:keyEnd])
		if err != nil {
			return nil, fmt.Errorf("decode row: key: %w", err)
		}
		i := -1
		if next < len(t.Columns) && t.Columns[next].Name == string(key) {
			i = next
		} else {
			i = t.ColumnIndex(string(key))
		}
		if i < 0 {
			return nil, fmt.Errorf("decode row: body has column %q unknown to table %s", key, t.QualifiedName())
		}
		if seen[i] {
			return nil, fmt.Errorf("decode row: column %q appears twice", key)
		}
		seen[i], next = true, i+1
		p = skipSpace(body, keyEnd)
		if p >= len(body) || body[p] != ':' {
			return nil, fmt.Errorf("decode row: %w", errRowSyntax)
		}
		p = skipSpace(body, p+1)
		end := valueEnd(body, p)
		if end < 0 {
			return nil, fmt.Errorf("decode row: %w", errRowSyntax)
		}
		raw := body[p:end]
		c := t.Columns[i]
		switch {
		case len(raw) == 4 && string(raw) == "null" && !(c.NotNull && (c.OID == jsonOID || c.OID == jsonbOID)):
			// SQL NULL. In a NOT NULL json/jsonb column it can only be the
			// JSON value null (AppendRow writes both the same way).
			values[i] = nil
		case c.OID == jsonOID || c.OID == jsonbOID || raw[0] != '"':
			values[i], buf = appendValue(buf, raw)
		default:
			s, err := unquote(raw)
			if err != nil {
				return nil, fmt.Errorf("decode row: column %s: %w", c.Name, err)
			}
			values[i], buf = appendValue(buf, s)
		}
		p = skipSpace(body, end)
		if p >= len(body) {
			return nil, fmt.Errorf("decode row: %w", errRowSyntax)
		}
		if body[p] == '}' {
			break
		}
		if body[p] != ',' {
			return nil, fmt.Errorf("decode row: %w", errRowSyntax)
		}
		p = skipSpace(body, p+1)
	}
	return values, nil
}

// appendValue copies v into buf and returns the copy (non-nil, so an empty
// string stays distinct from NULL) and the grown buffer. When buf must grow,
// earlier values keep pointing into the old array, which stays valid.
func appendValue(buf, v []byte) ([]byte, []byte) {
	if cap(buf)-len(buf) < len(v) {
		buf = make([]byte, 0, max(len(v), 2*cap(buf)))
	}
	n := len(buf)
	buf = append(buf, v...)
	return buf[n:len(buf):len(buf)], buf
}

// unquote returns the contents of a JSON string literal; the common case
// without escapes needs no decoding.
func unquote(lit []byte) ([]byte, error) {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return nil, errRowSyntax
	}
	inner := lit[1 : len(lit)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, nil
	}
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

func skipSpace(b []byte, p int) int {
	for p < len(b) && (b[p] == ' ' || b[p] == '\t' || b[p] == '\n' || b[p] == '\r') {
		p++
	}
	return p
}

// stringEnd returns the index just past the JSON string starting at p, or -1.
func stringEnd(b []byte, p int) int {
	if p >= len(b) || b[p] != '"' {
		return -1
	}
	for i := p + 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// valueEnd returns the index just past the JSON value starting at p, or -1.
// The body was validated by validJSON, so only extents are tracked.
func valueEnd(b []byte, p int) int {
	if p >= len(b) {
		return -1
	}
	switch b[p] {
	case '"':
		return stringEnd(b, p)
	case '{', '[':
		depth := 0
		for i := p; i < len(b); i++ {
			switch b[i] {
			case '"':
				e := stringEnd(b, i)
				if e < 0 {
					return -1
				}
				i = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	default: // number, true, false, null
		i := p
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
		if i == p {
			return -1
		}
		return i
	}
}

// validJSON reports whether body is one JSON value, as encoding/json's
// Valid does (FuzzValidJSON holds them to the same answers). segmentio's
// validator takes a fifth of the time: encoding/json's was a fifth of
// the archiver's CPU (docs/benchmarks.md).
func validJSON(body []byte) bool { return validjson.Valid(body) }
