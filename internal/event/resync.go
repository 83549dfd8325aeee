package event

import "time"

// Resync phases: capture publishes a heartbeat of each around the rows it
// re-reads from a new primary.
const (
	ResyncBegin = "begin"
	ResyncDone  = "done"
)

// Resync marks a heartbeat that opens or closes a resync: after a failover
// to a promoted standby without the replication slot, capture creates a new
// slot and re-reads from its exported snapshot every row committed at or
// after From, in commit order; the archiver appends only the rows the
// archive does not hold (by primary key) and records the resync in the
// catalog. The same Resync (with its Phase) travels on both heartbeats.
type Resync struct {
	// Phase is ResyncBegin or ResyncDone.
	Phase string `json:"phase"`
	// ID names the resync: "<timeline>-<slot consistent point>", unique
	// per new slot.
	ID string `json:"id"`
	// From is the earliest commit time re-read: the archive's watermark
	// time when capture started the resync, minus an overlap.
	From time.Time `json:"from"`
	// SnapshotTime is the new primary's clock in the snapshot: rows
	// committed later are streamed from the new slot.
	SnapshotTime time.Time `json:"snapshot_time"`
	// Timeline is the new primary's timeline; PrevTimeline the one capture
	// streamed from before; ForkLSN where PrevTimeline ended in the new
	// timeline's history (0 when unknown or the same timeline).
	Timeline     int32    `json:"timeline"`
	PrevTimeline int32    `json:"prev_timeline"`
	ForkLSN      Position `json:"fork_lsn"`
	// Base is the chain position before the resync: at or above every
	// position published before it. The rows get positions above it.
	Base Position `json:"base"`
	// SlotLSN is the new slot's consistent point: the done heartbeat's
	// position, where streaming resumes.
	SlotLSN Position `json:"slot_lsn"`
	// Rows and Transactions count what capture re-read (done only).
	Rows         int `json:"rows,omitempty"`
	Transactions int `json:"transactions,omitempty"`
}
