package segment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func secretLine(text string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "AGE-SECRET-KEY-1") {
			return l
		}
	}
	return ""
}

func TestParseKeyring(t *testing.T) {
	k1, k2 := mustGenerateKey(t), mustGenerateKey(t)
	s1, s2 := secretLine(k1), secretLine(k2)
	one := mustKeyring(t, k1)
	two := mustKeyring(t, k2)
	for _, tc := range []struct {
		name string
		text string
		ids  []string
	}{
		{"generated file", k1, []string{one.ActiveID()}},
		{"two keys, first active", k2 + "\n" + k1, []string{two.ActiveID(), one.ActiveID()}},
		{"comma separated env var", s1 + "," + s2, []string{one.ActiveID(), two.ActiveID()}},
		{"space separated, CRLF", s2 + " " + s1 + "\r\n", []string{two.ActiveID(), one.ActiveID()}},
		{"lower case", strings.ToLower(s1), []string{one.ActiveID()}},
		{"duplicates dropped", s1 + "\n" + s1, []string{one.ActiveID()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseKeyring(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(k.IDs()) != fmt.Sprint(tc.ids) || k.ActiveID() != tc.ids[0] {
				t.Fatalf("ids %v, want %v", k.IDs(), tc.ids)
			}
		})
	}
	for _, bad := range []string{"", "# only a comment\n", "age1qqqq", s1[:len(s1)-3] + "qqq", s1 + "\nnonsense"} {
		k, err := ParseKeyring(bad)
		if err == nil {
			t.Errorf("ParseKeyring(%q) = %v, want error", bad, k)
			continue
		}
		if strings.Contains(err.Error(), s1[16:]) {
			t.Errorf("error leaks key material: %v", err)
		}
	}
}

func TestKeyring_NoLeak(t *testing.T) {
	k := mustGenerateKey(t)
	ring := mustKeyring(t, k)
	secret := secretLine(k)
	for _, s := range []string{fmt.Sprint(ring), fmt.Sprintf("%v %+v %#v %s", ring, ring, ring, ring),
		fmt.Sprintf("%+v", WriterOptions{Keyring: ring}), fmt.Sprintf("%#v", ReadOptions{Keyring: ring})} {
		if strings.Contains(strings.ToUpper(s), secret[16:]) {
			t.Fatalf("formatting leaks the key: %s", s)
		}
	}
	if !strings.Contains(fmt.Sprint(ring), ring.ActiveID()) {
		t.Fatalf("String %q does not name the key id", ring)
	}
}

func TestGenerateKey(t *testing.T) {
	text := mustGenerateKey(t)
	ring := mustKeyring(t, text)
	if !strings.Contains(text, "# key id: "+ring.ActiveID()) || !strings.Contains(text, "# public key: "+ring.ActiveRecipient()) {
		t.Fatalf("key file text lacks id/public key comments:\n%s", text)
	}
	if KeyID(ring.ActiveRecipient()) != ring.ActiveID() || len(ring.ActiveID()) != 16 {
		t.Fatalf("key id %q", ring.ActiveID())
	}
	if other := mustKeyring(t, mustGenerateKey(t)); other.ActiveID() == ring.ActiveID() {
		t.Fatal("two generated keys share an id")
	}
}

func TestLoadKeyring(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	text := mustGenerateKey(t)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKeyring(path)
	if err != nil || k.ActiveID() != mustKeyring(t, text).ActiveID() {
		t.Fatalf("LoadKeyring = %v, %v", k, err)
	}
	if _, err := LoadKeyring(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile(path, []byte("# no keys here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyring(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("empty key file: %v", err)
	}
}

func TestDecode_KeyRotation(t *testing.T) {
	oldKey, newKey := mustGenerateKey(t), mustGenerateKey(t)
	events := newGen(6, 5).events(50)
	oldRing := mustKeyring(t, oldKey)
	oldSeg, _ := encode(t, WriterOptions{Keyring: oldRing}, events)

	// After rotation the new key is active and the old one still decrypts.
	rotated := mustKeyring(t, newKey, oldKey)
	newSeg, _ := encode(t, WriterOptions{Keyring: rotated}, events)
	for name, data := range map[string][]byte{"old": oldSeg, "new": newSeg} {
		seg, err := Decode(name, data, ReadOptions{Keyring: rotated})
		if err != nil || len(seg.Events) != len(events) {
			t.Fatalf("%s segment after rotation: %v", name, err)
		}
	}
	if h, _, _ := ReadTrailer("new", newSeg, ReadOptions{Keyring: rotated}); h.KeyID != mustKeyring(t, newKey).ActiveID() {
		t.Fatalf("new segment key id %s, want the new key's", h.KeyID)
	}

	// Dropping the old key makes old segments unreadable, with a clear error.
	onlyNew := mustKeyring(t, newKey)
	for _, opts := range []ReadOptions{{Keyring: onlyNew}, {}} {
		_, err := Decode("segments/2026/old.tms", oldSeg, opts)
		var ke *KeyError
		if !errors.Is(err, ErrNoKey) || !errors.As(err, &ke) || !ke.Missing || errors.Is(err, ErrCorrupt) {
			t.Fatalf("missing key: %v", err)
		}
		want := "segment segments/2026/old.tms encrypted with key " + oldRing.ActiveID() +
			", which is not in the keyring; add the old key to --encryption-key-file"
		if err.Error() != want {
			t.Fatalf("error %q\nwant  %q", err, want)
		}
		if _, _, err := ReadTrailer("old", oldSeg, opts); !errors.Is(err, ErrNoKey) {
			t.Fatalf("ReadTrailer missing key: %v", err)
		}
	}
}

func TestDecode_WrongKey(t *testing.T) {
	// A keyring whose entry carries the segment's key id but a different
	// identity, as a tampered or mis-assembled keyring would.
	right, wrong := mustKeyring(t, mustGenerateKey(t)), mustKeyring(t, mustGenerateKey(t))
	data, _ := encode(t, WriterOptions{Keyring: right}, newGen(7, 5).events(10))
	forged := &Keyring{keys: []keyringKey{{id: right.ActiveID(), identity: wrong.keys[0].identity, recipient: wrong.keys[0].recipient}}}
	_, err := Decode("seg", data, ReadOptions{Keyring: forged})
	var ke *KeyError
	if !errors.Is(err, ErrNoKey) || !errors.As(err, &ke) || ke.Missing || !strings.Contains(err.Error(), right.ActiveID()) {
		t.Fatalf("wrong key: %v", err)
	}
	if !strings.Contains(err.Error(), "does not decrypt") {
		t.Fatalf("wrong key error unclear: %v", err)
	}
}

func TestDecode_PlaintextNeedsNoKeyring(t *testing.T) {
	data, _ := encode(t, WriterOptions{}, newGen(8, 5).events(10))
	if _, err := Decode("p", data, ReadOptions{Keyring: mustKeyring(t, mustGenerateKey(t))}); err != nil {
		t.Fatal(err)
	}
}
