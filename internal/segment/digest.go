package segment

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"

	"github.com/tidemark/tidemark/internal/event"
)

// EventsDigest is a running SHA-256 over a sequence of events, each in its
// canonical record encoding (docs/segment-format.md §2.4, "Events digest"):
// two sequences have the same digest exactly when they hold the same
// events in the same order, however they are stored (format version,
// compression, encryption, how they are cut into segments). The merger
// records the digest of a merged sequence; verification recomputes it from
// the output and from the inputs. The zero value is ready to use; it is not
// safe for concurrent use.
type EventsDigest struct {
	h   hash.Hash
	buf []byte
	n   int64
}

// Add appends e to the digested sequence. Only what a record holds counts:
// positions, commit time, transaction fields, the snapshot flag and the
// values, not e.Table.
func (d *EventsDigest) Add(e *event.Event) {
	if d.h == nil {
		d.h = sha256.New()
	}
	d.n++
	if size := payloadSize(e); size > 1<<20 {
		// A large event is hashed piece by piece, never copied whole.
		d.buf = binary.AppendUvarint(d.buf[:0], uint64(size))
		d.buf = appendRecordHead(d.buf, e)
		for _, v := range e.Values {
			if v == nil {
				d.buf = append(d.buf, 0)
				continue
			}
			d.buf = binary.AppendUvarint(d.buf, uint64(len(v))+1)
			d.h.Write(d.buf)
			d.buf = d.buf[:0]
			d.h.Write(v)
		}
		d.h.Write(d.buf)
		return
	}
	d.buf, _ = appendRecord(d.buf[:0], e)
	d.h.Write(d.buf)
	if cap(d.buf) > 1<<20 {
		d.buf = nil // do not keep one huge event's buffer
	}
}

// Events returns how many events have been added.
func (d *EventsDigest) Events() int64 { return d.n }

// Sum returns the digest of the events added so far as 64 lower-case hex
// digits; the empty sequence's is the SHA-256 of nothing (e3b0c442…). More
// events may be added afterwards.
func (d *EventsDigest) Sum() string {
	if d.h == nil {
		d.h = sha256.New()
	}
	return hex.EncodeToString(d.h.Sum(nil))
}
