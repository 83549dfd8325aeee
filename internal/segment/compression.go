package segment

import (
	"fmt"
	"strings"
)

// Compression selects how a segment's event records are compressed. The zero
// value is Zstd, the default.
type Compression uint8

const (
	// Zstd compresses with Zstandard (github.com/klauspost/compress/zstd); the default.
	Zstd Compression = iota
	// Gzip compresses with gzip (RFC 1952).
	Gzip
	// None stores the records uncompressed.
	None
)

// String returns the name used in headers and configuration: "zstd", "gzip" or "none".
func (c Compression) String() string {
	switch c {
	case Zstd:
		return "zstd"
	case Gzip:
		return "gzip"
	case None:
		return "none"
	default:
		return fmt.Sprintf("compression(%d)", uint8(c))
	}
}

// ParseCompression parses "zstd", "gzip" or "none" (case-insensitive); the
// empty string means the default, Zstd.
func ParseCompression(s string) (Compression, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "zstd", "zstandard":
		return Zstd, nil
	case "gzip", "gz":
		return Gzip, nil
	case "none", "off", "identity":
		return None, nil
	}
	return 0, fmt.Errorf("parse compression %q: want zstd, gzip or none", s)
}

// MarshalText implements encoding.TextMarshaler.
func (c Compression) MarshalText() ([]byte, error) {
	if c > None {
		return nil, fmt.Errorf("marshal compression: unknown value %d", uint8(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler; unlike ParseCompression
// it accepts only the canonical names, as headers must.
func (c *Compression) UnmarshalText(b []byte) error {
	switch string(b) {
	case "zstd":
		*c = Zstd
	case "gzip":
		*c = Gzip
	case "none":
		*c = None
	default:
		return fmt.Errorf("unmarshal compression %q: unknown", b)
	}
	return nil
}

// checkLevel validates a WriterOptions.Level for c: zstd takes the zstd CLI
// levels 1–22 (mapped to the nearest klauspost preset), gzip 1–9, none only 0;
// 0 always means the default.
func checkLevel(c Compression, level int) error {
	if level == 0 {
		return nil
	}
	switch c {
	case Zstd:
		if level >= 1 && level <= 22 {
			return nil
		}
		return fmt.Errorf("zstd level %d out of range 1..22", level)
	case Gzip:
		if level >= 1 && level <= 9 {
			return nil
		}
		return fmt.Errorf("gzip level %d out of range 1..9", level)
	case None:
		return fmt.Errorf("level %d given without compression", level)
	}
	return fmt.Errorf("unknown compression %d", uint8(c))
}
