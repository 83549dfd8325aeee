package segment

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
)

// hashChunk is how much of the object verification reads at a time when it
// is not in memory.
const hashChunk = 256 << 10

// source is a stored object, or a section of one, read by offset. data holds
// the bytes when they are in memory (Decode), so reads slice instead of copy.
type source struct {
	r    io.ReaderAt
	size int64
	data []byte
}

func memSource(data []byte) source {
	return source{r: bytes.NewReader(data), size: int64(len(data)), data: data}
}

// readError marks an error of the underlying io.ReaderAt, which is not
// corruption: the caller may retry.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// checkedReaderAt reports every failure of r inside [0, size) as a
// *readError, including a short read: the object is shorter than its caller
// said, which is an I/O problem, not damage the format can see.
type checkedReaderAt struct {
	r    io.ReaderAt
	size int64
}

func (c checkedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > c.size {
		return 0, &readError{fmt.Errorf("read at %d outside the object's %d bytes", off, c.size)}
	}
	want := min(int64(len(p)), c.size-off)
	n, err := c.r.ReadAt(p[:want], off)
	if int64(n) == want {
		if want < int64(len(p)) {
			return n, io.EOF
		}
		return n, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return n, &readError{err}
}

// read returns n bytes at off: a sub-slice when in memory, else a new buffer.
func (s source) read(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off+n > s.size {
		return nil, fmt.Errorf("read [%d, %d) outside %d bytes", off, off+n, s.size)
	}
	if s.data != nil {
		return s.data[off : off+n : off+n], nil
	}
	buf := make([]byte, n)
	if _, err := s.r.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf, nil
}

// section returns bytes [off, off+n) as a source of their own.
func (s source) section(off, n int64) source {
	sec := source{r: io.NewSectionReader(s.r, off, n), size: n}
	if s.data != nil {
		sec.data = s.data[off : off+n : off+n]
	}
	return sec
}

// verified is a segment whose checksums and authentication have been
// checked, split into its parts.
type verified struct {
	header  Header
	trailer Trailer // stored trailer plus StoredBytes and SHA256
	body    source  // the body (compressed records), plaintext
}

// readFailure turns an error met while reading src into the error the caller
// sees: an I/O error of the underlying reader as is, anything else as
// corruption with reason.
func readFailure(name, reason string, err error) error {
	var re *readError
	if errors.As(err, &re) {
		return fmt.Errorf("read segment %s: %w", name, re.err)
	}
	return &CorruptError{Object: name, Reason: reason, Err: err}
}

// verify performs steps 1–9 of docs/segment-format.md §4: it checks the
// envelope, footer and checksum, parses the header, decrypts if needed and
// parses the trailer. With src in memory the body is in memory too
// (decrypted into a buffer when encrypted); otherwise it is read on demand,
// decrypting with age chunk by chunk, each chunk authenticated as it is read.
func verify(name string, src source, opts ReadOptions) (*verified, error) {
	if src.data == nil {
		src.r = checkedReaderAt{r: src.r, size: src.size}
	}
	if src.size < prefixLen+footerLen {
		return nil, corruptf(name, "truncated: %d bytes, less than the %d-byte prefix and footer", src.size, prefixLen+footerLen)
	}
	prefix, err := src.read(0, prefixLen)
	if err != nil {
		return nil, readFailure(name, "read prefix", err)
	}
	flags, hlen, err := checkPrefix(name, prefix, src.size)
	if err != nil {
		return nil, err
	}
	envEnd := prefixLen + hlen
	whole, err := checkFooter(name, src, envEnd)
	if err != nil {
		return nil, err
	}
	env, err := src.read(0, envEnd)
	if err != nil {
		return nil, readFailure(name, "read header", err)
	}
	header, err := parseHeader(name, env[prefixLen:], env[5], flags)
	if err != nil {
		return nil, err
	}
	inner := src.section(envEnd, src.size-footerLen-envEnd)
	if header.KeyID != "" {
		if inner, err = decrypt(name, header.KeyID, inner, opts.Keyring); err != nil {
			return nil, err
		}
	}
	trailer, tstart, err := readTrailer(name, inner, env)
	if err != nil {
		return nil, err
	}
	trailer.StoredBytes, trailer.SHA256 = src.size, whole
	return &verified{header: *header, trailer: *trailer, body: inner.section(0, tstart)}, nil
}

// checkPrefix checks magic, version, flags and header length (steps 1–2) and
// returns the flags and the header length.
func checkPrefix(name string, p []byte, size int64) (byte, int64, error) {
	if string(p[:len(Magic)]) != Magic {
		return 0, 0, corruptf(name, "bad magic: not a tidemark segment")
	}
	if p[5] != Version && p[5] != ColumnarVersion {
		return 0, 0, corruptf(name, "unsupported format version %d (this reader reads %d and %d)", p[5], Version, ColumnarVersion)
	}
	flags := p[6]
	if flags&^flagEncrypted != 0 || p[7] != 0 {
		return 0, 0, corruptf(name, "unknown flags %#02x/%#02x", flags, p[7])
	}
	hlen := int64(binary.BigEndian.Uint32(p[8:prefixLen]))
	if hlen > maxHeaderLen || hlen > size-prefixLen-footerLen {
		return 0, 0, corruptf(name, "header length %d exceeds object or limit", hlen)
	}
	return flags, hlen, nil
}

// checkFooter checks the end magic, the sealed length and the checksum
// (steps 3–4) and returns the hex SHA-256 of the whole object.
func checkFooter(name string, src source, envEnd int64) (string, error) {
	foot, err := src.read(src.size-footerLen, footerLen)
	if err != nil {
		return "", readFailure(name, "read footer", err)
	}
	if string(foot[40:]) != EndMagic {
		return "", corruptf(name, "no end magic: truncated or extended")
	}
	if sl := binary.BigEndian.Uint64(foot[:8]); sl != uint64(src.size-footerLen-envEnd) {
		return "", corruptf(name, "sealed length %d does not match object size %d", sl, src.size)
	}
	h := sha256.New()
	if err := hashRange(h, src, src.size-footerLen); err != nil {
		return "", readFailure(name, "read for checksum", err)
	}
	if !bytes.Equal(h.Sum(nil), foot[8:40]) {
		return "", corruptf(name, "checksum mismatch")
	}
	h.Write(foot)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashRange writes src's first n bytes to w, in bounded chunks unless they
// are in memory.
func hashRange(w io.Writer, src source, n int64) error {
	if src.data != nil {
		_, err := w.Write(src.data[:n])
		return err
	}
	_, err := io.CopyBuffer(w, io.NewSectionReader(src.r, 0, n), make([]byte, min(n, hashChunk)+1))
	return err
}

func parseHeader(name string, b []byte, version, flags byte) (*Header, error) {
	var hj headerJSON
	if err := json.Unmarshal(b, &hj); err != nil {
		return nil, &CorruptError{Object: name, Reason: "header", Err: err}
	}
	switch {
	case hj.Version != int(version):
		return nil, corruptf(name, "header version %d, envelope %d", hj.Version, version)
	case hj.Compression == nil:
		return nil, corruptf(name, "header has no compression")
	case (flags&flagEncrypted != 0) != (hj.KeyID != ""):
		return nil, corruptf(name, "encryption flag and header key id disagree")
	case hj.KeyID != "" && !isKeyID(hj.KeyID):
		return nil, corruptf(name, "malformed key id")
	case hj.Level < 0 || hj.Level > MaxLevel:
		return nil, corruptf(name, "header level %d out of range 0..%d", hj.Level, MaxLevel)
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

// decrypt opens the age file in sealed with the keyring's key keyID. In
// memory it decrypts the whole section (authenticating all of it);
// otherwise it returns a source that decrypts and authenticates each 64 KiB
// chunk as it is read (age authenticates the final chunk, and with it the
// size, here).
func decrypt(name, keyID string, sealed source, k *Keyring) (source, error) {
	key := k.lookup(keyID)
	if key == nil {
		return source{}, &KeyError{Object: name, KeyID: keyID, Missing: true}
	}
	ra, size, err := age.DecryptReaderAt(sealed.r, sealed.size, key.identity)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return source{}, &KeyError{Object: name, KeyID: keyID}
		}
		return source{}, readFailure(name, "decrypt", err)
	}
	if size < 0 || size > sealed.size {
		return source{}, corruptf(name, "decrypted size %d out of range", size)
	}
	inner := source{r: ra, size: size}
	if sealed.data == nil {
		return inner, nil
	}
	inner.data = make([]byte, size)
	if n, err := ra.ReadAt(inner.data, 0); int64(n) != size || (err != nil && !errors.Is(err, io.EOF)) {
		return source{}, &CorruptError{Object: name, Reason: "decrypt", Err: err}
	}
	return inner, nil
}

// readTrailer reads and checks the trailer at the end of inner (steps 7–9)
// and returns it with the offset where it starts (the body's length).
func readTrailer(name string, inner source, envelope []byte) (*Trailer, int64, error) {
	if inner.size < trailerLenSize {
		return nil, 0, corruptf(name, "inner section of %d bytes has no trailer length", inner.size)
	}
	tl, err := inner.read(inner.size-trailerLenSize, trailerLenSize)
	if err != nil {
		return nil, 0, readFailure(name, "read trailer length", err)
	}
	tlen := int64(binary.BigEndian.Uint32(tl))
	if tlen > maxTrailerLen || tlen > inner.size-trailerLenSize {
		return nil, 0, corruptf(name, "trailer length %d exceeds section or limit", tlen)
	}
	tstart := inner.size - trailerLenSize - tlen
	tb, err := inner.read(tstart, tlen)
	if err != nil {
		return nil, 0, readFailure(name, "read trailer", err)
	}
	t, err := parseTrailer(name, tb, envelope)
	if err != nil {
		return nil, 0, err
	}
	return t, tstart, nil
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
