package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRun_Tiny runs every driver on a tiny backlog: it proves the
// measuring code counts what it should, not how fast anything is.
func TestRun_Tiny(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := Run(ctx, Config{
		Dir: testDir(t), Events: 2000, Streams: 100, SteadyRate: 400, SteadyDuration: 3 * time.Second,
		SkipMicro: true, Progress: func(msg string, args ...any) { t.Log(append([]any{msg}, args...)...) },
	})
	if err != nil {
		if res != nil {
			t.Log("\n" + Table(res.Rows()))
		}
		t.Fatal(err)
	}
	t.Log("\n" + Table(res.Rows()) + "\n" + CPUTable(res.CPU))
	checks := []struct {
		name string
		ok   bool
	}{
		{"backlog events", res.Load.Events == 2000},
		{"two recvlogical runs", len(res.RecvLogical) == 2 && res.RecvLogical[0] > 0 && res.RecvLogical[1] > 0},
		{"capture drain timed", res.Capture > 0},
		{"archiver drain timed", res.Archiver > 0},
		{"raw json measured", res.RawJSONBytes > 2000*400},
		{"archive holds segments", res.Segments > 0 && res.SegmentBytes > 0 && res.ArchiveBytes >= res.SegmentBytes},
		{"copy baseline rows", res.CopyRows == 2000},
		{"late restore restored the backlog", res.RestoreLate.Events == 2000 && res.RestoreLate.MaxRSS > 0},
		{"early restore restored what the source committed by T", res.RestoreEarly.Events == res.EarlyExpected &&
			res.EarlyExpected >= 200 && res.EarlyExpected < 2000},
		{"steady events written", res.SteadyEvents > 0 && res.SteadyEvents >= res.Steady.Events},
		{"every steady event probed", len(res.StoredLatency) == int(res.SteadyEvents) && res.ProbeBad == 0 &&
			len(res.DeliveredLatency) == len(res.StoredLatency)},
		{"stored before delivered", len(res.StoredLatency) > 0 && res.StoredLatency[0] > 0 &&
			Percentile(res.StoredLatency, 0.5) <= Percentile(res.DeliveredLatency, 0.5)},
		{"source delay observed", res.SourceOK && res.SourceDelayP50 > 0 && res.SourceDelayP50 <= res.SourceDelayP99},
		{"every steady event has an RPO", len(res.RPO) == int(res.SteadyEvents) && res.RPOUncovered == 0},
		{"peak rss read", res.RSSCapture > 0 && res.RSSArchiver > 0},
		{"merged backlog restored from one segment", res.MergedBytes == 0 ||
			(res.MergedEvents >= 2000 && res.RestoreMerged.Events == 2000 && res.RestoreMerged.Segments == 1)},
		{"replay read the backlog", res.Replay.Events >= 2000 && res.Replay.Wall > 0},
		{"cpu accounted per phase", len(res.CPU) == 11 && res.CPU[1].By["capture"] > 0 && res.CPU[0].By["pg_recvlogical"] > 0},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: check failed", c.name)
		}
	}
	rows := res.Rows()
	if len(rows) < 12 || !strings.Contains(Table(rows), "capture ÷ pg_recvlogical") || !strings.Contains(Markdown(rows), "| archiver ÷ capture") {
		t.Errorf("table incomplete:\n%s", Table(rows))
	}
}

// testDir is the run's directory: BENCH_TEST_DIR when set (kept, for
// reading logs after a failure), else a test temporary directory.
func testDir(t *testing.T) string {
	if d := os.Getenv("BENCH_TEST_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}
