package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/merge"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
)

// AgeConfig configures the time-compressed soak of an archive's costs.
type AgeConfig struct {
	// Store is the archive (empty); the soak writes to it on a simulated clock.
	Store objstore.Store
	// Days is how many simulated days to run; Marks the days to measure at
	// (each ≤ Days).
	Days  int
	Marks []int
	// EventsPerFlush is the events of each simulated second's flush.
	EventsPerFlush int
	// Policy is the merge policy (merge.DefaultLevels when zero).
	Policy merge.Policy
	// Grace is the GC grace (catalog.DefaultGCGrace when zero).
	Grace time.Duration
	// MergeEvery and GCEvery are the simulated intervals between merge and
	// GC runs (10 s and 5 min when zero).
	MergeEvery, GCEvery time.Duration
	// TempDir holds the merger's temporary files.
	TempDir string
	// DaySeconds shortens the simulated day for tests (86400 when zero).
	DaySeconds int
	// Progress, when set, is told about each simulated hour.
	Progress func(msg string, args ...any)
}

// AgeMark is what the archive costs after Day simulated days.
type AgeMark struct {
	Day int `json:"day"`
	// Objects is every object in the store; Segments the segment objects
	// among them, Live the live segments.
	Objects  int `json:"objects"`
	Segments int `json:"segment_objects"`
	Live     int `json:"live_segments"`
	// SegmentBytes and CatalogBytes are the stored bytes of segment objects
	// and of catalog objects (entries, checkpoints, epochs).
	SegmentBytes int64 `json:"segment_bytes"`
	CatalogBytes int64 `json:"catalog_bytes"`
	// LargestCheckpoint is the newest checkpoint's size.
	LargestCheckpoint int64 `json:"largest_checkpoint_bytes"`
	// AppendP99 is the 99th percentile of Writer.Append since the last mark.
	AppendP99 time.Duration `json:"append_p99_ns"`
	// Load is the time of one catalog.Load; Verify of one catalog.Verify.
	Load   time.Duration `json:"load_ns"`
	Verify time.Duration `json:"verify_ns"`
	// VerifyWorst is the worst severity Verify found.
	VerifyWorst string `json:"verify_worst"`
	// RestorePlan is the number of objects a restore to the watermark plans.
	RestorePlan int `json:"restore_plan_objects"`
	// Events is the events archived so far.
	Events int64 `json:"events"`
	// Wall is the real time the soak has run.
	Wall time.Duration `json:"wall_ns"`
}

// AgeReport is the soak's result.
type AgeReport struct {
	Config struct {
		Days           int    `json:"days"`
		EventsPerFlush int    `json:"events_per_flush"`
		Levels         string `json:"levels"`
		Grace          string `json:"grace"`
	} `json:"config"`
	Marks []AgeMark `json:"marks"`
}

// simClock is the soak's simulated time.
type simClock struct{ t time.Time }

func (c *simClock) now() time.Time { return c.t }

// Age runs the real catalog writer, merger and garbage collector on a
// simulated clock: one flush segment of EventsPerFlush events per simulated
// second, merges every MergeEvery, GC every GCEvery, and measures the
// archive at each mark.
func Age(ctx context.Context, cfg AgeConfig) (*AgeReport, error) {
	s, err := newAgeSoak(ctx, cfg)
	if err != nil {
		return nil, err
	}
	rep := &AgeReport{}
	rep.Config.Days, rep.Config.EventsPerFlush = cfg.Days, cfg.EventsPerFlush
	levels := s.merger.Policy.Levels
	if levels == nil {
		levels = merge.DefaultLevels
	}
	rep.Config.Levels, rep.Config.Grace = merge.FormatLevels(levels), s.grace.String()
	marks := slices.Clone(cfg.Marks)
	slices.Sort(marks)
	for day := 1; day <= cfg.Days; day++ {
		if err := s.runDay(ctx); err != nil {
			return rep, err
		}
		if slices.Contains(marks, day) {
			m, err := s.measure(ctx, day)
			if err != nil {
				return rep, err
			}
			rep.Marks = append(rep.Marks, m)
		}
	}
	return rep, nil
}

type ageSoak struct {
	cfg     AgeConfig
	clock   *simClock
	store   objstore.Store
	cat     *catalog.Catalog
	w       *catalog.Writer
	merger  *merge.Merger
	grace   time.Duration
	table   event.Table
	pay     *loadgen.Payloads
	pos     event.Position
	xid     uint32
	version map[string]int64
	events  int64
	appends []time.Duration
	start   time.Time
}

func newAgeSoak(ctx context.Context, cfg AgeConfig) (*ageSoak, error) {
	if cfg.EventsPerFlush <= 0 {
		cfg.EventsPerFlush = 2
	}
	if cfg.MergeEvery <= 0 {
		cfg.MergeEvery = 10 * time.Second
	}
	if cfg.GCEvery <= 0 {
		cfg.GCEvery = 5 * time.Minute
	}
	grace := cfg.Grace
	if grace <= 0 {
		grace = catalog.DefaultGCGrace
	}
	lease, err := catalog.AcquireLease(ctx, cfg.Store, "soak", 1000*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("acquire lease: %w", err)
	}
	cat, err := catalog.Load(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	clock := &simClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	w := catalog.NewWriter(cfg.Store, cat, "soak", lease.Epoch())
	w.Clock = clock.now
	m := &merge.Merger{Store: cfg.Store, Catalog: cat, Writer: w, Policy: cfg.Policy, TempDir: cfg.TempDir}
	return &ageSoak{cfg: cfg, clock: clock, store: cfg.Store, cat: cat, w: w, merger: m, grace: grace,
		table: ageTable(), pay: loadgen.NewPayloads(1, 1), pos: 1000, xid: 1000,
		version: map[string]int64{}, start: time.Now()}, nil
}

// ageTable is EventCore's table as capture describes it.
func ageTable() event.Table {
	return event.Table{Schema: "public", Name: "eventcore_events", Columns: []event.Column{
		{Name: "event_id", Type: "uuid", OID: 2950, NotNull: true, Key: true},
		{Name: "stream_id", Type: "text", OID: 25, NotNull: true},
		{Name: "stream_version", Type: "bigint", OID: 20, NotNull: true},
		{Name: "event_type", Type: "text", OID: 25, NotNull: true},
		{Name: "event_data", Type: "jsonb", OID: 3802, NotNull: true},
		{Name: "metadata", Type: "jsonb", OID: 3802},
		{Name: "created_at", Type: "timestamp with time zone", OID: 1184, NotNull: true},
	}}
}

// runDay simulates one day, a flush a second.
func (s *ageSoak) runDay(ctx context.Context) error {
	day := s.cfg.DaySeconds
	if day <= 0 {
		day = 86400
	}
	for sec := range day {
		s.clock.t = s.clock.t.Add(time.Second)
		if err := s.flush(ctx); err != nil {
			return err
		}
		unix := s.clock.t.Unix()
		if unix%int64(s.cfg.MergeEvery/time.Second) == 0 {
			if _, err := s.merger.RunOnce(ctx); err != nil {
				return fmt.Errorf("merge at %s: %w", s.clock.t, err)
			}
		}
		if unix%int64(s.cfg.GCEvery/time.Second) == 0 {
			if _, err := catalog.Collect(ctx, s.store, catalog.GCOptions{Grace: s.grace, Clock: s.clock.now}); err != nil {
				return fmt.Errorf("gc at %s: %w", s.clock.t, err)
			}
		}
		if s.cfg.Progress != nil && (sec+1)%3600 == 0 {
			s.cfg.Progress("simulated", "time", s.clock.t.Format(time.RFC3339), "events", s.events,
				"live", len(s.cat.Segments()), "wall", time.Since(s.start).Round(time.Second))
		}
	}
	return nil
}

// flush writes one transaction as a level-0 segment and appends its entry.
func (s *ageSoak) flush(ctx context.Context) error {
	prev := s.pos
	s.pos += 100
	s.xid++
	ct := s.clock.t.Add(-200 * time.Millisecond).Truncate(time.Microsecond)
	n := s.cfg.EventsPerFlush
	var buf bytes.Buffer
	sw, err := segment.NewWriter(&buf, segment.WriterOptions{Compression: segment.Zstd, SystemID: "7000000000000000001", Table: s.table})
	if err != nil {
		return err
	}
	for i := range n {
		if err := sw.Append(s.event(prev, ct, i, n)); err != nil {
			return err
		}
	}
	tr, err := sw.Close()
	if err != nil {
		return err
	}
	key := segment.Key(ct.Truncate(time.Minute), s.pos, s.pos, s.table.ID())
	if err := s.store.Put(ctx, key, bytes.NewReader(buf.Bytes()), int64(buf.Len()), objstore.PutOptions{IfAbsent: true}); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	sum := sha256.Sum256(buf.Bytes())
	ref := &catalog.SegmentRef{Key: key, Size: int64(buf.Len()), SHA256: hex.EncodeToString(sum[:]), Events: tr.Events,
		Transactions: tr.Transactions, Table: s.table.QualifiedName(), TableID: s.table.ID(), Compression: "zstd",
		FirstEndLSN: tr.FirstEndLSN, LastEndLSN: tr.LastEndLSN, PrevLSN: tr.PrevLSN,
		MinCommitTime: tr.MinCommitTime, MaxCommitTime: tr.MaxCommitTime, RawBytes: tr.RawBytes}
	start := time.Now()
	if _, err := s.w.Append(ctx, ref, catalog.Watermark{LSN: s.pos, CommitTime: ct}); err != nil {
		return err
	}
	s.appends = append(s.appends, time.Since(start))
	s.events += int64(n)
	return nil
}

// event returns event i of the flush's transaction, an EventCore row.
func (s *ageSoak) event(prev event.Position, ct time.Time, i, n int) *event.Event {
	stream := fmt.Sprintf("account-%d", s.pay.IntN(5000))
	s.version[stream]++
	typ := s.pay.EventType()
	id := uuid.New().String()
	return &event.Event{Table: s.table.QualifiedName(), CommitLSN: s.pos - 1, EndLSN: s.pos, PrevLSN: prev,
		CommitTime: ct, XID: s.xid, Index: i, Count: n,
		Values: [][]byte{[]byte(id), []byte(stream), fmt.Append(nil, s.version[stream]), []byte(typ),
			s.pay.EventData(typ), s.pay.Metadata(uuid.New().String()), []byte(ct.Format("2006-01-02 15:04:05.999999+00"))}}
}

// measure takes the costs at the end of a simulated day.
func (s *ageSoak) measure(ctx context.Context, day int) (AgeMark, error) {
	m := AgeMark{Day: day, Events: s.events, Live: len(s.cat.Segments())}
	objs, err := s.store.List(ctx, "", "")
	if err != nil {
		return m, err
	}
	m.Objects = len(objs)
	var newestCP string
	for _, o := range objs {
		switch {
		case strings.HasPrefix(o.Key, catalog.SegmentsPrefix):
			m.Segments++
			m.SegmentBytes += o.Size
		case strings.HasPrefix(o.Key, "catalog/"):
			m.CatalogBytes += o.Size
			if strings.HasPrefix(o.Key, catalog.CheckpointsPrefix) && o.Key > newestCP {
				newestCP, m.LargestCheckpoint = o.Key, o.Size
			}
		}
	}
	m.AppendP99 = percentile(s.appends, 0.99)
	s.appends = s.appends[:0]
	start := time.Now()
	c, err := catalog.Load(ctx, s.store)
	if err != nil {
		return m, fmt.Errorf("load at day %d: %w", day, err)
	}
	m.Load = time.Since(start)
	m.RestorePlan = len(c.Plan(c.Watermark().CommitTime))
	start = time.Now()
	rep, err := catalog.Verify(ctx, s.store, nil)
	if err != nil {
		return m, fmt.Errorf("verify at day %d: %w", day, err)
	}
	m.Verify = time.Since(start)
	m.VerifyWorst = rep.Worst().String()
	m.Wall = time.Since(s.start)
	return m, nil
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// PrintAge writes the report as a table.
func PrintAge(w io.Writer, r *AgeReport) {
	fmt.Fprintf(w, "time-compressed soak: one flush of %d events per simulated second, merge levels %s, GC grace %s\n\n",
		r.Config.EventsPerFlush, r.Config.Levels, r.Config.Grace)
	fmt.Fprintln(w, "| day | objects | segments (live) | segment MiB | catalog KiB | catalog ÷ segments | newest checkpoint KiB | append p99 | load | restore plans | verify | verify result |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, m := range r.Marks {
		ratio := 0.0
		if m.SegmentBytes > 0 {
			ratio = float64(m.CatalogBytes) / float64(m.SegmentBytes)
		}
		fmt.Fprintf(w, "| %d | %d | %d (%d) | %.1f | %.1f | %.2f %% | %.1f | %s | %s | %d | %s | %s |\n",
			m.Day, m.Objects, m.Segments, m.Live, float64(m.SegmentBytes)/(1<<20), float64(m.CatalogBytes)/1024,
			100*ratio, float64(m.LargestCheckpoint)/1024, m.AppendP99.Round(time.Microsecond), m.Load.Round(time.Millisecond),
			m.RestorePlan, m.Verify.Round(time.Millisecond), m.VerifyWorst)
	}
}
