package cdc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// Status describes the slot and the feed, for `capture status`.
type Status struct {
	Slot              string         `json:"slot"`
	Exists            bool           `json:"exists"`
	Active            bool           `json:"active"`
	ActivePID         int            `json:"active_pid,omitempty"`
	ConfirmedFlushLSN event.Position `json:"confirmed_flush_lsn"`
	RestartLSN        event.Position `json:"restart_lsn"`
	CurrentWALLSN     event.Position `json:"current_wal_lsn"`
	RetainedWALBytes  int64          `json:"retained_wal_bytes"`
	WALStatus         string         `json:"wal_status"`
	// LagBytes is pg_current_wal_lsn() - confirmed_flush_lsn.
	LagBytes int64 `json:"lag_bytes"`
	// LastEventCommitTime is the commit time of the newest event in the stream.
	LastEventCommitTime *time.Time `json:"last_event_commit_time,omitempty"`
	// LastItemTime is the source time of the newest event or heartbeat.
	LastItemTime *time.Time `json:"last_item_time,omitempty"`
	// LagSeconds is now minus LastItemTime (heartbeats keep it small on an
	// idle source while capture runs).
	LagSeconds *float64 `json:"lag_seconds,omitempty"`
	// Watermark is the archive's durable watermark from META, when known.
	Watermark *feed.Watermark `json:"watermark,omitempty"`
	// Warnings are parts of the status that could not be read.
	Warnings []string `json:"warnings,omitempty"`
}

// GetStatus reads the slot from the source and the newest items from the
// stream. A NATS failure becomes a warning; a Postgres failure an error.
func GetStatus(ctx context.Context, cfg Config) (*Status, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	pool, err := connectPool(ctx, cfg.PGURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	st := &Status{Slot: cfg.Slot}
	slot, err := readSlot(ctx, pool, cfg.Slot)
	if err != nil {
		return nil, err
	}
	st.Exists, st.Active, st.ActivePID = slot.Exists, slot.Active, slot.ActivePID
	st.ConfirmedFlushLSN, st.RestartLSN, st.WALStatus, st.RetainedWALBytes = slot.ConfirmedFlushLSN, slot.RestartLSN, slot.WALStatus, slot.RetainedBytes
	var cur string
	if err := pool.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&cur); err != nil {
		return nil, fmt.Errorf("read current WAL position: %w", err)
	}
	if st.CurrentWALLSN, err = event.ParsePosition(cur); err != nil {
		return nil, err
	}
	if slot.Exists && st.CurrentWALLSN > slot.ConfirmedFlushLSN {
		st.LagBytes = int64(st.CurrentWALLSN - slot.ConfirmedFlushLSN)
	}
	if err := feedStatus(ctx, cfg, st); err != nil {
		st.Warnings = append(st.Warnings, err.Error())
	}
	return st, nil
}

func feedStatus(ctx context.Context, cfg Config, st *Status) error {
	nc, err := connectNATS(cfg.NATSURL, cfg.NATSCreds)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("open jetstream: %w", err)
	}
	subj := feed.Subjects{Prefix: cfg.SubjectPrefix}
	stream, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		return fmt.Errorf("open stream %s: %w", cfg.Stream, err)
	}
	if m, err := stream.GetLastMsgForSubject(ctx, subj.Events()); err == nil {
		if env, err := feed.DecodeEnvelope(&nats.Msg{Subject: m.Subject, Header: m.Header}); err == nil {
			st.LastEventCommitTime = &env.CommitTime
		}
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("read last event: %w", err)
	}
	last := st.LastEventCommitTime
	if m, err := stream.GetLastMsgForSubject(ctx, subj.Heartbeat()); err == nil {
		if hb, err := feed.DecodeHeartbeat(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}); err == nil && (last == nil || hb.Time.After(*last)) {
			last = &hb.Time
		}
	}
	if last != nil {
		st.LastItemTime = last
		lag := time.Since(*last).Seconds()
		st.LagSeconds = &lag
	}
	if kv, err := js.KeyValue(ctx, feed.MetaBucket(cfg.Stream)); err == nil {
		if w, ok, err := getWatermark(ctx, kv); err == nil && ok {
			st.Watermark = &w
		}
	}
	return nil
}
