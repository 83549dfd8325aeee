package event

import (
	"fmt"
	"strconv"
	"strings"
)

// Position is a PostgreSQL WAL location (LSN). It prints and parses in the
// server's "XXX/XXX" form.
type Position uint64

// String formats p as Postgres does: "16/B374D848".
func (p Position) String() string {
	return fmt.Sprintf("%X/%X", uint32(p>>32), uint32(p))
}

// ParsePosition parses the "XXX/XXX" form.
func ParsePosition(s string) (Position, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("parse position %q: want XXX/XXX", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse position %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse position %q: %w", s, err)
	}
	return Position(h<<32 | l), nil
}

// MarshalText implements encoding.TextMarshaler.
func (p Position) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Position) UnmarshalText(b []byte) error {
	v, err := ParsePosition(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
