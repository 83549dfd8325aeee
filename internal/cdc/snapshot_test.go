package cdc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func TestCapture_SnapshotHandOver(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	// Before: rows from committed transactions, plus one row whose commit
	// time is unknown (its xmin frozen).
	if _, err := loadgen.Run(ctx, e.pgURL, loadgen.Config{Writers: 2, Events: 3000, Streams: 50, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	before := len(e.sourceIDs())

	// During: a writer keeps committing while capture creates the slot and
	// reads the snapshot.
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan error, 1)
	go func() {
		_, err := loadgen.Run(loadCtx, e.pgURL, loadgen.Config{Writers: 2, Rate: 2000, Duration: 3 * time.Second, Streams: 50, Seed: 3})
		loadDone <- err
	}()
	time.Sleep(300 * time.Millisecond)
	cfg := e.config()
	stop, _ := e.run(cfg)
	if err := <-loadDone; err != nil {
		t.Fatal(err)
	}
	stopLoad()
	// After.
	if _, err := loadgen.Run(ctx, e.pgURL, loadgen.Config{Writers: 1, Events: 200, Streams: 5, Seed: 4}); err != nil {
		t.Fatal(err)
	}
	fl := e.waitAllCaptured(cfg.Stream, 90*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	src := e.sourceIDs()
	if len(src) <= before+200 {
		t.Fatalf("load during the snapshot wrote nothing (%d rows, %d before)", len(src), before)
	}
	for id, n := range fl.ids {
		if n != 1 || !src[id] {
			t.Errorf("event %s: %d times in the stream, in source %v", id, n, src[id])
		}
	}
	if len(fl.ids) != len(src) {
		t.Errorf("stream has %d events, source %d", len(fl.ids), len(src))
	}

	// The chain: snapshot transactions 1..n, the snapshot-done heartbeat at
	// the consistent point C, then streamed items starting from C.
	var snapDone *event.Heartbeat
	for i := range fl.heartbeats {
		if fl.heartbeats[i].SnapshotDone {
			snapDone = &fl.heartbeats[i]
		}
	}
	if snapDone == nil {
		t.Fatal("no snapshot-done heartbeat")
	}
	cp := snapDone.LSN
	var want event.Position = 1
	snapRows, streamed := 0, 0
	for i, ev := range fl.events {
		if ev.EndLSN < cp {
			snapRows++
			if ev.Index == 0 {
				if ev.EndLSN != want || ev.CommitLSN != want || ev.PrevLSN != want-1 {
					t.Fatalf("snapshot transaction %d: commit %s end %s prev %s", want, ev.CommitLSN, ev.EndLSN, ev.PrevLSN)
				}
				want++
			}
			id := fl.eventMsgs[i].Header.Get(feed.HeaderMsgID)
			if !strings.Contains(id, ".snap.") {
				t.Errorf("snapshot row msg id %q does not name the snapshot", id)
			}
			if ev.CommitTime.IsZero() || ev.Snapshot {
				t.Errorf("snapshot row %s: commit time %v snapshot flag %v (commit timestamps are tracked)", ev, ev.CommitTime, ev.Snapshot)
			}
			continue
		}
		streamed++
		if ev.PrevLSN < cp {
			t.Errorf("streamed transaction %s chains to %s, before the consistent point %s", ev.EndLSN, ev.PrevLSN, cp)
		}
	}
	if snapDone.PrevLSN != want-1 {
		t.Errorf("snapshot-done heartbeat prev %s, want the last snapshot position %d", snapDone.PrevLSN, want-1)
	}
	if snapRows < before || streamed == 0 {
		t.Errorf("snapshot rows %d (%d existed before), streamed %d", snapRows, before, streamed)
	}
	// Snapshot transactions are in commit order.
	for i := 1; i < len(fl.events); i++ {
		a, b := fl.events[i-1], fl.events[i]
		if b.EndLSN < cp && b.CommitTime.Before(a.CommitTime) {
			t.Fatalf("snapshot out of commit order: %s at %v after %s at %v", b, b.CommitTime, a, a.CommitTime)
		}
	}
	t.Logf("snapshot: %d rows in %d transactions, consistent point %s; streamed %d events", snapRows, want-1, cp, streamed)
}

// TestCapture_SnapshotWithoutCommitTimestamps: without
// track_commit_timestamp, snapshot rows carry the snapshot's time and the
// snapshot flag; their values are byte-identical to streamed rows'.
func TestCapture_SnapshotWithoutCommitTimestamps(t *testing.T) {
	pg := testrig.StartPostgres(t, testrig.WithConf("track_commit_timestamp", "off"))
	e := newEnv(t, pg)
	const row = `INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data, metadata, created_at)
		VALUES ($1, $2, 'Same', '{"b": 1, "a": [1.5, 2e3, "x\u00fc"]}', '{"z": null}', '2026-01-02 03:04:05.123456+00')`
	e.exec(row, "0191f3a0-0000-7000-8000-00000000000a", "snap")
	cfg := e.config()
	stop, _ := e.run(cfg)
	e.waitStreaming()
	e.exec(row, "0191f3a0-0000-7000-8000-00000000000b", "streamed")
	fl := e.waitAllCaptured(cfg.Stream, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(fl.events) != 2 {
		t.Fatalf("%d events", len(fl.events))
	}
	snap, streamed := fl.events[0], fl.events[1]
	var done *event.Heartbeat
	for i := range fl.heartbeats {
		if fl.heartbeats[i].SnapshotDone {
			done = &fl.heartbeats[i]
		}
	}
	if done == nil {
		t.Fatal("no snapshot-done heartbeat")
	}
	if !snap.Snapshot || !snap.CommitTime.Equal(done.Time) || snap.EndLSN != 1 {
		t.Errorf("snapshot row: flag %v commit time %v (snapshot %v) position %s", snap.Snapshot, snap.CommitTime, done.Time, snap.EndLSN)
	}
	if streamed.Snapshot {
		t.Error("streamed row flagged as snapshot")
	}
	// event_type, event_data, metadata, created_at (stream_version is 1 for both streams).
	for i := 2; i <= 6; i++ {
		if string(snap.Values[i]) != string(streamed.Values[i]) {
			t.Errorf("column %d: snapshot %q, streamed %q", i, snap.Values[i], streamed.Values[i])
		}
	}
}
