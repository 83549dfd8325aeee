package feed

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Large column values travel outside the event message: capture puts each
// one into the JetStream object store ValuesBucket(stream) under
// ValueObjectName(msgID, column) and publishes the event with that
// column's value null and the HeaderExternal header naming the column, the
// value's size and its SHA-256. docs/feed.md, "Large values", specifies
// how a consumer puts the value back.
const (
	// HeaderExternal lists the external columns of an event message:
	// "<column>=<size>:<sha256 hex>[,...]", columns ascending.
	HeaderExternal = "Tidemark-External"
	// MaxExternalSize bounds the size an external value may claim: one
	// PostgreSQL field holds at most 1 GB, so anything larger is not a
	// value capture wrote (the header is untrusted input).
	MaxExternalSize = 1 << 30
	// maxExternalColumn bounds a column index in the header (PostgreSQL
	// tables have at most 1600 columns).
	maxExternalColumn = 1600
)

// ExternalValue is one column value carried outside its event message.
type ExternalValue struct {
	Column int   // 0-based index in the table definition
	Size   int64 // bytes of the value (its PostgreSQL text form)
	SHA256 [32]byte
}

// ValuesBucket returns the object store bucket holding the external
// values of a stream's events.
func ValuesBucket(stream string) string { return stream + "_VALUES" }

// ValueObjectName returns the object name of one external value: the
// event's Nats-Msg-Id, a dot and the column index. It is deterministic, so
// a re-sent event names the same object.
func ValueObjectName(msgID string, column int) string {
	return msgID + "." + strconv.Itoa(column)
}

// EncodeExternal renders the HeaderExternal value of vs, which must be
// sorted by column with no column twice.
func EncodeExternal(vs []ExternalValue) string {
	var b strings.Builder
	b.Grow(len(vs) * 80)
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(v.Column))
		b.WriteByte('=')
		b.WriteString(strconv.FormatInt(v.Size, 10))
		b.WriteByte(':')
		b.WriteString(hex.EncodeToString(v.SHA256[:]))
	}
	return b.String()
}

var errExternalSyntax = errors.New(`want "<column>=<size>:<sha256 hex>[,...]", columns ascending`)

// ParseExternal parses a HeaderExternal value of an event whose table has
// ncols columns. It accepts only what EncodeExternal writes: decimal
// numbers without sign or leading zeros, 64 lower-case hex digits, columns
// strictly ascending and below ncols, sizes at most MaxExternalSize.
func ParseExternal(s string, ncols int) ([]ExternalValue, error) {
	if s == "" {
		return nil, fmt.Errorf("header %s: empty: %w", HeaderExternal, errExternalSyntax)
	}
	parts := strings.Split(s, ",")
	if len(parts) > min(ncols, maxExternalColumn) {
		return nil, fmt.Errorf("header %s: %d values for %d columns", HeaderExternal, len(parts), ncols)
	}
	out := make([]ExternalValue, 0, len(parts))
	for _, p := range parts {
		col, rest, ok1 := strings.Cut(p, "=")
		size, sum, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("header %s: %q: %w", HeaderExternal, p, errExternalSyntax)
		}
		c, ok := parseDecimal(col, maxExternalColumn)
		if !ok || c >= int64(ncols) {
			return nil, fmt.Errorf("header %s: column %q: want an index below %d", HeaderExternal, col, ncols)
		}
		n, ok := parseDecimal(size, MaxExternalSize)
		if !ok {
			return nil, fmt.Errorf("header %s: size %q: want a decimal number up to %d", HeaderExternal, size, MaxExternalSize)
		}
		v := ExternalValue{Column: int(c), Size: n}
		if len(sum) != 2*len(v.SHA256) || strings.ToLower(sum) != sum {
			return nil, fmt.Errorf("header %s: digest %q: want 64 lower-case hex digits", HeaderExternal, sum)
		}
		if _, err := hex.Decode(v.SHA256[:], []byte(sum)); err != nil {
			return nil, fmt.Errorf("header %s: digest %q: %w", HeaderExternal, sum, err)
		}
		if len(out) > 0 && v.Column <= out[len(out)-1].Column {
			return nil, fmt.Errorf("header %s: column %d after %d: %w", HeaderExternal, v.Column, out[len(out)-1].Column, errExternalSyntax)
		}
		out = append(out, v)
	}
	return out, nil
}

// parseDecimal parses a canonical non-negative decimal number up to limit.
func parseDecimal(s string, limit int64) (int64, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' || len(s) > 19 {
		return 0, false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v > limit {
		return 0, false
	}
	return v, true
}
