package feed

import (
	"fmt"
	"strings"
)

// Subjects builds the subjects of one feed, all under a common prefix.
type Subjects struct {
	// Prefix is the first token(s), "tidemark" by default.
	Prefix string
}

// Event returns the subject of an inserted event:
// <prefix>.events.<schema>.<table>.<event type>.<stream id>, every variable
// part encoded with EncodeToken.
func (s Subjects) Event(schema, table, eventType, streamID string) string {
	var b strings.Builder
	b.Grow(len(s.Prefix) + len(schema) + len(table) + len(eventType) + len(streamID) + 16)
	b.WriteString(s.Prefix)
	b.WriteString(".events.")
	b.WriteString(EncodeToken(schema))
	b.WriteByte('.')
	b.WriteString(EncodeToken(table))
	b.WriteByte('.')
	b.WriteString(EncodeToken(eventType))
	b.WriteByte('.')
	b.WriteString(EncodeToken(streamID))
	return b.String()
}

// Events returns the wildcard that matches every event subject.
func (s Subjects) Events() string { return s.Prefix + ".events.>" }

// Heartbeat returns the subject of capture's heartbeats.
func (s Subjects) Heartbeat() string { return s.Prefix + ".heartbeat" }

// Tamper returns the subject of an UPDATE, DELETE or TRUNCATE seen on a
// captured table: <prefix>.tamper.<schema>.<table>.<op>.
func (s Subjects) Tamper(schema, table, op string) string {
	return fmt.Sprintf("%s.tamper.%s.%s.%s", s.Prefix, EncodeToken(schema), EncodeToken(table), EncodeToken(op))
}

// TamperAll returns the wildcard that matches every tamper subject.
func (s Subjects) TamperAll() string { return s.Prefix + ".tamper.>" }

// All returns the wildcard a stream must cover.
func (s Subjects) All() string { return s.Prefix + ".>" }

// EncodeToken turns an arbitrary string into one NATS subject token.
// ASCII letters, digits, '-' and '_' are kept; every other byte of the UTF-8
// form (dots, spaces, '*', '>', '~', non-ASCII) becomes "~XX" in upper-case
// hex. The empty string becomes "~". The mapping is injective, so a
// consumer can filter on EncodeToken(streamID) exactly.
func EncodeToken(s string) string {
	if s == "" {
		return "~"
	}
	plain := true
	for i := 0; i < len(s); i++ {
		if !tokenSafe(s[i]) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	const hexdigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if tokenSafe(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('~')
		b.WriteByte(hexdigits[c>>4])
		b.WriteByte(hexdigits[c&15])
	}
	return b.String()
}

// DecodeToken reverses EncodeToken.
func DecodeToken(tok string) (string, error) {
	if tok == "~" {
		return "", nil
	}
	if !strings.Contains(tok, "~") {
		return tok, nil
	}
	out := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c != '~' {
			out = append(out, c)
			continue
		}
		if i+2 >= len(tok) {
			return "", fmt.Errorf("decode token %q: truncated escape", tok)
		}
		hi, ok1 := unhex(tok[i+1])
		lo, ok2 := unhex(tok[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("decode token %q: bad escape", tok)
		}
		out = append(out, hi<<4|lo)
		i += 2
	}
	return string(out), nil
}

func tokenSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
