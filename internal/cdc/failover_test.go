package cdc

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// dbOf returns the database name of a connection URL.
func dbOf(t *testing.T, url string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

// TestCapture_FollowsPrimaryAndTellsPromotedStandby: with a multi-host --pg
// capture streams from the primary; after the primary stops and its standby
// is promoted, capture reconnects to the standby, recognises a promoted
// standby of the same cluster (same system id, timeline 1 → 2), records it
// and — PostgreSQL 15 carries no logical slot to the standby, and the
// resync is switched off here — stops with ErrSlotMissing naming the
// failover instead of creating a slot.
func TestCapture_FollowsPrimaryAndTellsPromotedStandby(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	primary := testrig.StartPostgres(t)
	e := newEnv(t, primary)
	standby := testrig.StartStandby(t, primary)
	e.pgURL = testrig.MultiHostURL(dbOf(t, e.pgURL), primary, standby)
	cfg := e.config()
	cfg.NoResync = true
	before := testutil.ToFloat64(metricSourceChecks.WithLabelValues(foundPromotedStandby))
	_, done := e.run(cfg)
	e.waitStreaming()
	e.exec("INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data) SELECT gen_random_uuid(), 'fo-' || g, 'Fill', '{}' FROM generate_series(1, 20) g")
	e.waitAllCaptured(cfg.Stream, 30*time.Second)
	if err := standby.WaitReplayed(ctx, primary); err != nil {
		t.Fatal(err)
	}
	src, err := getSource(ctx, e.last.kv)
	if err != nil || src == nil || src.Timeline != 1 || !strings.HasSuffix(src.Server, ":"+strconv.Itoa(primary.Port)) {
		t.Fatalf("META source before the failover = %+v, %v; want timeline 1 on the primary's port %d", src, err, primary.Port)
	}
	if err := primary.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	var runErr error
	select {
	case runErr = <-done:
	case <-ctx.Done():
		t.Fatal("capture kept running after the failover to a server without the slot")
	}
	wantFatal(t, runErr, ErrSlotMissing, "sync_replication_slots")
	if !strings.Contains(runErr.Error(), "promoted standby of the same cluster") || !strings.Contains(runErr.Error(), "timeline 1") {
		t.Fatalf("error %q does not name the failover to a promoted standby", runErr)
	}
	if got := testutil.ToFloat64(metricSourceChecks.WithLabelValues(foundPromotedStandby)); got != before+1 {
		t.Fatalf("promoted_standby checks = %v, want %v", got, before+1)
	}
	if !strings.Contains(e.logs.String(), "source failed over: the server is a promoted standby of the same cluster") {
		t.Fatal("no log line reporting the promoted standby")
	}
	if !strings.Contains(e.logs.String(), "the archive's durable watermark is not past the fork point") {
		t.Fatal("no log line saying the archive is not past the fork point (no watermark: nothing archived)")
	}
	// META names the server capture last streamed from: still the old
	// primary, so a restarted capture sees the failover again. (Capture's
	// own NATS connection is closed now.)
	kv, err := e.js.KeyValue(ctx, feed.MetaBucket(cfg.Stream))
	if err != nil {
		t.Fatal(err)
	}
	if src, err = getSource(ctx, kv); err != nil || src == nil || src.Timeline != 1 || !strings.HasSuffix(src.Server, ":"+strconv.Itoa(primary.Port)) {
		t.Fatalf("META source after the failed failover = %+v, %v; want timeline 1 on the old primary's port %d", src, err, primary.Port)
	}
	if s := e.slotState(); s.Exists {
		t.Fatal("capture created a slot on the promoted standby")
	}
}

// TestCapture_DifferentServerAfterReconnectIsFatal: a multi-host --pg
// whose second host is another cluster: when the first stops, capture
// reaches the other cluster and stops with ErrSystemIDChanged.
func TestCapture_DifferentServerAfterReconnectIsFatal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	first := testrig.StartPostgres(t)
	other := testrig.StartPostgres(t)
	e := newEnv(t, first)
	db := dbOf(t, e.pgURL)
	oc := testrig.Connect(t, other.URL("postgres"))
	if _, err := oc.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	e.pgURL = testrig.MultiHostURL(db, first, other)
	cfg := e.config()
	before := testutil.ToFloat64(metricSourceChecks.WithLabelValues(foundOtherCluster))
	_, done := e.run(cfg)
	e.waitStreaming()
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	var runErr error
	select {
	case runErr = <-done:
	case <-ctx.Done():
		t.Fatal("capture kept running against a different cluster")
	}
	wantFatal(t, runErr, ErrSystemIDChanged, "same cluster")
	if !strings.Contains(runErr.Error(), "a different cluster") {
		t.Fatalf("error %q does not say the server is a different cluster", runErr)
	}
	if got := testutil.ToFloat64(metricSourceChecks.WithLabelValues(foundOtherCluster)); got != before+1 {
		t.Fatalf("different_cluster checks = %v, want %v", got, before+1)
	}
}

func TestClassifySource(t *testing.T) {
	prev := sourceIdentity{SystemID: "7", Timeline: 2, Server: "a:1"}
	for _, c := range []struct {
		cur  sourceIdentity
		want string
	}{
		{sourceIdentity{SystemID: "7", Timeline: 2, Server: "a:1"}, foundSameServer},
		{sourceIdentity{SystemID: "7", Timeline: 2, Server: "b:1"}, foundSameServer},
		{sourceIdentity{SystemID: "7", Timeline: 3, Server: "b:1"}, foundPromotedStandby},
		{sourceIdentity{SystemID: "7", Timeline: 1, Server: "a:1"}, foundOlderTimeline},
		{sourceIdentity{SystemID: "8", Timeline: 2, Server: "a:1"}, foundOtherCluster},
	} {
		if got := classifySource(prev, c.cur); got != c.want {
			t.Errorf("classifySource(%+v) = %s, want %s", c.cur, got, c.want)
		}
	}
}

// TestCreateSlotCommand: PostgreSQL 17 and later get a failover slot; the
// PostgreSQL 15 of this rig refuses that option (so the version check is
// what keeps capture working there) and accepts the form capture sends it.
func TestCreateSlotCommand(t *testing.T) {
	if got := createSlotCommand("s", 170000); got != "CREATE_REPLICATION_SLOT s LOGICAL pgoutput (SNAPSHOT 'export', FAILOVER true)" {
		t.Fatalf("PG17 command = %q", got)
	}
	if got := createSlotCommand("s", 160004); got != "CREATE_REPLICATION_SLOT s LOGICAL pgoutput EXPORT_SNAPSHOT" {
		t.Fatalf("PG16 command = %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg := sharedPG.Get(t)
	url := pg.NewDatabase(t)
	pool := testrig.Connect(t, url)
	version, err := serverVersionNum(ctx, pool)
	if err != nil || version < 150000 || version >= failoverSlotsVersion {
		t.Fatalf("server_version_num = %d, %v; want PostgreSQL 15 or 16 here", version, err)
	}
	conn, err := connectReplication(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn(conn)
	slot := fmt.Sprintf("tm_cmd_%d", slotCounter.Add(1))
	if _, err := pglogrepl.ParseCreateReplicationSlot(conn.Exec(ctx, createSlotCommand(slot, failoverSlotsVersion))); err == nil {
		t.Fatal("PostgreSQL 15 accepted FAILOVER; the version check would be unnecessary")
	}
	res, err := pglogrepl.ParseCreateReplicationSlot(conn.Exec(ctx, createSlotCommand(slot, version)))
	if err != nil || res.SnapshotName == "" {
		t.Fatalf("create slot with the command for version %d: %+v, %v", version, res, err)
	}
	if err := pglogrepl.DropReplicationSlot(ctx, conn, slot, pglogrepl.DropReplicationSlotOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestCapture_ReportsArchivePastFork: the standby stops receiving WAL, the
// primary commits more and the archive's watermark (written to META here as
// the archiver would) moves past what the standby has; the primary crashes
// (-m immediate) and the standby is promoted. Capture reports that the
// archive holds positions past the new timeline's fork point, with the
// distance in tidemark_capture_archive_past_fork_bytes, and resyncs with a
// base past the fork (the archiver marks what diverged).
func TestCapture_ReportsArchivePastFork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	primary := testrig.StartPostgres(t)
	e := newEnv(t, primary)
	standby := testrig.StartStandby(t, primary)
	e.pgURL = testrig.MultiHostURL(dbOf(t, e.pgURL), primary, standby)
	cfg := e.config()
	stop, done := e.run(cfg)
	e.waitStreaming()
	if err := standby.WaitReplayed(ctx, primary); err != nil {
		t.Fatal(err)
	}
	if err := standby.Stop(); err != nil {
		t.Fatal(err)
	}
	e.exec("INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data) SELECT gen_random_uuid(), 'lost-' || g, 'Fill', '{}' FROM generate_series(1, 50) g")
	e.waitAllCaptured(cfg.Stream, 30*time.Second)
	var lsn string
	e.queryRow("SELECT pg_current_wal_lsn()::text", &lsn)
	wm, err := event.ParsePosition(lsn)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(feed.Watermark{LSN: wm, CommitTime: time.Now().UTC()})
	if _, err := e.last.kv.Put(ctx, feed.KeyWatermark, b); err != nil {
		t.Fatal(err)
	}
	if err := primary.StopImmediate(); err != nil {
		t.Fatal(err)
	}
	if err := standby.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	// Capture resyncs all the same (the archiver marks what diverged): the
	// new rows reach the feed, and the resync names the fork below its base.
	e.exec("INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data) SELECT gen_random_uuid(), 'after-' || g, 'Fill', '{}' FROM generate_series(1, 5) g")
	fl := e.waitAllCaptured(cfg.Stream, 60*time.Second)
	var begin *event.Resync
	for _, hb := range fl.heartbeats {
		if hb.Resync != nil && hb.Resync.Phase == event.ResyncBegin {
			begin = hb.Resync
		}
	}
	if begin == nil || begin.ForkLSN == 0 || begin.Base <= begin.ForkLSN {
		t.Fatalf("resync begin %+v: want a base past the fork point", begin)
	}
	if !strings.Contains(e.logs.String(), "the feed holds positions past the fork point") {
		t.Fatal("no log line reporting feed positions past the fork point")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("capture: %v", err)
		}
	default:
	}
	if !strings.Contains(e.logs.String(), "the archive holds positions past the fork point of the new timeline") {
		t.Fatal("no log line reporting archived positions past the fork point")
	}
	src := e.last.source // Run has returned
	if src == nil || src.Timeline != 2 {
		t.Fatalf("capture's last server = %+v, want timeline 2", src)
	}
	fork, ok := forkOf(src.History, 1)
	if !ok || fork >= wm {
		t.Fatalf("fork of timeline 1 = %s (found %v), want one below the watermark %s", fork, ok, wm)
	}
	if got := testutil.ToFloat64(metricPastFork); got < float64(wm-fork) {
		t.Fatalf("tidemark_capture_archive_past_fork_bytes = %v, want at least %d", got, uint64(wm-fork))
	}
}

func TestParseTimelineHistory(t *testing.T) {
	got, err := parseTimelineHistory([]byte("1\t0/3000148\tno recovery target specified\n\n# comment\n2\t1/A0\tbefore 2026-01-01\n"))
	if err != nil || len(got) != 2 || got[0] != (timelineFork{1, 0x3000148}) || got[1] != (timelineFork{2, 0x1000000A0}) {
		t.Fatalf("parse = %+v, %v", got, err)
	}
	for _, bad := range []string{"1\n", "x\t0/1\n", "1\tzz\n", "-1\t0/1\n"} {
		if _, err := parseTimelineHistory([]byte(bad)); err == nil {
			t.Errorf("parse %q succeeded, want an error", bad)
		}
	}
	if sp, ok := forkOf(got, 2); !ok || sp != 0x1000000A0 {
		t.Fatalf("forkOf(2) = %s, %v", sp, ok)
	}
	if _, ok := forkOf(got, 3); ok {
		t.Fatal("forkOf(3) found a fork that is not in the history")
	}
}

func FuzzParseTimelineHistory(f *testing.F) {
	f.Add([]byte("1\t0/3000148\tno recovery target specified\n"))
	f.Add([]byte("# c\n1\t0/1\n2\tFFFFFFFF/FFFFFFFF\tx y z\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseTimelineHistory(b)
		if err != nil {
			return
		}
		for _, fk := range got {
			if fk.Timeline < 0 {
				t.Fatalf("negative timeline %d from %q", fk.Timeline, b)
			}
		}
	})
}

// TestCapture_ResyncAfterSwitchover: after a switchover to the standby
// (old primary stopped cleanly, standby promoted) capture creates a new
// slot on the new primary and publishes a resync — begin heartbeat above
// every earlier position, the rows committed since the watermark minus the
// overlap with their original commit times, done heartbeat at the slot's
// consistent point — and then streams what the application writes there.
func TestCapture_ResyncAfterSwitchover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	primary := testrig.StartPostgres(t)
	e := newEnv(t, primary)
	standby := testrig.StartStandby(t, primary)
	e.pgURL = testrig.MultiHostURL(dbOf(t, e.pgURL), primary, standby)
	cfg := e.config()
	cfg.ResyncOverlap = time.Minute
	// As in production: the slot is confirmed only up to the archive's
	// watermark (written below as an archiver would), never past it.
	cfg.ConfirmOn = ConfirmArchive
	_, done := e.run(cfg)
	e.waitStreaming()
	e.exec("INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data) SELECT gen_random_uuid(), 'old-' || g, 'Fill', '{}' FROM generate_series(1, 30) g")
	before := e.waitAllCaptured(cfg.Stream, 30*time.Second)
	var lastTime time.Time
	var lastEnd event.Position
	for _, ev := range before.events {
		lastEnd = max(lastEnd, ev.EndLSN)
		if ev.CommitTime.After(lastTime) {
			lastTime = ev.CommitTime
		}
	}
	// The archive's watermark as an archiver would publish it: the last
	// transaction and its commit time.
	b, _ := json.Marshal(feed.Watermark{LSN: lastEnd, CommitTime: lastTime})
	if _, err := e.last.kv.Put(ctx, feed.KeyWatermark, b); err != nil {
		t.Fatal(err)
	}
	// A fast shutdown can wait for capture's walsender, which never sees
	// the shutdown checkpoint confirmed, until capture lets go of it (when
	// a heartbeat fails with 57P01): the rig escalates to an immediate
	// shutdown only if neither happens. (Whether the walsender waits
	// depends on timing; source-switchover shows the wait.)
	if err := primary.Stop(); err != nil {
		t.Fatal(err)
	}
	if log, err := os.ReadFile(primary.LogPath); err != nil || strings.Contains(string(log), "immediate shutdown request") {
		t.Fatalf("the primary's fast shutdown did not finish by itself (capture held its walsender): %v\n%s", err, log)
	}
	if _, err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	e.exec("INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data) SELECT gen_random_uuid(), 'new-' || g, 'Fill', '{}' FROM generate_series(1, 20) g")
	fl := e.waitAllCaptured(cfg.Stream, 60*time.Second)
	select {
	case err := <-done:
		t.Fatalf("capture stopped: %v", err)
	default:
	}
	var begin, fin *event.Resync
	var beginAt, finAt event.Position
	for _, hb := range fl.heartbeats {
		if hb.Resync == nil {
			continue
		}
		switch hb.Resync.Phase {
		case event.ResyncBegin:
			begin, beginAt = hb.Resync, hb.LSN
		case event.ResyncDone:
			fin, finAt = hb.Resync, hb.LSN
		}
	}
	if begin == nil || fin == nil {
		t.Fatalf("no resync heartbeats in the feed (begin %v, done %v)", begin, fin)
	}
	if begin.ID != fin.ID || beginAt != begin.Base+1 || finAt != fin.SlotLSN || begin.Base < lastEnd ||
		begin.Timeline != 2 || begin.PrevTimeline != 1 || begin.ForkLSN == 0 || begin.Base > begin.ForkLSN {
		t.Fatalf("resync begin %+v at %s, done %+v at %s; want base >= %s, timeline 1 -> 2, base below the fork", begin, beginAt, fin, finAt, lastEnd)
	}
	if want := lastTime.Add(-time.Minute); !begin.From.Equal(want) {
		t.Fatalf("resync from %s, want the watermark time minus the overlap, %s", begin.From, want)
	}
	// Every old row (committed within the window) is re-read once, at a
	// position inside the resync, with its original commit time.
	reread := map[string]time.Time{}
	for _, ev := range fl.events {
		if ev.EndLSN > begin.Base+1 && ev.EndLSN < fin.SlotLSN {
			reread[string(ev.Values[0])] = ev.CommitTime
		}
	}
	for _, ev := range before.events {
		ct, ok := reread[string(ev.Values[0])]
		if !ok || !ct.Equal(ev.CommitTime) {
			t.Fatalf("event %s (commit %s) re-read: %v at %s; want its original commit time", ev.Values[0], ev.CommitTime, ok, ct)
		}
	}
	if fin.Rows != len(reread) {
		t.Fatalf("done heartbeat counts %d rows, the feed holds %d re-read events", fin.Rows, len(reread))
	}
	src, err := getSource(ctx, e.last.kv)
	if err != nil || src == nil || src.Timeline != 2 {
		t.Fatalf("META source after the resync = %+v, %v; want timeline 2", src, err)
	}
}
