package segment

// Format version 2, the columnar body of merged segments
// (docs/segment-format.md §2.7): the body is a run of blocks, each holding
// up to maxBlockEvents events stored stream by stream — transaction fields,
// then each column's values, JSON documents split into skeletons and
// literals — each stream compressed on its own.

// Limits a reader checks before it allocates.
const (
	// maxBlockEvents bounds the events of one block.
	maxBlockEvents = 1 << 16
	// maxBlockStreamBytes bounds the decompressed streams of a block holding
	// more than one event; a block of one event may hold up to the reader's
	// per-event limit (ReadOptions.MaxRawBytes).
	maxBlockStreamBytes = 16 << 20
	// maxBlockSlots bounds the placeholders of a block's skeletons, over
	// all its columns.
	maxBlockSlots = 1 << 16
)

// Where the writer cuts blocks: after blockTargetRaw record bytes or
// blockTargetEvents events, whichever comes first (variables so that tests
// can cross block boundaries cheaply).
var (
	blockTargetRaw    = 8 << 20
	blockTargetEvents = maxBlockEvents
)

// What else the writer aims for.
const (
	// blockMaxValues bounds events × columns in a block the writer cuts.
	blockMaxValues = 1 << 20
	// maxColumnSkeletons and maxColumnSlots bound the skeletons one column
	// of a block collects; later JSON documents with new skeletons are
	// stored as text.
	maxColumnSkeletons = 256
	maxColumnSlots     = 4096
)

// Value kinds in a column's kind stream.
const (
	kindNull = 0
	kindText = 1
	kindUUID = 2
	kindJSON = 3
)

// Stream methods.
const (
	methodStored     = 0
	methodCompressed = 1
)

// Literal tags in a slot's tag stream: 0 marks a UUID literal, n+1 a text
// literal of n bytes.
const tagUUID = 0

// The transaction-field streams that open every block, in order.
const (
	streamEnd = iota
	streamCommit
	streamPrev
	streamTime
	streamXID
	streamIndex
	streamCount
	streamFlags
	fieldStreams
)

var fieldStreamNames = [fieldStreams]string{"end", "commit", "prev", "time", "xid", "index", "count", "flags"}

// The streams of each column, in order, before its slot streams.
const (
	colKind = iota
	colTextLen
	colText
	colUUID
	colSkeletons
	colSkeletonID
	colStreams
)

var colStreamNames = [colStreams]string{"kind", "text_len", "text", "uuid", "skeletons", "skeleton_id"}
