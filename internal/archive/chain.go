package archive

import (
	"container/heap"
	"slices"
	"time"

	"github.com/tidemark/tidemark/internal/event"
)

// Msg is the part of a JetStream message the chain needs to settle it
// (jetstream.Msg satisfies it). Acknowledging tells JetStream the item is
// durable; Nak asks for redelivery.
type Msg interface {
	Ack() error
	Nak() error
	NakWithDelay(delay time.Duration) error
}

// item is one chain item: a transaction (assembled from its events) or a
// heartbeat. Its position is the transaction's EndLSN or the heartbeat's LSN.
type item struct {
	pos, prev event.Position
	heartbeat bool
	// time is the transaction's commit time or the heartbeat's source time.
	time time.Time
	// systemID is the source's system identifier (from the message headers).
	systemID string
	// events are indexed by Event.Index; nil until that event arrived.
	events []*event.Event
	// tables holds each event's table definition, parallel to events.
	tables []*event.Table
	have   int
	// msgs are every delivery of the item's messages, redeliveries included;
	// they are settled together once the item is durable (or given back).
	msgs []Msg

	// A large transaction (Count >= streamMinEvents) is never assembled:
	// while it is the chain's head its events go to the open segments one
	// by one as they arrive in index order (streamed), and each event's
	// messages are settled with the segment holding it.
	large bool
	count int
	// next is the index of the next event to stream: the events below it
	// are in durable segments (an earlier term's) or in the open segments.
	next int
	// ooo holds a large transaction's events that arrived at or above next.
	ooo map[int]heldEvent
	// lastNext is next as of the last gap check (progress detection).
	lastNext int
	// streamedOut counts a large transaction's events that went into
	// segments (a resync skips the ones the archive holds).
	streamedOut int

	// resync is set on a heartbeat that opens or closes a resync.
	resync *event.Resync
}

// heldEvent is one buffered event of a large transaction.
type heldEvent struct {
	e    *event.Event
	t    *event.Table
	msgs []Msg
}

// streamMinEvents is the event count from which a transaction is streamed
// into the open segments instead of being assembled in memory.
const streamMinEvents = 4096

// complete reports whether every event of a transaction (or the heartbeat)
// arrived; a large transaction is complete once every event is streamed.
func (it *item) complete() bool {
	switch {
	case it.heartbeat:
		return true
	case it.large:
		return it.next == it.count
	}
	return it.have == len(it.events)
}

// allMsgs returns every message the item holds.
func (it *item) allMsgs() []Msg {
	if !it.large {
		return it.msgs
	}
	out := it.msgs
	for _, h := range it.ooo {
		out = append(out, h.msgs...)
	}
	return out
}

// tableCount returns the number of distinct table definitions among a
// transaction's events (definitions are shared pointers from the cache).
func (it *item) tableCount() int {
	var seen []*event.Table
	for _, t := range it.tables {
		if t != nil && !slices.Contains(seen, t) {
			seen = append(seen, t)
		}
	}
	return len(seen)
}

// size is what the item costs in the reorder buffer: its events, or 1.
func (it *item) size() int {
	switch {
	case it.heartbeat:
		return 1
	case it.large:
		return len(it.ooo)
	}
	return it.have
}

// chain orders chain items and decides what extends the archive. w is the
// position up to which items have been accepted (in memory, not yet
// necessarily durable). Items above w wait in a buffer keyed by position
// until the item after w is complete; the buffer holds at most limit events.
type chain struct {
	w       event.Position
	pending map[event.Position]*item
	// asc and desc index pending by position; entries whose item is gone
	// are skipped lazily.
	asc   ascHeap
	desc  descHeap
	held  int
	limit int
	// resyncBegin is the position of the latest resync-begin heartbeat
	// buffered (0: none): items below it that cannot connect are old
	// items the resync supersedes (see next).
	resyncBegin event.Position
	// archived maps a transaction above w to the number of its first events
	// (in index order) already in segments listed by the catalog: a
	// partially archived transaction, from a term that ended before the
	// transaction was complete. Those events are never appended again.
	archived map[event.Position]int
}

// newChain returns a chain whose accepted position is w; archived lists
// partially archived transactions above w (nil for none).
func newChain(w event.Position, limit int, archived map[event.Position]int) *chain {
	return &chain{w: w, pending: make(map[event.Position]*item), limit: limit, archived: archived}
}

// addResult says what became of an added message.
type addResult int

const (
	// added: the message is held by the chain (buffered or merged).
	added addResult = iota
	// duplicate: the item's position is at or below w; the caller settles it.
	duplicate
	// rejected: the buffer is full; the caller gives the message back.
	rejected
	// archivedEvent: the event is in a segment listed by the catalog (a
	// partially archived transaction); the caller acknowledges it now.
	archivedEvent
	// streamedEvent: the event of a large transaction is already in the
	// open segments (a redelivery); the caller settles it with them.
	streamedEvent
)

// addEvent offers one event of a transaction. evicted lists items pushed out
// of the buffer to make room; the caller gives their messages back.
func (c *chain) addEvent(e *event.Event, t *event.Table, systemID string, m Msg) (res addResult, evicted []*item) {
	if e.EndLSN <= c.w {
		return duplicate, nil
	}
	it := c.pending[e.EndLSN]
	if it != nil && it.heartbeat {
		// A heartbeat and a transaction at one position cannot both be;
		// keep what came first and let the message be redelivered.
		return rejected, nil
	}
	if e.Index < c.archived[e.EndLSN] {
		if it == nil {
			// The item must exist for the chain to pass it, even when all
			// its events are archived and none will arrive again.
			c.insert(c.newItem(e, systemID))
		}
		return archivedEvent, nil
	}
	if it == nil && e.Count >= streamMinEvents {
		it = c.newItem(e, systemID)
		c.insert(it)
	}
	if it != nil && it.large {
		return c.addLarge(it, e, t, m)
	}
	if it != nil {
		if e.Index < len(it.events) && it.events[e.Index] != nil {
			it.msgs = append(it.msgs, m) // a redelivery or re-send of a held event
			it.prev = min(it.prev, e.PrevLSN)
			return added, nil
		}
		if e.Index >= len(it.events) {
			return rejected, nil // inconsistent Count; redelivery will tell
		}
	}
	if c.held+1 > c.limit {
		if evicted = c.makeRoom(e.EndLSN, 1); evicted == nil && !c.isHead(e.EndLSN) {
			return rejected, nil
		}
	}
	if it == nil {
		it = c.newItem(e, systemID)
		c.insert(it)
	}
	it.prev = min(it.prev, e.PrevLSN)
	it.events[e.Index], it.tables[e.Index] = e, t
	it.have++
	it.msgs = append(it.msgs, m)
	c.held++
	return added, evicted
}

// newItem returns the item of e's transaction, its archived events (see
// chain.archived) already counted as taken.
func (c *chain) newItem(e *event.Event, systemID string) *item {
	it := &item{pos: e.EndLSN, prev: e.PrevLSN, time: e.CommitTime, systemID: systemID, count: e.Count}
	done := min(c.archived[e.EndLSN], e.Count)
	if e.Count >= streamMinEvents {
		it.large, it.next, it.lastNext, it.ooo = true, done, done, make(map[int]heldEvent)
		return it
	}
	it.events, it.tables = make([]*event.Event, e.Count), make([]*event.Table, e.Count)
	it.have = done
	return it
}

// addLarge offers an event of a large transaction. Only the event the
// stream waits for is taken over the buffer limit, and only while the
// transaction connects to w.
func (c *chain) addLarge(it *item, e *event.Event, t *event.Table, m Msg) (addResult, []*item) {
	switch {
	case e.Count != it.count || e.Index >= it.count:
		return rejected, nil // inconsistent Count; redelivery will tell
	case e.Index < it.next:
		return streamedEvent, nil
	}
	if h, ok := it.ooo[e.Index]; ok {
		h.msgs = append(h.msgs, m)
		it.ooo[e.Index] = h
		it.prev = min(it.prev, e.PrevLSN)
		return added, nil
	}
	var evicted []*item
	if c.held+1 > c.limit {
		evicted = c.makeRoom(e.EndLSN, 1)
		if evicted == nil && !(e.Index == it.next && c.isHead(e.EndLSN) && min(it.prev, e.PrevLSN) <= c.w) {
			return rejected, nil
		}
	}
	it.prev = min(it.prev, e.PrevLSN)
	it.ooo[e.Index] = heldEvent{e: e, t: t, msgs: []Msg{m}}
	c.held++
	return added, evicted
}

// streamHead returns the large transaction to stream, if the chain's head
// is one that connects to w.
func (c *chain) streamHead() *item {
	it, ok := c.lowest()
	if !ok || !it.large || it.pos <= c.w || it.prev > c.w || it.complete() {
		return nil
	}
	return it
}

// takeNext removes and returns the stream head's next event, when it arrived.
func (c *chain) takeNext(it *item) (heldEvent, bool) {
	h, ok := it.ooo[it.next]
	if !ok {
		return heldEvent{}, false
	}
	delete(it.ooo, it.next)
	it.next++
	c.held--
	return h, true
}

// addHeartbeat offers a heartbeat.
func (c *chain) addHeartbeat(hb event.Heartbeat, systemID string, m Msg) (res addResult, evicted []*item) {
	if hb.LSN <= c.w {
		return duplicate, nil
	}
	if it := c.pending[hb.LSN]; it != nil {
		if !it.heartbeat {
			return rejected, nil
		}
		it.msgs = append(it.msgs, m)
		it.prev = min(it.prev, hb.PrevLSN)
		return added, nil
	}
	if c.held+1 > c.limit {
		if evicted = c.makeRoom(hb.LSN, 1); evicted == nil && !c.isHead(hb.LSN) {
			return rejected, nil
		}
	}
	c.insert(&item{pos: hb.LSN, prev: hb.PrevLSN, heartbeat: true, time: hb.Time, systemID: systemID, msgs: []Msg{m}, resync: hb.Resync})
	if hb.Resync != nil && hb.Resync.Phase == event.ResyncBegin {
		c.resyncBegin = max(c.resyncBegin, hb.LSN)
	}
	return added, evicted
}

// makeRoom evicts the highest buffered items (all above pos) until n more
// events fit. It returns nil, evicting nothing, when that is impossible.
func (c *chain) makeRoom(pos event.Position, n int) []*item {
	var victims []*item
	free := c.limit - c.held
	for free < n {
		top, ok := c.highest()
		if !ok || top.pos <= pos || top.large && top.next > 0 {
			break // never evict a transaction whose stream has begun
		}
		heap.Pop(&c.desc)
		c.delete(top)
		victims = append(victims, top)
		free += top.size()
	}
	if free < n {
		// Put the victims back: nothing is evicted for an item that still
		// would not fit.
		for _, it := range victims {
			c.insert(it)
		}
		return nil
	}
	return victims
}

// isHead reports whether pos is at or below every buffered item: the item
// the chain waits for is always taken, even over the limit, so a
// transaction larger than the buffer cannot wedge the chain.
func (c *chain) isHead(pos event.Position) bool {
	it, ok := c.lowest()
	return !ok || pos <= it.pos
}

// highest returns the buffered item with the highest position.
func (c *chain) highest() (*item, bool) {
	for len(c.desc) > 0 {
		if it := c.pending[c.desc[0]]; it != nil {
			return it, true
		}
		heap.Pop(&c.desc) // stale: already taken or evicted
	}
	return nil, false
}

// lowest returns the buffered item with the lowest position.
func (c *chain) lowest() (*item, bool) {
	for len(c.asc) > 0 {
		if it := c.pending[c.asc[0]]; it != nil {
			return it, true
		}
		heap.Pop(&c.asc)
	}
	return nil, false
}

func (c *chain) insert(it *item) {
	c.pending[it.pos] = it
	c.held += it.size()
	heap.Push(&c.asc, it.pos)
	heap.Push(&c.desc, it.pos)
	if n := 2*len(c.pending) + 64; len(c.asc) > n || len(c.desc) > n {
		c.reindex()
	}
}

// reindex rebuilds both heaps from pending, dropping stale entries.
func (c *chain) reindex() {
	c.asc, c.desc = c.asc[:0], c.desc[:0]
	for p := range c.pending {
		c.asc = append(c.asc, p)
		c.desc = append(c.desc, p)
	}
	heap.Init(&c.asc)
	heap.Init(&c.desc)
}

func (c *chain) delete(it *item) {
	delete(c.pending, it.pos)
	c.held -= it.size()
}

// next returns the next item that extends the chain (and advances w past
// it), or a buffered item that turned out to be a duplicate (dup true), or
// nil when the lowest buffered item cannot be taken yet.
func (c *chain) next() (it *item, dup bool) {
	it, ok := c.lowest()
	if !ok {
		return nil, false
	}
	if it.pos <= c.w {
		heap.Pop(&c.asc)
		c.delete(it)
		return it, true
	}
	if !it.complete() || it.prev > c.w {
		if c.supersededByResync(it) {
			heap.Pop(&c.asc)
			c.delete(it)
			return it, true
		}
		return nil, false
	}
	heap.Pop(&c.asc)
	c.delete(it)
	c.w = it.pos
	return it, false
}

// supersededByResync reports whether it, the lowest buffered item, which
// cannot be taken, lies before a buffered resync-begin heartbeat that
// connects to w. Such an item was published before a failover by the old
// primary's capture and its predecessor is lost; the resync re-reads every
// row the new primary holds from before it, so it is dropped like a
// duplicate instead of wedging the chain.
func (c *chain) supersededByResync(it *item) bool {
	if c.resyncBegin == 0 || it.pos >= c.resyncBegin || it.large && it.next > 0 {
		return false
	}
	b := c.pending[c.resyncBegin]
	if b == nil || b.prev > c.w {
		if b == nil {
			c.resyncBegin = 0
		}
		return false
	}
	return true
}

// gap reports whether the chain is stuck: items are buffered but the lowest
// one does not connect to w (or is a transaction still missing events).
// missing is the position the chain waits for: the lowest item's PrevLSN
// when it does not connect, else its own position.
func (c *chain) gap() (stuck bool, missing event.Position) {
	it, ok := c.lowest()
	if !ok {
		return false, 0
	}
	if it.prev > c.w {
		return true, it.prev
	}
	return !it.complete(), it.pos
}

// streamProgressed reports whether the stream head took events since the
// last call: a large transaction arriving slowly is not a hole.
func (c *chain) streamProgressed() bool {
	it := c.streamHead()
	if it == nil || it.next == it.lastNext {
		return false
	}
	it.lastNext = it.next
	return true
}

// buffered returns the number of events (and heartbeats) held.
func (c *chain) buffered() int { return c.held }

// drain empties the buffer and returns everything it held.
func (c *chain) drain() []*item {
	out := make([]*item, 0, len(c.pending))
	for _, it := range c.pending {
		out = append(out, it)
	}
	c.pending = make(map[event.Position]*item)
	c.asc, c.desc = c.asc[:0], c.desc[:0]
	c.held = 0
	return out
}

// ascHeap is a min-heap of positions.
type ascHeap []event.Position

func (h ascHeap) Len() int           { return len(h) }
func (h ascHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h ascHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *ascHeap) Push(x any)        { *h = append(*h, x.(event.Position)) }
func (h *ascHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// descHeap is a max-heap of positions.
type descHeap []event.Position

func (h descHeap) Len() int           { return len(h) }
func (h descHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h descHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *descHeap) Push(x any)        { *h = append(*h, x.(event.Position)) }
func (h *descHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
