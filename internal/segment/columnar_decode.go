package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/tidemark/tidemark/internal/event"
)

// blockStream decodes a format-version-2 body (docs/segment-format.md
// §2.7) one block at a time: it holds one block's decompressed streams and
// builds each event from them when asked.
type blockStream struct {
	name      string
	src       *countingReader // the stored body
	size      int64           // the stored body's length
	dec       *streamDecoder
	maxRecord int64
	ncols     int
	blocks    int // blocks read
	blk       block
}

// block is one decoded block: its streams, as cursors into raw, and the
// previous event's transaction fields.
type block struct {
	events, next int
	raw          []byte
	spans        []span // each stream's place in raw, in order
	fields       [fieldStreams]cursor
	cols         []colDecoder
	slots        int
	prev         txnFields
	out          []byte // scratch for an event's values
	offs         []int
}

type span struct{ start, end int }

// colDecoder holds one column's streams.
type colDecoder struct {
	s     [colStreams]cursor
	skels [][]byte
	slots [][]slotDecoder // per skeleton, per placeholder
}

type slotDecoder struct{ tag, data cursor }

// txnFields are the fields an event shares with its transaction.
type txnFields struct {
	end, commit, prev uint64
	us                int64
	xid               uint64
	index, count      uint64
}

// cursor reads one stream.
type cursor struct {
	b   []byte
	off int
}

func (c *cursor) uvarint() (uint64, bool) {
	v, n := binary.Uvarint(c.b[c.off:])
	if n <= 0 {
		return 0, false
	}
	c.off += n
	return v, true
}

func (c *cursor) varint() (int64, bool) {
	v, n := binary.Varint(c.b[c.off:])
	if n <= 0 {
		return 0, false
	}
	c.off += n
	return v, true
}

func (c *cursor) bytes(n uint64) ([]byte, bool) {
	if n > uint64(len(c.b)-c.off) {
		return nil, false
	}
	b := c.b[c.off : c.off+int(n)]
	c.off += int(n)
	return b, true
}

func (c *cursor) byte() (byte, bool) {
	if c.off >= len(c.b) {
		return 0, false
	}
	c.off++
	return c.b[c.off-1], true
}

func (c *cursor) done() bool { return c.off == len(c.b) }

// countingReader counts what is read through it.
type countingReader struct {
	r byteReader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func newBlockStream(name string, v *verified, maxRecord int64) (*blockStream, error) {
	dec, err := newStreamDecoder(v.header.Compression)
	if err != nil {
		return nil, readFailure(name, "decompress", err)
	}
	return &blockStream{name: name, src: &countingReader{r: bodyReader(v.body)}, size: v.body.size, dec: dec,
		maxRecord: maxRecord, ncols: len(v.header.Table.Columns),
		blk: block{cols: make([]colDecoder, len(v.header.Table.Columns))}}, nil
}

func (s *blockStream) close() { s.dec.close() }

func (s *blockStream) next(e *event.Event) (int, error) {
	for s.blk.next == s.blk.events {
		if s.src.n == s.size {
			return 0, io.EOF
		}
		if err := s.readBlock(); err != nil {
			return 0, err
		}
	}
	b := &s.blk
	if reason := b.decode(e); reason != "" {
		return 0, corruptf(s.name, "block %d event %d: %s", s.blocks-1, b.next, reason)
	}
	b.next++
	if b.next == b.events {
		if what := b.leftover(); what != "" {
			return 0, corruptf(s.name, "block %d: stream %s has bytes beyond its %d events", s.blocks-1, what, b.events)
		}
	}
	n := int64(recordSize(e))
	if n > s.maxRecord {
		return 0, corruptf(s.name, "block %d event %d: record of %d bytes above the limit of %d (ReadOptions.MaxRawBytes)",
			s.blocks-1, b.next-1, n, s.maxRecord)
	}
	return int(n), nil
}

// readBlock reads and decompresses the next block's streams.
func (s *blockStream) readBlock() error {
	n, ok, err := s.uvarint()
	if err != nil || !ok || n == 0 || n > maxBlockEvents {
		return s.blockError(err, fmt.Sprintf("block holds %d events, want 1..%d", n, maxBlockEvents))
	}
	limit := uint64(maxBlockStreamBytes)
	if n == 1 {
		limit = uint64(max(s.maxRecord, maxBlockStreamBytes))
	}
	total, ok, err := s.uvarint()
	if err != nil || !ok || total > limit {
		return s.blockError(err, fmt.Sprintf("block of %d events declares %d stream bytes, above the limit of %d", n, total, limit))
	}
	b := &s.blk
	b.events, b.next, b.slots, b.prev = 0, 0, 0, txnFields{}
	b.raw, b.spans = b.raw[:0], b.spans[:0]
	if cap(b.raw) < int(min(total, maxBlockStreamBytes)) {
		b.raw = make([]byte, 0, min(total, maxBlockStreamBytes))
	}
	if err := s.readStreams(int(n), int64(total)); err != nil {
		return err
	}
	if int64(len(b.raw)) != int64(total) {
		return s.blockError(nil, fmt.Sprintf("streams hold %d bytes, block declares %d", len(b.raw), total))
	}
	b.bind()
	b.events = int(n)
	s.blocks++
	return nil
}

// readStreams reads the block's streams in order (§2.7): the transaction
// fields, then for each column its value streams, its skeletons, and a tag
// and a data stream per placeholder.
func (s *blockStream) readStreams(events int, total int64) error {
	b := &s.blk
	for range fieldStreams {
		if err := s.readStream(total); err != nil {
			return err
		}
	}
	for c := range b.cols {
		for range colSkeletons + 1 {
			if err := s.readStream(total); err != nil {
				return err
			}
		}
		sp := b.spans[len(b.spans)-1]
		slots, reason := b.cols[c].parseSkeletons(b.raw[sp.start:sp.end], events, maxBlockSlots-b.slots)
		b.slots += slots
		if reason != "" {
			return corruptf(s.name, "block %d column %d: %s", s.blocks, c, reason)
		}
		for range 1 + 2*slots {
			if err := s.readStream(total); err != nil {
				return err
			}
		}
	}
	return nil
}

// readStream reads one stream and appends its bytes to the block's raw.
func (s *blockStream) readStream(total int64) error {
	b := &s.blk
	method, err := s.src.ReadByte()
	if err != nil {
		return s.blockError(err, "")
	}
	rawLen, ok, err := s.uvarint()
	if err != nil || !ok || rawLen > uint64(total-int64(len(b.raw))) {
		return s.blockError(err, fmt.Sprintf("stream %d of %d bytes exceeds the block's %d", len(b.spans), rawLen, total))
	}
	storedLen, ok, err := s.uvarint()
	if err != nil || !ok || storedLen > uint64(s.size-s.src.n) {
		return s.blockError(err, fmt.Sprintf("stream %d stored in %d bytes, beyond the body", len(b.spans), storedLen))
	}
	stored := &io.LimitedReader{R: s.src, N: int64(storedLen)}
	var src io.Reader = stored
	switch {
	case method == methodStored && storedLen == rawLen:
	case method == methodCompressed && s.dec.c != None:
		if src, err = s.dec.open(stored); err != nil {
			return s.streamError(err)
		}
	default:
		return s.blockError(nil, fmt.Sprintf("stream %d: method %d, %d bytes stored for %d", len(b.spans), method, storedLen, rawLen))
	}
	start := len(b.raw)
	if b.raw, err = readN(src, b.raw, int(rawLen)); err != nil {
		return s.streamError(err)
	}
	if err := expectEOF(src); err != nil {
		return s.streamError(err)
	}
	if stored.N != 0 {
		return s.blockError(nil, fmt.Sprintf("stream %d: %d stored bytes after its compressed data", len(b.spans), stored.N))
	}
	b.spans = append(b.spans, span{start, len(b.raw)})
	return nil
}

// readN appends n bytes from r to dst, growing dst as the bytes arrive so
// that a declared length costs no more memory than the data behind it.
func readN(r io.Reader, dst []byte, n int) ([]byte, error) {
	const step = 1 << 20
	for n > 0 {
		k := min(n, step)
		if cap(dst)-len(dst) < k {
			dst = append(dst[:cap(dst)], make([]byte, k)...)[:len(dst)]
		}
		if _, err := io.ReadFull(r, dst[len(dst):len(dst)+k]); err != nil {
			return dst, err
		}
		dst = dst[:len(dst)+k]
		n -= k
	}
	return dst, nil
}

func (s *blockStream) uvarint() (uint64, bool, error) {
	v, n, err := readUvarint(s.src)
	return v, n > 0, err
}

// blockError reports a malformed block, or an error reading it.
func (s *blockStream) blockError(err error, reason string) error {
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return readFailure(s.name, fmt.Sprintf("block %d", s.blocks), err)
	}
	return corruptf(s.name, "block %d: %s", s.blocks, reason)
}

// streamError reports a stream that does not decompress to its length.
func (s *blockStream) streamError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = errors.New("stream shorter than declared")
	}
	return readFailure(s.name, fmt.Sprintf("block %d stream %d: decompress %s", s.blocks, len(s.blk.spans), s.dec.c), err)
}

// parseSkeletons parses a column's skeleton stream and returns how many
// placeholders its skeletons have, refusing more than budget.
func (c *colDecoder) parseSkeletons(b []byte, events, budget int) (int, string) {
	cur := cursor{b: b}
	k, ok := cur.uvarint()
	if !ok || k > uint64(events) {
		return 0, fmt.Sprintf("%d skeletons for %d events", k, events)
	}
	c.skels, c.slots = c.skels[:0], c.slots[:0]
	slots := 0
	for range k {
		l, ok := cur.uvarint()
		sk, ok2 := cur.bytes(l)
		if !ok || !ok2 {
			return 0, "truncated skeleton"
		}
		n := 0
		for _, ch := range sk {
			if ch == placeholder {
				n++
			}
		}
		if slots += n; slots > budget {
			return 0, fmt.Sprintf("the block's skeletons have more than %d placeholders", maxBlockSlots)
		}
		c.skels = append(c.skels, sk)
		c.slots = append(c.slots, make([]slotDecoder, n))
	}
	if !cur.done() {
		return 0, "trailing bytes after the skeletons"
	}
	return slots, ""
}

// bind points the cursors at the streams read into raw.
func (b *block) bind() {
	sp := b.spans
	next := func() cursor {
		s := sp[0]
		sp = sp[1:]
		return cursor{b: b.raw[s.start:s.end:s.end]}
	}
	for i := range b.fields {
		b.fields[i] = next()
	}
	for c := range b.cols {
		col := &b.cols[c]
		for i := range col.s {
			col.s[i] = next() // skeletons: parsed already, into col.skels
		}
		for _, slots := range col.slots {
			for j := range slots {
				slots[j] = slotDecoder{tag: next(), data: next()}
			}
		}
	}
}

// decode builds the block's next event into e, or says what is wrong.
func (b *block) decode(e *event.Event) string {
	if reason := b.decodeFields(e); reason != "" {
		return reason
	}
	out, offs := b.out[:0], b.offs[:0]
	for c := range b.cols {
		var reason string
		start := len(out)
		out, reason = b.cols[c].decodeValue(out)
		switch reason {
		case "":
			offs = append(offs, start, len(out))
		case "null":
			offs = append(offs, -1, -1)
		default:
			return fmt.Sprintf("column %d: %s", c, reason)
		}
	}
	buf := make([]byte, len(out)) // the event's own memory
	copy(buf, out)
	for c := range e.Values {
		if offs[2*c] < 0 {
			e.Values[c] = nil
			continue
		}
		e.Values[c] = buf[offs[2*c]:offs[2*c+1]:offs[2*c+1]]
	}
	b.out, b.offs = out, offs
	return ""
}

// decodeFields reads e's transaction fields and flags.
func (b *block) decodeFields(e *event.Event) string {
	f, p := &b.fields, &b.prev
	d, ok := f[streamEnd].uvarint()
	if !ok {
		return "truncated end stream"
	}
	if b.next == 0 || d != 0 {
		commit, ok1 := f[streamCommit].varint()
		prev, ok2 := f[streamPrev].varint()
		dt, ok3 := f[streamTime].varint()
		dx, ok4 := f[streamXID].varint()
		index, ok5 := f[streamIndex].uvarint()
		count, ok6 := f[streamCount].uvarint()
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
			return "truncated transaction fields"
		}
		end := p.end + d
		*p = txnFields{end: end, commit: end - uint64(commit), prev: p.end - uint64(prev),
			us: p.us + dt, xid: p.xid + uint64(dx), index: index, count: count}
	} else {
		p.index++
	}
	if p.xid > math.MaxUint32 || p.index > maxIndex || p.count > maxIndex {
		return "transaction fields out of range"
	}
	flags, ok := f[streamFlags].byte()
	if !ok {
		return "truncated flags stream"
	}
	if flags&^recFlagSnapshot != 0 {
		return "unknown record flags"
	}
	e.CommitLSN, e.EndLSN, e.PrevLSN = event.Position(p.commit), event.Position(p.end), event.Position(p.prev)
	e.CommitTime = time.UnixMicro(p.us).UTC()
	e.XID, e.Index, e.Count = uint32(p.xid), int(p.index), int(p.count)
	e.Snapshot = flags&recFlagSnapshot != 0
	return ""
}

// decodeValue appends the column's next value to out; the reason "null"
// marks SQL NULL.
func (c *colDecoder) decodeValue(out []byte) ([]byte, string) {
	kind, ok := c.s[colKind].byte()
	if !ok {
		return out, "truncated kind stream"
	}
	switch kind {
	case kindNull:
		return out, "null"
	case kindText:
		l, ok := c.s[colTextLen].uvarint()
		if !ok {
			return out, "truncated text_len stream"
		}
		v, ok := c.s[colText].bytes(l)
		if !ok {
			return out, "text value beyond its stream"
		}
		return append(out, v...), ""
	case kindUUID:
		u, ok := c.s[colUUID].bytes(16)
		if !ok {
			return out, "truncated uuid stream"
		}
		return appendUUIDText(out, u), ""
	case kindJSON:
		return c.decodeJSON(out)
	}
	return out, fmt.Sprintf("unknown value kind %d", kind)
}

// decodeJSON appends the next JSON document: its skeleton with each
// placeholder filled from its slot.
func (c *colDecoder) decodeJSON(out []byte) ([]byte, string) {
	id, ok := c.s[colSkeletonID].uvarint()
	if !ok || id >= uint64(len(c.skels)) {
		return out, "skeleton id missing or out of range"
	}
	sk, slots := c.skels[id], c.slots[id]
	k := 0
	for len(sk) > 0 {
		i := indexByte(sk, placeholder)
		if i < 0 {
			return append(out, sk...), ""
		}
		out = append(out, sk[:i]...)
		sk = sk[i+1:]
		sl := &slots[k]
		k++
		tag, ok := sl.tag.uvarint()
		if !ok {
			return out, "truncated literal tag stream"
		}
		if tag == tagUUID {
			u, ok := sl.data.bytes(16)
			if !ok {
				return out, "truncated uuid literal"
			}
			out = appendUUIDText(out, u)
			continue
		}
		lit, ok := sl.data.bytes(tag - 1)
		if !ok {
			return out, "literal beyond its stream"
		}
		out = append(out, lit...)
	}
	return out, ""
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// leftover names a stream with bytes no event used, or returns "".
func (b *block) leftover() string {
	for i := range b.fields {
		if !b.fields[i].done() {
			return fieldStreamNames[i]
		}
	}
	for c := range b.cols {
		col := &b.cols[c]
		for i := range col.s {
			if i != colSkeletons && !col.s[i].done() {
				return fmt.Sprintf("%s of column %d", colStreamNames[i], c)
			}
		}
		for i, slots := range col.slots {
			for j := range slots {
				if !slots[j].tag.done() || !slots[j].data.done() {
					return fmt.Sprintf("literal %d of skeleton %d of column %d", j, i, c)
				}
			}
		}
	}
	return ""
}
