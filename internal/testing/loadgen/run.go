package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// Run writes the workload described by cfg into the eventcore store at
// pgURL (the schema must already be applied) and returns what it
// committed. It returns a nil error when the run ends by Events or
// Duration, and ctx's error (with the stats so far) when ctx ends first.
func Run(ctx context.Context, pgURL string, cfg Config) (Stats, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Stats{}, fmt.Errorf("loadgen config: %w", err)
	}
	poolCfg, err := pgxpool.ParseConfig(pgURL)
	if err != nil {
		return Stats{}, fmt.Errorf("parse postgres url: %w", err)
	}
	poolCfg.MaxConns = int32(cfg.Writers)
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return Stats{}, fmt.Errorf("connect postgres: %w", err)
	}
	defer pool.Close()

	// An application at a steady rate already has its connections open;
	// opening them inside the run would put 16 backend start-ups into its
	// first transactions.
	if err := warmUp(ctx, pool, cfg.Writers); err != nil {
		return Stats{}, err
	}
	r := &runner{cfg: cfg, pool: pool}
	r.remaining.Store(cfg.Events)
	if cfg.Rate > 0 {
		r.limiter = newSteadyLimiter(cfg.Rate, time.Now())
	}
	runCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}

	start := time.Now()
	g, gctx := errgroup.WithContext(runCtx)
	for w := range cfg.Writers {
		g.Go(func() error { return r.writer(gctx, uint64(w)) })
	}
	err = g.Wait()
	stats := Stats{
		Events:       r.events.Load(),
		Transactions: r.txns.Load(),
		Conflicts:    r.conflicts.Load(),
		Duration:     time.Since(start),
	}
	if err != nil {
		return stats, err
	}
	return stats, ctx.Err()
}

const (
	maxCommandStreams = 3
	maxCommandEvents  = 10
)

// newSteadyLimiter paces events at perSecond from now on. Its burst (20 ms
// of events, at least one command) lets writers that lost time to a
// conflict catch up; it starts empty, because a full bucket would commit
// a burst at the run's start that no steady application makes.
func newSteadyLimiter(perSecond float64, now time.Time) *rate.Limiter {
	burst := max(maxCommandEvents, int(perSecond/50))
	l := rate.NewLimiter(rate.Limit(perSecond), burst)
	l.AllowN(now, burst)
	return l
}

// warmUp opens n connections of the pool before the run starts.
func warmUp(ctx context.Context, pool *pgxpool.Pool, n int) error {
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("connect postgres: %w", err)
		}
		conns = append(conns, c)
	}
	return nil
}

type runner struct {
	cfg     Config
	pool    *pgxpool.Pool
	limiter *rate.Limiter

	remaining atomic.Int64 // events left when cfg.Events > 0
	events    atomic.Int64
	txns      atomic.Int64
	conflicts atomic.Int64
}

// command is one EventCore command's output: events for a few streams.
type command struct {
	streams []string // distinct, sorted
	events  []pendingEvent
}

type pendingEvent struct {
	id       uuid.UUID
	stream   string
	typ      string
	data     []byte
	metadata []byte
}

// writer runs commands until the budget, the duration or ctx ends.
func (r *runner) writer(ctx context.Context, w uint64) error {
	gen := newGenerator(r.cfg.Seed, w)
	for ctx.Err() == nil {
		cmd := r.plan(gen)
		n := r.take(len(cmd.events))
		if n == 0 {
			return nil
		}
		cmd.events = cmd.events[:n]
		if r.limiter != nil {
			if err := r.limiter.WaitN(ctx, n); err != nil {
				return nil // ctx ended
			}
		}
		if err := r.execute(ctx, gen, cmd); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		r.events.Add(int64(n))
		r.txns.Add(1)
	}
	return nil
}

// take reserves up to n events of the budget and returns how many it got.
func (r *runner) take(n int) int {
	if r.cfg.Events == 0 {
		return n
	}
	for {
		left := r.remaining.Load()
		if left <= 0 {
			return 0
		}
		got := min(int64(n), left)
		if r.remaining.CompareAndSwap(left, left-got) {
			return int(got)
		}
	}
}

// plan picks 1–3 streams and 1–10 events spread over them.
func (r *runner) plan(gen *generator) command {
	k := min(1+gen.rng.IntN(maxCommandStreams), r.cfg.Streams)
	picked := map[int]bool{}
	for len(picked) < k {
		picked[gen.rng.IntN(r.cfg.Streams)] = true
	}
	var cmd command
	for i := range picked {
		cmd.streams = append(cmd.streams, r.cfg.StreamPrefix+"-"+strconv.Itoa(i))
	}
	slices.Sort(cmd.streams)
	total := max(k, 1+gen.rng.IntN(maxCommandEvents))
	counts := make([]int, k)
	for i := range counts {
		counts[i] = 1
	}
	for range total - k {
		counts[gen.rng.IntN(k)]++
	}
	correlation := uuid.NewString()
	// Rows are grouped by stream in sorted order so concurrent commands
	// lock streams in one order and do not deadlock.
	for i, s := range cmd.streams {
		for range counts[i] {
			typ := gen.eventType()
			cmd.events = append(cmd.events, pendingEvent{
				id:       uuid.Must(uuid.NewV7()),
				stream:   s,
				typ:      typ,
				data:     gen.eventData(typ),
				metadata: gen.metadata(correlation),
			})
		}
	}
	return cmd
}

// execute commits cmd under optimistic concurrency: read the streams'
// versions, then in one transaction declare them as expected and insert
// every event in one statement; on a conflict, re-read and retry.
func (r *runner) execute(ctx context.Context, gen *generator, cmd command) error {
	for attempt := 0; ; attempt++ {
		versions, err := readVersions(ctx, r.pool, cmd.streams)
		if err != nil {
			return err
		}
		err = appendEvents(ctx, r.pool, versions, cmd.events)
		if err == nil {
			return nil
		}
		if !IsConflict(err) {
			return err
		}
		r.conflicts.Add(1)
		backoff := time.Duration(1+gen.rng.IntN(1+min(attempt, 10)*2)) * time.Millisecond
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// readVersions returns each stream's current version (0 when empty).
func readVersions(ctx context.Context, q querier, streams []string) (map[string]int64, error) {
	rows, err := q.Query(ctx, `SELECT stream_id, max(stream_version) FROM eventcore_events
		WHERE stream_id = ANY($1) GROUP BY stream_id`, streams)
	if err != nil {
		return nil, fmt.Errorf("read stream versions: %w", err)
	}
	versions := make(map[string]int64, len(streams))
	for _, s := range streams {
		versions[s] = 0
	}
	var (
		id string
		v  int64
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &v}, func() error {
		versions[id] = v
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read stream versions: %w", err)
	}
	return versions, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

type batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// appendEvents commits the events in one transaction that declares the
// expected versions and inserts every event with one multi-row INSERT.
// Both statements travel in one pipelined batch, which PostgreSQL runs as
// one implicit transaction (committed at the batch's end, rolled back
// whole on an error): the rows, the trigger's check and the WAL are those
// of BEGIN … COMMIT, at one round trip instead of four, so the workload's
// own client costs the shared machine less.
func appendEvents(ctx context.Context, db batcher, expected map[string]int64, events []pendingEvent) error {
	exp, err := json.Marshal(expected)
	if err != nil {
		return fmt.Errorf("encode expected versions: %w", err)
	}
	var sb strings.Builder
	sb.WriteString("INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data, metadata) VALUES ")
	args := make([]any, 0, 5*len(events))
	for i, e := range events {
		if i > 0 {
			sb.WriteString(", ")
		}
		p := 5 * i
		fmt.Fprintf(&sb, "($%d, $%d, $%d, $%d::jsonb, $%d::jsonb)", p+1, p+2, p+3, p+4, p+5)
		args = append(args, e.id, e.stream, e.typ, string(e.data), string(e.metadata))
	}
	b := &pgx.Batch{}
	b.Queue("SELECT set_config('eventcore.expected_versions', $1, true)", string(exp))
	b.Queue(sb.String(), args...)
	br := db.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return fmt.Errorf("set expected versions: %w", err)
	}
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return fmt.Errorf("insert events: %w", err)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("commit events: %w", err)
	}
	return nil
}

// IsConflict reports whether err is a lost optimistic-concurrency race an
// application retries: version_conflict (P0001), a duplicate stream version
// from a concurrent first write (23505), a deadlock (40P01) or a
// serialization failure (40001).
func IsConflict(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "P0001", "23505", "40P01", "40001":
		return true
	}
	return false
}
