package segment

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/tidemark/tidemark/internal/event"
)

// blockEncoder encodes runs of events as format-version-2 blocks. It keeps
// its buffers from block to block; it is not safe for concurrent use.
type blockEncoder struct {
	comp   Compression
	enc    streamEncoder
	fields [fieldStreams][]byte
	cols   []colEncoder
	slots  int          // placeholders of the block's skeletons so far
	zbuf   bytes.Buffer // a stream compressed
	check  []byte       // a shredded document put back together
}

// colEncoder collects one column's streams.
type colEncoder struct {
	s       [colStreams][]byte
	skelIdx map[string]int
	skels   [][]byte
	slots   [][]slotEncoder // per skeleton, per placeholder
	skel    []byte          // scratch
	lits    [][]byte        // scratch
}

// slotEncoder collects the literals of one placeholder of one skeleton.
type slotEncoder struct{ tag, data []byte }

func newBlockEncoder(c Compression, level, ncols int) *blockEncoder {
	return &blockEncoder{comp: c, enc: streamEncoder{c: c, level: level}, cols: make([]colEncoder, ncols)}
}

// close releases the encoder's compressor.
func (b *blockEncoder) close() { b.enc.close() }

// appendBlocks appends events, which follow each other in chain order, to
// dst as one block, or as several when one would exceed the limits.
func (b *blockEncoder) appendBlocks(dst []byte, events []event.Event) ([]byte, error) {
	if len(events) > maxBlockEvents {
		return nil, fmt.Errorf("encode block: %d events, limit %d", len(events), maxBlockEvents)
	}
	if err := b.build(events); err != nil {
		return nil, err
	}
	if b.streamBytes() > maxBlockStreamBytes && len(events) > 1 {
		h := len(events) / 2
		dst, err := b.appendBlocks(dst, events[:h])
		if err != nil {
			return nil, err
		}
		return b.appendBlocks(dst, events[h:])
	}
	return b.appendBlock(dst, len(events))
}

// build fills the streams with events.
func (b *blockEncoder) build(events []event.Event) error {
	for i := range b.fields {
		b.fields[i] = b.fields[i][:0]
	}
	b.slots = 0
	for c := range b.cols {
		b.cols[c].reset()
	}
	var prev *event.Event
	for i := range events {
		e := &events[i]
		if err := b.addFields(e, prev); err != nil {
			return err
		}
		for c := range b.cols {
			b.addValue(&b.cols[c], e.Values[c])
		}
		prev = e
	}
	return nil
}

// addFields appends e's transaction fields: all of them when it starts a
// run (the block's first event, or a new end LSN), else only what differs
// from prev, which e's transaction shares.
func (b *blockEncoder) addFields(e, prev *event.Event) error {
	f := &b.fields
	var pEnd, pXID uint64
	var pTime int64
	if prev != nil {
		pEnd, pXID, pTime = uint64(prev.EndLSN), uint64(prev.XID), prev.CommitTime.UnixMicro()
	}
	d := uint64(e.EndLSN) - pEnd
	f[streamEnd] = binary.AppendUvarint(f[streamEnd], d)
	us := e.CommitTime.UnixMicro()
	switch {
	case prev == nil || d != 0:
		f[streamCommit] = binary.AppendVarint(f[streamCommit], int64(uint64(e.EndLSN)-uint64(e.CommitLSN)))
		f[streamPrev] = binary.AppendVarint(f[streamPrev], int64(pEnd-uint64(e.PrevLSN)))
		f[streamTime] = binary.AppendVarint(f[streamTime], us-pTime)
		f[streamXID] = binary.AppendVarint(f[streamXID], int64(uint64(e.XID)-pXID))
		f[streamIndex] = binary.AppendUvarint(f[streamIndex], uint64(e.Index))
		f[streamCount] = binary.AppendUvarint(f[streamCount], uint64(e.Count))
	case e.CommitLSN != prev.CommitLSN || e.PrevLSN != prev.PrevLSN || us != pTime ||
		e.XID != prev.XID || e.Count != prev.Count || e.Index != prev.Index+1:
		return fmt.Errorf("encode block: event %s does not continue transaction end %s", e, prev.EndLSN)
	}
	var flags byte
	if e.Snapshot {
		flags = recFlagSnapshot
	}
	f[streamFlags] = append(f[streamFlags], flags)
	return nil
}

func (c *colEncoder) reset() {
	for i := range c.s {
		c.s[i] = c.s[i][:0]
	}
	clear(c.skelIdx)
	c.skels, c.slots = c.skels[:0], c.slots[:0]
}

// addValue appends v to column c as NULL, a UUID, a shredded JSON document
// or text, the first that fits.
func (b *blockEncoder) addValue(c *colEncoder, v []byte) {
	s := &c.s
	if v == nil {
		s[colKind] = append(s[colKind], kindNull)
		return
	}
	if u, ok := parseUUIDText(v); ok {
		s[colKind] = append(s[colKind], kindUUID)
		s[colUUID] = append(s[colUUID], u[:]...)
		return
	}
	if len(v) > 1 && (v[0] == '{' || v[0] == '[') && b.addJSON(c, v) {
		return
	}
	s[colKind] = append(s[colKind], kindText)
	s[colTextLen] = binary.AppendUvarint(s[colTextLen], uint64(len(v)))
	s[colText] = append(s[colText], v...)
}

// addJSON shreds v into column c's skeletons and slots, unless v is not a
// JSON document, or its skeleton is new and the column or block has no
// room for it.
func (b *blockEncoder) addJSON(c *colEncoder, v []byte) bool {
	var ok bool
	c.skel, c.lits, ok = shredJSON(v, c.skel[:0], c.lits[:0])
	if !ok || !b.roundTrips(v, c.skel, c.lits) {
		return false
	}
	id, known := c.skelIdx[string(c.skel)]
	if !known {
		if len(c.skels) >= maxColumnSkeletons || b.slots+len(c.lits) > maxBlockSlots ||
			slotCount(c.slots)+len(c.lits) > maxColumnSlots {
			return false
		}
		if c.skelIdx == nil {
			c.skelIdx = map[string]int{}
		}
		id = len(c.skels)
		c.skelIdx[string(c.skel)] = id
		c.skels = append(c.skels, bytes.Clone(c.skel))
		c.slots = append(c.slots, make([]slotEncoder, len(c.lits)))
		b.slots += len(c.lits)
	}
	s := &c.s
	s[colKind] = append(s[colKind], kindJSON)
	s[colSkeletonID] = binary.AppendUvarint(s[colSkeletonID], uint64(id))
	for k, lit := range c.lits {
		sl := &c.slots[id][k]
		if u, ok := parseUUIDText(lit); ok {
			sl.tag = append(sl.tag, tagUUID)
			sl.data = append(sl.data, u[:]...)
			continue
		}
		sl.tag = binary.AppendUvarint(sl.tag, uint64(len(lit))+1)
		sl.data = append(sl.data, lit...)
	}
	return true
}

// roundTrips reports whether filling skel's placeholders with lits gives
// v: shredJSON's promise, checked because a broken promise would lose data.
func (b *blockEncoder) roundTrips(v, skel []byte, lits [][]byte) bool {
	out := b.check[:0]
	k := 0
	for _, c := range skel {
		if c != placeholder {
			out = append(out, c)
			continue
		}
		if k == len(lits) {
			return false
		}
		out = append(out, lits[k]...)
		k++
	}
	b.check = out
	return k == len(lits) && bytes.Equal(out, v)
}

func slotCount(slots [][]slotEncoder) int {
	n := 0
	for _, s := range slots {
		n += len(s)
	}
	return n
}

// streams calls f with each of the block's streams in order.
func (b *blockEncoder) streams(f func([]byte)) {
	for _, s := range b.fields {
		f(s)
	}
	var dict []byte
	for c := range b.cols {
		col := &b.cols[c]
		for i := colKind; i < colSkeletons; i++ {
			f(col.s[i])
		}
		dict = binary.AppendUvarint(dict[:0], uint64(len(col.skels)))
		for _, sk := range col.skels {
			dict = binary.AppendUvarint(dict, uint64(len(sk)))
			dict = append(dict, sk...)
		}
		f(dict)
		f(col.s[colSkeletonID])
		for _, slots := range col.slots {
			for _, sl := range slots {
				f(sl.tag)
				f(sl.data)
			}
		}
	}
}

// streamBytes returns the block's decompressed size: all its streams.
func (b *blockEncoder) streamBytes() int64 {
	var n int64
	b.streams(func(s []byte) { n += int64(len(s)) })
	return n
}

// appendBlock appends the block of n events built last.
func (b *blockEncoder) appendBlock(dst []byte, n int) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(n))
	dst = binary.AppendUvarint(dst, uint64(b.streamBytes()))
	var err error
	b.streams(func(s []byte) {
		if err == nil {
			dst, err = b.appendStream(dst, s)
		}
	})
	return dst, err
}

// appendStream appends one stream, compressed unless that does not make it
// smaller.
func (b *blockEncoder) appendStream(dst, raw []byte) ([]byte, error) {
	if b.comp != None && len(raw) > 0 {
		b.zbuf.Reset()
		if err := b.enc.compress(&b.zbuf, raw); err != nil {
			return nil, err
		}
		if b.zbuf.Len() < len(raw) {
			dst = append(dst, methodCompressed)
			dst = binary.AppendUvarint(dst, uint64(len(raw)))
			dst = binary.AppendUvarint(dst, uint64(b.zbuf.Len()))
			return append(dst, b.zbuf.Bytes()...), nil
		}
	}
	dst = append(dst, methodStored)
	dst = binary.AppendUvarint(dst, uint64(len(raw)))
	dst = binary.AppendUvarint(dst, uint64(len(raw)))
	return append(dst, raw...), nil
}
