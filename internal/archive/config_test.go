package archive

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/merge"
	"github.com/tidemark/tidemark/internal/segment"
)

func TestConfig_Validate(t *testing.T) {
	var c Config
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if c.Stream != "TIDEMARK" || c.Consumer != "tidemark-archiver" || c.Subjects.Prefix != "tidemark" ||
		c.MaxAckPending != 500000 || c.AckWait != time.Minute || c.ReorderBuffer != 200000 ||
		c.HoleGrace != 3*time.Second || c.SegmentMaxBytes != 64<<20 || c.FlushInterval != time.Second ||
		c.BucketWidth != time.Minute || c.LeaseTTL != 10*time.Second || c.Holder == "" {
		t.Fatalf("defaults not filled: %+v", c)
	}
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"short ack wait", func(c *Config) { c.AckWait = 30 * time.Second }, "ack wait"},
		{"bucket not dividing an hour", func(c *Config) { c.BucketWidth = 7 * time.Minute }, "bucket width"},
		{"sub-minute bucket", func(c *Config) { c.BucketWidth = 30 * time.Second }, "bucket width"},
		{"tiny segments", func(c *Config) { c.SegmentMaxBytes = 10 }, "segment max bytes"},
		{"tiny flush interval", func(c *Config) { c.FlushInterval = time.Millisecond }, "flush interval"},
		{"negative buffer", func(c *Config) { c.ReorderBuffer = -1 }, "reorder buffer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			tc.mut(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error about %s", err, tc.want)
			}
		})
	}
	for _, ok := range []time.Duration{time.Minute, 5 * time.Minute, time.Hour, 2 * time.Hour, 24 * time.Hour} {
		c := Config{BucketWidth: ok}
		if err := c.Validate(); err != nil {
			t.Errorf("bucket width %s: %v", ok, err)
		}
	}
}

func TestPutRate_PerHour(t *testing.T) {
	r := newPutRate()
	t0 := r.started
	for i := range 60 {
		r.add(t0.Add(time.Duration(i)*time.Second), 2)
	}
	if got := r.perHour(t0.Add(time.Minute)); got < 7000 || got > 7400 {
		t.Fatalf("2 PUTs a second = %.0f per hour, want about 7200", got)
	}
	if got := r.perHour(t0.Add(20 * time.Minute)); got != 0 {
		t.Fatalf("after the window: %.0f per hour, want 0", got)
	}
}

func TestHookReader_CallsMidUpload(t *testing.T) {
	var stages []string
	r := &hookReader{data: []byte("0123456789"), hook: func(s string) { stages = append(stages, s) }}
	buf := make([]byte, 64)
	var got []byte
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
		if len(stages) == 0 && len(got) > 5 {
			t.Fatal("more than half was read before the hook")
		}
	}
	if string(got) != "0123456789" || len(stages) != 1 || stages[0] != StageMidUpload {
		t.Fatalf("read %q, stages %v", got, stages)
	}
}

// TestArchiver_LiveCompressionLevel: flushed segments get zstd's fastest
// level only while merges will rewrite them; a level asked for, another
// codec, or merging turned off keep the codec's choice.
func TestArchiver_LiveCompressionLevel(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want int
	}{
		{"defaults", Config{}, liveZstdLevel},
		{"merging off", Config{Merge: merge.Policy{Levels: []time.Duration{}}}, 0},
		{"level asked for", Config{CompressionLevel: 7}, 7},
		{"gzip", Config{Compression: segment.Gzip}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Archiver{cfg: tc.cfg}
			if got := a.writerOptions().Level; got != tc.want {
				t.Fatalf("level %d, want %d", got, tc.want)
			}
		})
	}
}

// TestSession_MergesWait: merges wait while the backlog is large, for at
// most maxMergePostpone in a row, and go on as soon as it is caught up.
func TestSession_MergesWait(t *testing.T) {
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	s := &session{log: slog.New(slog.DiscardHandler)}
	wait := s.mergesWait(func() time.Time { return now })
	steps := []struct {
		backlog uint64
		after   time.Duration
		want    bool
	}{
		{0, 0, false},
		{postponeMergesAbove, 0, false},
		{postponeMergesAbove + 1, 0, true},
		{900_000, maxMergePostpone - time.Second, true},
		{900_000, time.Second, false}, // waited long enough: compact anyway
		{900_000, time.Minute, false},
		{10, time.Second, false}, // caught up: the next backlog waits afresh
		{900_000, time.Second, true},
	}
	for i, st := range steps {
		now = now.Add(st.after)
		s.backlog.Store(st.backlog)
		if got := wait(); got != st.want {
			t.Fatalf("step %d (backlog %d): wait = %v, want %v", i, st.backlog, got, st.want)
		}
	}
}
