package golden

import (
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// Capture composes each message from the feed package's encoders and sets
// two headers itself (internal/cdc/txn.go). These functions do the same,
// so the golden messages are the messages capture publishes; if capture's
// composition changes, change them with it (and the golden files show it).

// CaptureEvent returns the message capture publishes for e. Rows of the
// initial snapshot (snapshotCP, the slot's consistent point, non-zero)
// carry "<system id>.snap.<cp hex>" in place of the system id in their
// Nats-Msg-Id, and the plain system id in Tidemark-System-Id
// (cdc.snapshotSystemID, emitter.publishTxn).
func CaptureEvent(s feed.Subjects, systemID string, snapshotCP event.Position, et *feed.EventTable, e *event.Event) *nats.Msg {
	msgSystemID := systemID
	if snapshotCP != 0 {
		msgSystemID = systemID + ".snap." + strconv.FormatUint(uint64(snapshotCP), 16)
	}
	m := s.EncodeEventFor(msgSystemID, et, e)
	if msgSystemID != systemID {
		m.Header.Set(feed.HeaderSystemID, systemID)
	}
	return m
}

// CaptureTamper returns the message capture publishes for the n-th tamper
// report of a transaction: feed's encoding plus a Nats-Msg-Id of
// "<system id>-tamper-<commit LSN hex>-<n>" (emitter.publishTampers).
func CaptureTamper(s feed.Subjects, systemID, schema, table string, n int, tp feed.Tamper) *nats.Msg {
	m := s.EncodeTamper(systemID, schema, table, tp)
	m.Header.Set(feed.HeaderMsgID, systemID+"-tamper-"+strconv.FormatUint(uint64(tp.CommitLSN), 16)+"-"+strconv.Itoa(n))
	return m
}

// CaptureHeartbeat returns the message capture publishes for hb
// (emitter.publishHeartbeat): feed's encoding as it is.
func CaptureHeartbeat(s feed.Subjects, systemID string, hb event.Heartbeat) *nats.Msg {
	return s.EncodeHeartbeat(systemID, hb)
}
