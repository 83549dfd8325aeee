package main

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore/storeurl"
	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/harness"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/oracle"
)

// TestRestorer_EndToEnd runs the real pipeline — capture (snapshot, then
// streaming) and the archiver as processes — under a concurrent
// EventCore-style workload, then restores to 20 instants in the window,
// including exact commit times and 1 µs before them, each compared with
// the oracle.
func TestRestorer_EndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := harness.Start(ctx, harness.Options{Dir: t.TempDir(), Store: "file"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// rows before capture starts go through the snapshot
	if _, err := loadgen.Run(ctx, h.SourceURL, loadgen.Config{Writers: 2, Events: 400, Streams: 50, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	capture, err := h.Capture(ctx, "capture", "--heartbeat-interval", "500ms")
	if err != nil {
		t.Fatal(err)
	}
	archiver, err := h.Archiver(ctx, "archiver")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*harness.Proc{capture, archiver} {
		rctx, rcancel := context.WithTimeout(ctx, time.Minute)
		err := p.WaitReady(rctx)
		rcancel()
		if err != nil {
			t.Fatalf("%v\n%s", err, p.LogTail(30))
		}
	}
	if _, err := loadgen.Run(ctx, h.SourceURL, loadgen.Config{Writers: 4, Rate: 1500, Duration: 5 * time.Second, Streams: 200, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	times, err := oracle.CommitTimes(ctx, h.SourceURL, eventcore.Table)
	if err != nil || len(times) < 10 {
		t.Fatalf("commit times: %v (%d)", err, len(times))
	}
	last := times[len(times)-1]
	st, err := storeurl.Open(ctx, h.StoreURL)
	if err != nil {
		t.Fatal(err)
	}
	for {
		c, err := catalog.Load(ctx, st)
		if err == nil && !c.Watermark().CommitTime.Before(last) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the archive did not reach %s\ncapture:\n%s\narchiver:\n%s", restore.FormatTime(last), capture.LogTail(20), archiver.LogTail(20))
		}
		time.Sleep(250 * time.Millisecond)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	instants := []time.Time{times[0], times[0].Add(-time.Microsecond), last}
	for len(instants) < 20 {
		c := times[rng.IntN(len(times))]
		switch rng.IntN(3) {
		case 0:
			instants = append(instants, c)
		case 1:
			instants = append(instants, c.Add(-time.Microsecond))
		default:
			instants = append(instants, c.Add(time.Duration(rng.Int64N(int64(time.Millisecond)))).Truncate(time.Microsecond))
		}
	}
	for i, at := range instants {
		target, err := h.PG.CreateDatabase(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		err = eventcore.Apply(ctx, conn)
		conn.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r := runCmd(t, "restore", "--store", h.StoreURL, "--target", target, "--to", at.Format(time.RFC3339Nano), "--json")
		if r.code != 0 {
			t.Fatalf("instant %d (%s): exit %d\n%s\n%s", i, restore.FormatTime(at), r.code, r.stdout, r.stderr)
		}
		d, err := oracle.CompareTable(ctx, h.SourceURL, target, eventcore.Table, at)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Empty() {
			t.Fatalf("instant %d (%s) differs from the oracle: %s", i, restore.FormatTime(at), d)
		}
	}
	r := runCmd(t, "verify", "--store", h.StoreURL, "--against", h.SourceURL)
	if r.code != 0 {
		t.Fatalf("verify against the source: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("%d commits, %d instants restored and equal to the oracle; verify:\n%s", len(times), len(instants), r.stdout)
}
