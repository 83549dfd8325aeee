package segment

import (
	"errors"
	"io"
	"unsafe"

	"github.com/tidemark/tidemark/internal/event"
)

// ReadOptions configures Decode, ReadTrailer and OpenReader.
type ReadOptions struct {
	// Keyring decrypts encrypted segments, picking the key by the header's
	// key id; nil reads plaintext segments only.
	Keyring *Keyring
	// MaxRawBytes caps, for Decode, the decompressed records and separately
	// the memory for decoded event structures; for OpenReader, which holds
	// one event at a time, the record of any one event. 0 (or less) means
	// DefaultMaxRawBytes (1 GiB).
	MaxRawBytes int64
}

func (o *ReadOptions) maxRaw() int64 {
	if o.MaxRawBytes <= 0 {
		return DefaultMaxRawBytes
	}
	return o.MaxRawBytes
}

// Decode verifies the segment in data (the object named name) and decodes
// all its events. Nothing is returned unless the SHA-256 (and, when
// encrypted, the age authentication), the header binding and the trailer's
// summary of the events all check out. Damage is a *CorruptError (ErrCorrupt);
// a missing or wrong key is a *KeyError (ErrNoKey). The events' Values alias
// memory owned by the returned Segment (and, for uncompressed plaintext
// segments, data itself).
func Decode(name string, data []byte, opts ReadOptions) (*Segment, error) {
	v, err := verify(name, memSource(data), opts)
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
	v, err := verify(name, memSource(data), opts)
	if err != nil {
		return nil, nil, err
	}
	return &v.header, &v.trailer, nil
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
	if v.header.Version == ColumnarVersion {
		return decodeStreamed(name, v, maxRaw)
	}
	raw, err := decompress(v.header.Compression, v.body.data, int(t.RawBytes))
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

// decodeStreamed decodes all of v's events through a Reader, for bodies
// (format version 2) that have no single buffer of records to alias.
func decodeStreamed(name string, v *verified, maxRaw int64) ([]*event.Event, error) {
	r, err := newReader(name, v, maxRaw)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	events := make([]*event.Event, 0, v.trailer.Events)
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return events, nil
		}
		if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
}
