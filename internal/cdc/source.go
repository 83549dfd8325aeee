package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"
)

// KeySource is the META key holding the source server capture last
// streamed from: its system identifier and timeline. A later start (or a
// reconnection after a failover) compares the server it reaches with it.
const KeySource = "source"

// sourceIdentity is what IDENTIFY_SYSTEM says about a server, plus where
// the connection went (with a multi-host --pg, which host answered).
type sourceIdentity struct {
	SystemID string `json:"system_id"`
	Timeline int32  `json:"timeline"`
	Server   string `json:"server,omitempty"` // host:port of the last server streamed from
	// History is the timeline's history: where each earlier timeline
	// ended (TIMELINE_HISTORY; empty on timeline 1).
	History []timelineFork `json:"history,omitempty"`
	Updated time.Time      `json:"updated"`
}

// Kinds of server capture can find when it (re)connects, as the "found"
// label of tidemark_capture_source_checks_total and in the logs.
const (
	foundSameServer      = "same_server"       // same system id and timeline: a restart or a lost connection
	foundPromotedStandby = "promoted_standby"  // same system id, a later timeline: a failover or switchover within the cluster
	foundOlderTimeline   = "older_timeline"    // same system id, an earlier timeline: a former primary still accepting writes
	foundOtherCluster    = "different_cluster" // another system id: not this stream's source at all
)

// identifyConn runs IDENTIFY_SYSTEM on an open replication connection.
func identifyConn(ctx context.Context, conn *pgconn.PgConn) (sourceIdentity, error) {
	res, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return sourceIdentity{}, fmt.Errorf("identify system: %w", err)
	}
	id := sourceIdentity{SystemID: res.SystemID, Timeline: res.Timeline}
	if nc := conn.Conn(); nc != nil {
		id.Server = nc.RemoteAddr().String()
	}
	if id.History, err = timelineHistory(ctx, conn, id.Timeline); err != nil {
		return sourceIdentity{}, err
	}
	return id, nil
}

// identifySource opens a replication connection (with a multi-host --pg,
// to the first server that accepts writes) and identifies the server.
func identifySource(ctx context.Context, pgURL string) (sourceIdentity, error) {
	conn, err := connectReplication(ctx, pgURL)
	if err != nil {
		return sourceIdentity{}, err
	}
	defer closeConn(conn)
	return identifyConn(ctx, conn)
}

// classifySource says what kind of server cur is, given the one capture
// streamed from before.
func classifySource(prev, cur sourceIdentity) string {
	switch {
	case prev.SystemID != cur.SystemID:
		return foundOtherCluster
	case cur.Timeline > prev.Timeline:
		return foundPromotedStandby
	case cur.Timeline < prev.Timeline:
		return foundOlderTimeline
	}
	return foundSameServer
}

// getSource reads META's source record (nil when absent: a first start, or
// an archive written before capture recorded it).
func getSource(ctx context.Context, kv jetstream.KeyValue) (*sourceIdentity, error) {
	e, err := kv.Get(ctx, KeySource)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read META %s: %w", KeySource, err)
	}
	var s sourceIdentity
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return nil, fmt.Errorf("decode META %s: %w", KeySource, err)
	}
	return &s, nil
}

func putSource(ctx context.Context, kv jetstream.KeyValue, s sourceIdentity) error {
	s.Updated = time.Now().UTC()
	b, _ := json.Marshal(s)
	if _, err := kv.Put(ctx, KeySource, b); err != nil {
		return fmt.Errorf("write META %s: %w", KeySource, err)
	}
	return nil
}

// checkSource compares the server a replication connection reached with
// the one capture streamed from before (c.source, or META's record at
// start), reports what it found (log, metrics) and records it. A
// different cluster, or an earlier timeline of this one, is fatal.
func (c *Capture) checkSource(ctx context.Context, cur sourceIdentity) error {
	prev := c.source
	if prev == nil {
		p, err := getSource(ctx, c.kv)
		if err != nil {
			return err
		}
		if p == nil {
			// First start, or META written by an earlier version: the
			// system id was checked against META's system_id already.
			c.log.Info("source identified", "system_id", cur.SystemID, "timeline", cur.Timeline, "server", cur.Server)
			c.setSource(cur)
			return nil
		}
		prev = p
	}
	found := classifySource(*prev, cur)
	metricSourceChecks.WithLabelValues(found).Inc()
	metricTimeline.Set(float64(cur.Timeline))
	attrs := []any{"found", found, "system_id", cur.SystemID, "timeline", cur.Timeline, "server", cur.Server,
		"previous_system_id", prev.SystemID, "previous_timeline", prev.Timeline, "previous_server", prev.Server}
	switch found {
	case foundOtherCluster:
		c.log.Error("source is a different server: not the cluster this stream was captured from", attrs...)
		return fatal(fmt.Errorf("%w: capture streamed from system %s (timeline %d, %s) and now reached system %s (timeline %d, %s), a different cluster",
			ErrSystemIDChanged, prev.SystemID, prev.Timeline, prev.Server, cur.SystemID, cur.Timeline, cur.Server),
			"check --pg: every host it lists must be a server of the same cluster (the primary and its physical standbys); "+
				"capturing a different cluster needs a new stream and archive")
	case foundOlderTimeline:
		c.log.Error("source is on an earlier timeline than the one capture streamed from: a former primary still accepts writes", attrs...)
		return fatal(fmt.Errorf("%w: capture streamed from timeline %d (%s) and now reached timeline %d (%s) of the same cluster; "+
			"that server is a former primary whose history the cluster has left", ErrOlderTimeline, prev.Timeline, prev.Server, cur.Timeline, cur.Server),
			"stop or rebuild the former primary (pg_rewind, or a new base backup as a standby) and make sure --pg reaches the current primary")
	case foundPromotedStandby:
		c.log.Warn("source failed over: the server is a promoted standby of the same cluster (same system id, new timeline)", attrs...)
		if err := c.checkFork(ctx, *prev, cur); err != nil {
			return err
		}
	default:
		if cur.Server != prev.Server {
			c.log.Info("source reached at another address: same cluster, same timeline", attrs...)
		}
	}
	if found != foundSameServer {
		c.failedOverFrom = prev
	}
	c.setSource(cur)
	return nil
}

// setSource makes cur the server checked last; META records it once
// capture streams from it (sourceStreaming), so a capture that stops
// before — a missing slot, a failed resync — compares with the old server
// again when it restarts.
func (c *Capture) setSource(cur sourceIdentity) {
	metricTimeline.Set(float64(cur.Timeline))
	if c.source == nil || c.source.SystemID != cur.SystemID || c.source.Timeline != cur.Timeline || c.source.Server != cur.Server {
		c.sourceDirty = true
	}
	c.source = &cur
}

// sourceStreaming records in META the server capture now streams from,
// and forgets the failover that led there.
func (c *Capture) sourceStreaming(ctx context.Context) error {
	if c.source == nil || !c.sourceDirty {
		return nil
	}
	if err := putSource(ctx, c.kv, *c.source); err != nil {
		return err
	}
	c.sourceDirty, c.failedOverFrom = false, nil
	return nil
}

// recheckSource identifies the server --pg reaches now and checks it
// (checkSource): after a lost connection the next server may be a promoted
// standby, or not of this cluster at all.
func (c *Capture) recheckSource(ctx context.Context) error {
	cur, err := identifySource(ctx, c.cfg.PGURL)
	if err != nil {
		return err
	}
	return c.checkSource(ctx, cur)
}

// checkStreamingConn makes sure the connection about to stream reached the
// server last checked: with a multi-host --pg, a failover between the
// check and this connection is possible.
func (c *Capture) checkStreamingConn(ctx context.Context, conn *pgconn.PgConn) error {
	cur, err := identifyConn(ctx, conn)
	if err != nil {
		return err
	}
	if c.source != nil && cur.SystemID == c.source.SystemID && cur.Timeline == c.source.Timeline {
		return nil
	}
	return c.checkSource(ctx, cur)
}

// checkFork compares the archive's durable watermark with the point where
// the new timeline left the one capture streamed from. Past that point
// the old primary may have committed — and the archive may hold —
// transactions the promoted standby never received (asynchronous
// replication): that is reported loudly, with the range, and counted in
// tidemark_capture_archive_past_fork_bytes.
func (c *Capture) checkFork(ctx context.Context, prev, cur sourceIdentity) error {
	fork, ok := forkOf(cur.History, prev.Timeline)
	if !ok {
		c.log.Error("the new timeline's history does not name the timeline capture streamed from; cannot tell where they forked",
			"timeline", cur.Timeline, "previous_timeline", prev.Timeline, "history", cur.History)
		return nil
	}
	w, hasWM, err := getWatermark(ctx, c.kv)
	if err != nil {
		return err
	}
	attrs := []any{"previous_timeline", prev.Timeline, "timeline", cur.Timeline, "fork_lsn", fork.String()}
	if !hasWM || w.LSN <= fork {
		metricPastFork.Set(0)
		c.log.Info("the archive's durable watermark is not past the fork point: nothing archived so far can be missing on the new primary",
			append(attrs, "archive_watermark", w.LSN.String())...)
		return nil
	}
	metricPastFork.Set(float64(w.LSN - fork))
	c.log.Error("the archive holds positions past the fork point of the new timeline: transactions the old primary committed there "+
		"may be archived although the new primary does not have them (diverged history); do not restore past the fork time "+
		"without checking them against the new primary",
		append(attrs, "archive_watermark", w.LSN.String(), "archive_watermark_time", w.CommitTime, "past_fork_bytes", uint64(w.LSN-fork))...)
	return nil
}
