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

// CaptureEvent returns the message capture publishes for e (feed version
// 2). Rows of the initial snapshot (snapshotCP, the slot's consistent
// point, non-zero) carry "<system id>.snap.<cp hex>" in place of the system
// id in their Nats-Msg-Id (cdc.snapshotSystemID, emitter.publishTxn).
func CaptureEvent(s feed.Subjects, systemID string, snapshotCP event.Position, et *feed.EventTable, e *event.Event) *nats.Msg {
	return s.EncodeEventFor(systemID, msgSystemID(systemID, snapshotCP), et, e)
}

// CaptureEventV1 returns the message capture published for e before feed
// version 2: sixteen headers, and for snapshot rows the plain system id in
// Tidemark-System-Id.
func CaptureEventV1(s feed.Subjects, systemID string, snapshotCP event.Position, et *feed.EventTable, e *event.Event) *nats.Msg {
	id := msgSystemID(systemID, snapshotCP)
	m := s.EncodeEventV1For(id, et, e)
	if id != systemID {
		m.Header.Set(feed.HeaderSystemID, systemID)
	}
	return m
}

func msgSystemID(systemID string, snapshotCP event.Position) string {
	if snapshotCP == 0 {
		return systemID
	}
	return systemID + ".snap." + strconv.FormatUint(uint64(snapshotCP), 16)
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

// CaptureHeartbeatV1 and CaptureTamperV1 return the messages capture
// published before feed version 2: the same but for the Tidemark-Feed
// header.
func CaptureHeartbeatV1(s feed.Subjects, systemID string, hb event.Heartbeat) *nats.Msg {
	m := CaptureHeartbeat(s, systemID, hb)
	m.Header.Del(feed.HeaderFeed)
	return m
}

// CaptureTamperV1: see CaptureHeartbeatV1.
func CaptureTamperV1(s feed.Subjects, systemID, schema, table string, n int, tp feed.Tamper) *nats.Msg {
	m := CaptureTamper(s, systemID, schema, table, n, tp)
	m.Header.Del(feed.HeaderFeed)
	return m
}
