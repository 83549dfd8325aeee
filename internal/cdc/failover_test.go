package cdc

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

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
// in META, and — PostgreSQL 15 carries no logical slot to the standby —
// stops with ErrSlotMissing naming the failover instead of creating a slot.
func TestCapture_FollowsPrimaryAndTellsPromotedStandby(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	primary := testrig.StartPostgres(t)
	e := newEnv(t, primary)
	standby := testrig.StartStandby(t, primary)
	e.pgURL = testrig.MultiHostURL(dbOf(t, e.pgURL), primary, standby)
	cfg := e.config()
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
	if src, err = getSource(ctx, e.last.kv); err != nil || src == nil || src.Timeline != 2 || !strings.HasSuffix(src.Server, ":"+strconv.Itoa(standby.Port)) {
		t.Fatalf("META source after the failover = %+v, %v; want timeline 2 on the standby's port %d", src, err, standby.Port)
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
