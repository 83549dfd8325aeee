package objstore

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalidKey: the key is not a valid object key (see ValidateKey).
var ErrInvalidKey = errors.New("invalid object key")

// MaxKeyLength is the longest key a Store accepts, in bytes (S3's limit).
const MaxKeyLength = 1024

// TempPrefix starts the name of the temporary files the file backend
// writes before renaming them into place; no key segment may start with it.
const TempPrefix = ".tidemark-tmp-"

// ValidateKey checks that key is a relative, slash-separated path every
// backend can store under the same name: valid UTF-8, at most MaxKeyLength
// bytes, no leading or trailing slash, no empty, "." or ".." segment, no
// NUL or backslash, and no segment starting with TempPrefix. Backends call it
// on every key they are given and return an error wrapping ErrInvalidKey.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(key) > MaxKeyLength:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidKey, MaxKeyLength)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidKey)
	case strings.ContainsAny(key, "\x00\\"):
		return fmt.Errorf("%w: contains NUL or backslash", ErrInvalidKey)
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("%w: absolute path", ErrInvalidKey)
	}
	for _, seg := range strings.Split(key, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w: empty path segment", ErrInvalidKey)
		case seg == "." || seg == "..":
			return fmt.Errorf("%w: %q path segment", ErrInvalidKey, seg)
		case strings.HasPrefix(seg, TempPrefix):
			return fmt.Errorf("%w: segment starts with the reserved %q", ErrInvalidKey, TempPrefix)
		}
	}
	return nil
}
