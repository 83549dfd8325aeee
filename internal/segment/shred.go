package segment

import (
	"encoding/hex"
	"encoding/json"
)

// uuidTextLen is the length of a UUID's text form, 8-4-4-4-12 hex digits.
const uuidTextLen = 36

// parseUUIDText returns the 16 bytes of v when v is a UUID in the
// canonical text form PostgreSQL prints (lower-case hex, hyphens at 8, 13,
// 18 and 23), so that appendUUIDText gives v back exactly.
func parseUUIDText(v []byte) ([16]byte, bool) {
	var u [16]byte
	if len(v) != uuidTextLen || v[8] != '-' || v[13] != '-' || v[18] != '-' || v[23] != '-' {
		return u, false
	}
	j := 0
	for i := 0; i < uuidTextLen; i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		h, ok := lowerHex(v[i])
		l, ok2 := lowerHex(v[i+1])
		if !ok || !ok2 {
			return u, false
		}
		u[j] = h<<4 | l
		j++
		i++
	}
	return u, true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// appendUUIDText appends the canonical text form of the 16 bytes in u.
func appendUUIDText(dst, u []byte) []byte {
	var b [uuidTextLen]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return append(dst, b[:]...)
}

// placeholder marks where a skeleton's literals go. It cannot occur
// elsewhere in valid JSON text, where control characters must be escaped.
const placeholder = 0x00

// shredJSON splits v, when it is a JSON object or array, into its skeleton
// — v with every scalar value (the text between a string value's quotes,
// a number, true, false, null) replaced by the placeholder byte — and those
// values, the literals, in order; object keys, punctuation and whitespace
// stay in the skeleton. Filling the placeholders with the literals gives v
// back. It appends to skel and lits and reports false, appending nothing,
// for anything else.
func shredJSON(v []byte, skel []byte, lits [][]byte) ([]byte, [][]byte, bool) {
	if len(v) == 0 || (v[0] != '{' && v[0] != '[') || !json.Valid(v) {
		return skel, lits, false
	}
	s0, l0 := len(skel), len(lits)
	for i := 0; i < len(v); {
		switch c := v[i]; {
		case c == placeholder:
			return skel[:s0], lits[:l0], false // only inside a string
		case c == '"':
			end := stringEnd(v, i)
			if isKey(v, end) {
				skel = append(skel, v[i:end]...)
			} else {
				skel = append(skel, '"', placeholder, '"')
				lits = append(lits, v[i+1:end-1:end-1])
			}
			i = end
		case c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z':
			end := i + 1
			for end < len(v) && isScalarByte(v[end]) {
				end++
			}
			skel = append(skel, placeholder)
			lits = append(lits, v[i:end:end])
			i = end
		default:
			skel = append(skel, c)
			i++
		}
	}
	return skel, lits, true
}

// stringEnd returns the offset after the string starting at v[i] ('"');
// v is valid JSON.
func stringEnd(v []byte, i int) int {
	for j := i + 1; ; j++ {
		switch v[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		case placeholder:
			return len(v) // invalid JSON; json.Valid has excluded it
		}
	}
}

// isKey reports whether the string ending before v[end] is an object key:
// a colon follows it.
func isKey(v []byte, end int) bool {
	for ; end < len(v); end++ {
		switch v[end] {
		case ' ', '\t', '\n', '\r':
		case ':':
			return true
		default:
			return false
		}
	}
	return false
}

func isScalarByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || c == '-' || c == '+' || c == '.' || c == 'E'
}
