package feed

import (
	"time"

	"github.com/tidemark/tidemark/internal/event"
)

// The META key-value bucket (JetStream KV, named MetaBucket(stream)) is how
// capture and the archivers talk besides the feed itself. It is a cache of
// facts whose record of truth lives elsewhere (the catalog in the bucket,
// the source's catalogs): losing it delays confirmation, never loses data.
const (
	// KeyWatermark holds a Watermark: the archive's durable watermark,
	// written by the archiver after every catalog commit. Capture confirms
	// the slot up to it and never beyond.
	KeyWatermark = "watermark"
	// KeyRewind holds a RewindRequest: the archiver found a hole in the
	// chain and asks capture to replay from the slot.
	KeyRewind = "rewind"
	// tablePrefix + event.Table.ID() holds the table definition (JSON
	// event.Table) for messages carrying HeaderSchemaID.
	tablePrefix = "table."
)

// MetaBucket returns the KV bucket name that belongs to a stream.
func MetaBucket(stream string) string { return stream + "_META" }

// TableKey returns the META key of a table definition.
func TableKey(id string) string { return tablePrefix + id }

// Watermark is the archive's durable watermark as published in META.
type Watermark struct {
	// LSN: every source transaction whose commit record precedes LSN is in
	// the archive (it is a transaction's end LSN or a heartbeat's LSN).
	LSN event.Position `json:"lsn"`
	// CommitTime is the commit time of the item at LSN; a restore to any T
	// up to it is complete.
	CommitTime time.Time `json:"commit_time"`
	// CatalogSeq is the catalog entry that made it durable.
	CatalogSeq uint64 `json:"catalog_seq"`
	// UpdatedAt is the archiver's clock when it was written.
	UpdatedAt time.Time `json:"updated_at"`
}

// RewindRequest asks capture to restart streaming from the slot's confirmed
// position because the archiver saw a hole in the chain.
type RewindRequest struct {
	// After is the archiver's watermark when it saw the hole.
	After event.Position `json:"after"`
	// Missing is the PrevLSN of the first item that could not be chained.
	Missing event.Position `json:"missing"`
	// At is when the request was made; capture acts on each request once.
	At time.Time `json:"at"`
}
