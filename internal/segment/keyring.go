package segment

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"filippo.io/age"
)

// maxKeyFileBytes bounds a key file; a keyring holds a handful of 74-byte keys.
const maxKeyFileBytes = 1 << 20

// Keyring holds age X25519 identities. The first (active) one encrypts new
// segments; every one decrypts, selected by the key id a segment records, so
// segments written before a rotation stay readable while the old key is kept.
// Its String and GoString print key ids only, never key material.
type Keyring struct {
	keys []keyringKey
}

type keyringKey struct {
	id        string
	identity  *age.X25519Identity
	recipient *age.X25519Recipient
}

// KeyID returns the key id of an age recipient ("age1…"): the first 16 hex
// digits of the SHA-256 of the recipient string.
func KeyID(recipient string) string {
	sum := sha256.Sum256([]byte(recipient))
	return hex.EncodeToString(sum[:8])
}

// ParseKeyring parses age X25519 identities ("AGE-SECRET-KEY-1…"), one per
// line (several on a line may be separated by spaces or commas, as an
// environment variable may hold them); blank lines and lines starting with
// '#' are ignored. The first key is the active one. Duplicates are dropped.
// Errors never contain key material.
func ParseKeyring(text string) (*Keyring, error) {
	k := &Keyring{}
	seen := map[string]bool{}
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, field := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			if !strings.HasPrefix(strings.ToUpper(field), "AGE-SECRET-KEY-1") {
				return nil, fmt.Errorf("parse keyring: line %d: not an age X25519 identity (want AGE-SECRET-KEY-1…)", n+1)
			}
			id, err := age.ParseX25519Identity(strings.ToUpper(field))
			if err != nil {
				return nil, fmt.Errorf("parse keyring: line %d: malformed age X25519 identity", n+1)
			}
			rcpt := id.Recipient()
			kid := KeyID(rcpt.String())
			if seen[kid] {
				continue
			}
			seen[kid] = true
			k.keys = append(k.keys, keyringKey{id: kid, identity: id, recipient: rcpt})
		}
	}
	if len(k.keys) == 0 {
		return nil, errors.New("parse keyring: no keys")
	}
	return k, nil
}

// LoadKeyring reads a key file (as written by GenerateKey or age-keygen) and
// parses it with ParseKeyring.
func LoadKeyring(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load keyring: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("load keyring %s: %w", path, err)
	}
	if len(b) > maxKeyFileBytes {
		return nil, fmt.Errorf("load keyring %s: larger than %d bytes", path, maxKeyFileBytes)
	}
	k, err := ParseKeyring(string(b))
	if err != nil {
		return nil, fmt.Errorf("load keyring %s: %w", path, err)
	}
	return k, nil
}

// GenerateKey creates a new age X25519 identity and returns it as key-file
// text: comment lines with the creation time, public key and key id, then
// the AGE-SECRET-KEY-1… line. Prepend it to a key file to rotate.
func GenerateKey() (identityText string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	r := id.Recipient().String()
	return fmt.Sprintf("# created: %s\n# public key: %s\n# key id: %s\n%s\n",
		time.Now().UTC().Format(time.RFC3339), r, KeyID(r), id.String()), nil
}

// ActiveID returns the key id of the active key, or "" for an empty keyring.
func (k *Keyring) ActiveID() string {
	if k == nil || len(k.keys) == 0 {
		return ""
	}
	return k.keys[0].id
}

// ActiveRecipient returns the public key ("age1…") of the active key, or "".
func (k *Keyring) ActiveRecipient() string {
	if k == nil || len(k.keys) == 0 {
		return ""
	}
	return k.keys[0].recipient.String()
}

// IDs returns the key ids in keyring order, active first.
func (k *Keyring) IDs() []string {
	if k == nil {
		return nil
	}
	ids := make([]string, len(k.keys))
	for i, key := range k.keys {
		ids[i] = key.id
	}
	return ids
}

// String lists the key ids; it never prints key material.
func (k *Keyring) String() string {
	return "keyring[" + strings.Join(k.IDs(), ",") + "]"
}

// GoString is String, so %#v cannot leak key material either.
func (k *Keyring) GoString() string { return k.String() }

// active returns the key that encrypts, or an error for an empty keyring.
func (k *Keyring) active() (*keyringKey, error) {
	if k == nil || len(k.keys) == 0 {
		return nil, errors.New("keyring has no keys")
	}
	return &k.keys[0], nil
}

// lookup returns the key with id, or nil.
func (k *Keyring) lookup(id string) *keyringKey {
	if k == nil {
		return nil
	}
	for i := range k.keys {
		if k.keys[i].id == id {
			return &k.keys[i]
		}
	}
	return nil
}
