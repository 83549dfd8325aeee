package segment

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"unsafe"

	"filippo.io/age"

	"github.com/tidemark/tidemark/internal/event"
)

// ReadOptions configures Decode and ReadTrailer.
type ReadOptions struct {
	// Keyring decrypts encrypted segments, picking the key by the header's
	// key id; nil reads plaintext segments only.
	Keyring *Keyring
	// MaxRawBytes caps the decompressed records, and separately the memory
	// for decoded event structures; 0 (or less) means DefaultMaxRawBytes (1 GiB).
	MaxRawBytes int64
}

func (o *ReadOptions) maxRaw() int64 {
	if o.MaxRawBytes <= 0 {
		return DefaultMaxRawBytes
	}
	return o.MaxRawBytes
}

// verified is a segment whose checksums and authentication have been
// checked, split into its parts.
type verified struct {
	header  Header
	trailer Trailer // stored trailer plus StoredBytes and SHA256
	body    []byte  // compressed records
}

// Decode verifies the segment in data (the object named name) and decodes
// all its events. Nothing is returned unless the SHA-256 (and, when
// encrypted, the age authentication), the header binding and the trailer's
// summary of the events all check out. Damage is a *CorruptError (ErrCorrupt);
// a missing or wrong key is a *KeyError (ErrNoKey). The events' Values alias
// memory owned by the returned Segment (and, for uncompressed plaintext
// segments, data itself).
func Decode(name string, data []byte, opts ReadOptions) (*Segment, error) {
	v, err := verify(name, data, opts)
	if err != nil {
		return nil, err
	}
	events, err := decodeEvents(name, v, opts.maxRaw())
	if err != nil {
		return nil, err
	}
	return &Segment{Header: v.header, Trailer: v.trailer, Events: events}, nil
}

// ReadTrailer verifies the segment like Decode (SHA-256, age authentication,
// header binding) and returns its header and trailer without decompressing
// the events; the trailer is not cross-checked against them.
func ReadTrailer(name string, data []byte, opts ReadOptions) (*Header, *Trailer, error) {
	v, err := verify(name, data, opts)
	if err != nil {
		return nil, nil, err
	}
	return &v.header, &v.trailer, nil
}

// verify checks the envelope, footer and checksum, parses the header,
// decrypts if needed and parses the trailer.
func verify(name string, data []byte, opts ReadOptions) (*verified, error) {
	if len(data) < prefixLen+footerLen {
		return nil, corruptf(name, "truncated: %d bytes, less than the %d-byte prefix and footer", len(data), prefixLen+footerLen)
	}
	if string(data[:len(Magic)]) != Magic {
		return nil, corruptf(name, "bad magic: not a tidemark segment")
	}
	if data[5] != Version {
		return nil, corruptf(name, "unsupported format version %d (this reader reads %d)", data[5], Version)
	}
	flags := data[6]
	if flags&^flagEncrypted != 0 || data[7] != 0 {
		return nil, corruptf(name, "unknown flags %#02x/%#02x", flags, data[7])
	}
	hlen := uint64(binary.BigEndian.Uint32(data[8:prefixLen]))
	if hlen > maxHeaderLen || hlen > uint64(len(data)-prefixLen-footerLen) {
		return nil, corruptf(name, "header length %d exceeds object or limit", hlen)
	}
	envEnd := prefixLen + int(hlen)
	foot := data[len(data)-footerLen:]
	if string(foot[40:]) != EndMagic {
		return nil, corruptf(name, "no end magic: truncated or extended")
	}
	if sl := binary.BigEndian.Uint64(foot[:8]); sl != uint64(len(data)-footerLen-envEnd) {
		return nil, corruptf(name, "sealed length %d does not match object size %d", sl, len(data))
	}
	h := sha256.New()
	h.Write(data[:len(data)-footerLen])
	if !bytes.Equal(h.Sum(nil), foot[8:40]) {
		return nil, corruptf(name, "checksum mismatch")
	}
	h.Write(foot)
	whole := hex.EncodeToString(h.Sum(nil))

	header, err := parseHeader(name, data[prefixLen:envEnd], flags)
	if err != nil {
		return nil, err
	}
	inner := data[envEnd : len(data)-footerLen]
	if header.KeyID != "" {
		if inner, err = decrypt(name, header.KeyID, inner, opts.Keyring); err != nil {
			return nil, err
		}
	}
	if len(inner) < trailerLenSize {
		return nil, corruptf(name, "inner section of %d bytes has no trailer length", len(inner))
	}
	tlen := uint64(binary.BigEndian.Uint32(inner[len(inner)-trailerLenSize:]))
	if tlen > maxTrailerLen || tlen > uint64(len(inner)-trailerLenSize) {
		return nil, corruptf(name, "trailer length %d exceeds section or limit", tlen)
	}
	tstart := len(inner) - trailerLenSize - int(tlen)
	trailer, err := parseTrailer(name, inner[tstart:len(inner)-trailerLenSize], data[:envEnd])
	if err != nil {
		return nil, err
	}
	trailer.StoredBytes, trailer.SHA256 = int64(len(data)), whole
	return &verified{header: *header, trailer: *trailer, body: inner[:tstart]}, nil
}

func parseHeader(name string, b []byte, flags byte) (*Header, error) {
	var hj headerJSON
	if err := json.Unmarshal(b, &hj); err != nil {
		return nil, &CorruptError{Object: name, Reason: "header", Err: err}
	}
	switch {
	case hj.Version != Version:
		return nil, corruptf(name, "header version %d, envelope %d", hj.Version, Version)
	case hj.Compression == nil:
		return nil, corruptf(name, "header has no compression")
	case (flags&flagEncrypted != 0) != (hj.KeyID != ""):
		return nil, corruptf(name, "encryption flag and header key id disagree")
	case hj.KeyID != "" && !isKeyID(hj.KeyID):
		return nil, corruptf(name, "malformed key id")
	case hj.Table.Name == "" || len(hj.Table.Columns) == 0 || len(hj.Table.Columns) > maxColumns:
		return nil, corruptf(name, "header table %q has %d columns", hj.Table.QualifiedName(), len(hj.Table.Columns))
	}
	h := hj.header()
	return &h, nil
}

func isKeyID(s string) bool {
	if len(s) != 16 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func parseTrailer(name string, b, envelope []byte) (*Trailer, error) {
	var tj trailerJSON
	if err := json.Unmarshal(b, &tj); err != nil {
		return nil, &CorruptError{Object: name, Reason: "trailer", Err: err}
	}
	sum := sha256.Sum256(envelope)
	switch {
	case tj.HeaderSHA256 != hex.EncodeToString(sum[:]):
		return nil, corruptf(name, "header does not match the trailer's header_sha256 (header replaced?)")
	case tj.Events < 0 || tj.Transactions < 0 || tj.RawBytes < 0 || tj.Transactions > tj.Events:
		return nil, corruptf(name, "trailer counts out of range")
	case (tj.Events > 0) != (tj.MinCommitTimeUS != nil && tj.MaxCommitTimeUS != nil):
		return nil, corruptf(name, "trailer commit times missing or unexpected")
	case tj.Events > 0 && tj.Transactions == 0:
		return nil, corruptf(name, "trailer has events but no transactions")
	}
	if len(tj.Streams) == 0 {
		tj.Streams = nil
	}
	t := tj.trailer()
	return &t, nil
}

// decrypt opens the age file sealed with the keyring's key keyID.
func decrypt(name, keyID string, sealed []byte, k *Keyring) ([]byte, error) {
	key := k.lookup(keyID)
	if key == nil {
		return nil, &KeyError{Object: name, KeyID: keyID, Missing: true}
	}
	ra, size, err := age.DecryptReaderAt(bytes.NewReader(sealed), int64(len(sealed)), key.identity)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, &KeyError{Object: name, KeyID: keyID}
		}
		return nil, &CorruptError{Object: name, Reason: "decrypt", Err: err}
	}
	if size < 0 || size > int64(len(sealed)) {
		return nil, corruptf(name, "decrypted size %d out of range", size)
	}
	inner := make([]byte, size)
	if n, err := ra.ReadAt(inner, 0); n != len(inner) || (err != nil && !errors.Is(err, io.EOF)) {
		return nil, &CorruptError{Object: name, Reason: "decrypt", Err: err}
	}
	return inner, nil
}

// Memory accounting for the decoded structures.
const (
	eventSize = int64(unsafe.Sizeof(event.Event{})) + 8 // struct + pointer
	valueSize = int64(unsafe.Sizeof([]byte(nil)))
)

// decodeEvents decompresses and parses v's records and checks them against
// the trailer.
func decodeEvents(name string, v *verified, maxRaw int64) ([]*event.Event, error) {
	t := &v.trailer
	ncols := int64(len(v.header.Table.Columns))
	switch {
	case t.RawBytes > maxRaw:
		return nil, corruptf(name, "declares %d raw bytes, above the limit of %d (ReadOptions.MaxRawBytes)", t.RawBytes, maxRaw)
	case int64(t.Events) > t.RawBytes/(minRecordLen+ncols):
		return nil, corruptf(name, "declares %d events, more than %d raw bytes can hold", t.Events, t.RawBytes)
	case int64(t.Events) > maxRaw/(eventSize+ncols*valueSize):
		return nil, corruptf(name, "%d events of %d columns need more than %d bytes (ReadOptions.MaxRawBytes)", t.Events, ncols, maxRaw)
	}
	raw, err := decompress(v.header.Compression, v.body, int(t.RawBytes))
	if err != nil {
		return nil, &CorruptError{Object: name, Reason: "decompress " + v.header.Compression.String() + " body", Err: err}
	}
	n, nc := t.Events, int(ncols)
	evs := make([]event.Event, n)
	ptrs := make([]*event.Event, n)
	vals := make([][]byte, n*nc)
	qname := v.header.Table.QualifiedName()
	sum := newSummary(v.header.Table)
	r := recordReader{buf: raw}
	for i := 0; r.off < len(raw); i++ {
		if i >= n {
			return nil, corruptf(name, "body holds more than the trailer's %d events", n)
		}
		e := &evs[i]
		e.Table, e.Values = qname, vals[i*nc:(i+1)*nc:(i+1)*nc]
		start := r.off
		if reason := r.next(e); reason != "" {
			return nil, corruptf(name, "record %d at raw offset %d: %s", i, start, reason)
		}
		if err := sum.check(e); err != nil {
			return nil, corruptf(name, "record %d: %v", i, err)
		}
		sum.add(e, r.off-start)
		ptrs[i] = e
	}
	got := sum.trailer()
	if d := diffTrailer(t, &got); d != "" {
		return nil, corruptf(name, "trailer disagrees with events: %s", d)
	}
	return ptrs, nil
}
