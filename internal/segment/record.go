package segment

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/tidemark/tidemark/internal/event"
)

// Event record layout (inside the decompressed body), all integers varints
// as in encoding/binary:
//
//	record_len uvarint, then record_len bytes:
//	commit_lsn uvarint | end_lsn uvarint | prev_lsn uvarint |
//	commit_time_us varint (zig-zag) | xid uvarint | index uvarint | count uvarint |
//	flags byte (bit 0 snapshot) | ncols uvarint |
//	ncols × ( v uvarint: 0 = NULL, else v-1 bytes of text follow )
const (
	recFlagSnapshot = 0x01
	// minRecordLen is the smallest record with zero columns, length prefix
	// included; each column adds at least one byte.
	minRecordLen = 10
	// maxIndex bounds Index and Count when decoding.
	maxIndex = math.MaxInt32
)

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func varintLen(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return uvarintLen(u)
}

// payloadSize returns the length of e's record payload (without the
// record_len prefix) in the canonical encoding appendRecord writes.
func payloadSize(e *event.Event) int {
	size := uvarintLen(uint64(e.CommitLSN)) + uvarintLen(uint64(e.EndLSN)) + uvarintLen(uint64(e.PrevLSN)) +
		varintLen(e.CommitTime.UnixMicro()) + uvarintLen(uint64(e.XID)) + uvarintLen(uint64(e.Index)) +
		uvarintLen(uint64(e.Count)) + 1 + uvarintLen(uint64(len(e.Values)))
	for _, v := range e.Values {
		if v == nil {
			size++
		} else {
			size += uvarintLen(uint64(len(v))+1) + len(v)
		}
	}
	return size
}

// recordSize returns the length of e's canonical record, prefix included:
// what it adds to a trailer's raw_bytes.
func recordSize(e *event.Event) int {
	p := payloadSize(e)
	return uvarintLen(uint64(p)) + p
}

// appendRecord appends e's record to dst and returns it with the record's length.
func appendRecord(dst []byte, e *event.Event) ([]byte, int) {
	us := e.CommitTime.UnixMicro()
	size := payloadSize(e)
	start := len(dst)
	dst = binary.AppendUvarint(dst, uint64(size))
	dst = binary.AppendUvarint(dst, uint64(e.CommitLSN))
	dst = binary.AppendUvarint(dst, uint64(e.EndLSN))
	dst = binary.AppendUvarint(dst, uint64(e.PrevLSN))
	dst = binary.AppendVarint(dst, us)
	dst = binary.AppendUvarint(dst, uint64(e.XID))
	dst = binary.AppendUvarint(dst, uint64(e.Index))
	dst = binary.AppendUvarint(dst, uint64(e.Count))
	var flags byte
	if e.Snapshot {
		flags |= recFlagSnapshot
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(e.Values)))
	for _, v := range e.Values {
		if v == nil {
			dst = append(dst, 0)
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(len(v))+1)
		dst = append(dst, v...)
	}
	return dst, len(dst) - start
}

// recordReader decodes records from a decompressed body. Values alias buf.
type recordReader struct {
	buf []byte
	off int
	end int // end of the current record
}

// uvarint reads a uvarint that must end within the current record.
func (r *recordReader) uvarint() (uint64, bool) {
	if r.off < r.end && r.buf[r.off] < 0x80 {
		v := uint64(r.buf[r.off])
		r.off++
		return v, true
	}
	v, n := binary.Uvarint(r.buf[r.off:r.end])
	if n <= 0 {
		return 0, false
	}
	r.off += n
	return v, true
}

// next decodes the record at r.off into e, whose Values must have ncols
// entries, and returns "" or why the record is invalid.
func (r *recordReader) next(e *event.Event) string {
	r.end = len(r.buf)
	l, ok := r.uvarint()
	if !ok {
		return "bad record length"
	}
	if l > uint64(len(r.buf)-r.off) {
		return "record length exceeds body"
	}
	r.end = r.off + int(l)
	var f [7]uint64
	for i := range 3 {
		if f[i], ok = r.uvarint(); !ok {
			return "truncated position"
		}
	}
	us, n := binary.Varint(r.buf[r.off:r.end])
	if n <= 0 {
		return "bad commit time"
	}
	r.off += n
	for i := 3; i < 6; i++ {
		if f[i], ok = r.uvarint(); !ok {
			return "truncated transaction fields"
		}
	}
	if f[3] > math.MaxUint32 || f[4] > maxIndex || f[5] > maxIndex {
		return "transaction fields out of range"
	}
	if r.off >= r.end {
		return "truncated flags"
	}
	flags := r.buf[r.off]
	r.off++
	if flags&^recFlagSnapshot != 0 {
		return "unknown record flags"
	}
	ncols, ok := r.uvarint()
	if !ok || ncols != uint64(len(e.Values)) {
		return "column count does not match the table"
	}
	for i := range e.Values {
		v, ok := r.uvarint()
		if !ok {
			return "truncated value length"
		}
		if v == 0 {
			e.Values[i] = nil
			continue
		}
		if v-1 > uint64(r.end-r.off) {
			return "value length exceeds record"
		}
		end := r.off + int(v-1)
		e.Values[i] = r.buf[r.off:end:end]
		r.off = end
	}
	if r.off != r.end {
		return "trailing bytes in record"
	}
	e.CommitLSN, e.EndLSN, e.PrevLSN = event.Position(f[0]), event.Position(f[1]), event.Position(f[2])
	e.CommitTime = time.UnixMicro(us).UTC()
	e.XID, e.Index, e.Count = uint32(f[3]), int(f[4]), int(f[5])
	e.Snapshot = flags&recFlagSnapshot != 0
	return ""
}
