package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/tidemark/tidemark/internal/testing/loadgen"
)

// LoadConfig describes the backlog Load writes.
type LoadConfig struct {
	// Events is the number of events to write.
	Events int
	// Streams is the number of distinct streams (10,000).
	Streams int
	// Sessions is the number of parallel writer connections (3).
	Sessions int
	// TxnsPerStatement is how many transactions one round trip carries (200).
	TxnsPerStatement int
	// Seed seeds the payloads and the choice of streams.
	Seed uint64
	// StreamPrefix prefixes every stream id ("bench").
	StreamPrefix string
}

func (c LoadConfig) withDefaults() LoadConfig {
	if c.Streams <= 0 {
		c.Streams = 10_000
	}
	if c.Sessions <= 0 {
		c.Sessions = 3
	}
	c.Sessions = min(c.Sessions, c.Streams)
	if c.TxnsPerStatement <= 0 {
		c.TxnsPerStatement = 200
	}
	if c.StreamPrefix == "" {
		c.StreamPrefix = "bench"
	}
	return c
}

// LoadResult says what Load committed.
type LoadResult struct {
	// Events and Transactions are what was committed.
	Events, Transactions int64
	// Duration is the wall time of the load.
	Duration time.Duration
	// EndLSN is pg_current_wal_lsn() once every transaction committed.
	EndLSN string
}

// Load writes an EventCore-style backlog into eventcore_events at pgURL the
// way EventCore's commands do — transactions of 1–10 events (5.5 on
// average) over 1–3 streams — but fast: several sessions, each sending
// many transactions per round trip as one simple-protocol query string
// (explicit BEGIN/COMMIT split it into real transactions), with stream
// versions assigned by the loader and the version trigger bypassed
// (session_replication_role = replica). Each session owns a disjoint set
// of streams, so versions stay gap-free without locking.
func Load(ctx context.Context, pgURL string, cfg LoadConfig) (LoadResult, error) {
	cfg = cfg.withDefaults()
	var remaining, events, txns atomic.Int64
	remaining.Store(int64(cfg.Events))
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for s := range cfg.Sessions {
		g.Go(func() error {
			w := &loadSession{cfg: cfg, id: s, gen: loadgen.NewPayloads(cfg.Seed, uint64(s)), remaining: &remaining}
			for i := s; i < cfg.Streams; i += cfg.Sessions {
				w.streams = append(w.streams, i)
			}
			w.versions = make(map[int]int64, len(w.streams))
			n, t, err := w.run(gctx, pgURL)
			events.Add(n)
			txns.Add(t)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return LoadResult{}, err
	}
	res := LoadResult{Events: events.Load(), Transactions: txns.Load(), Duration: time.Since(start)}
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return res, fmt.Errorf("connect source: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&res.EndLSN); err != nil {
		return res, fmt.Errorf("read wal position: %w", err)
	}
	return res, nil
}

// loadSession is one writer connection of Load.
type loadSession struct {
	cfg       LoadConfig
	id        int
	gen       *loadgen.Payloads
	streams   []int
	versions  map[int]int64
	remaining *atomic.Int64
}

func (w *loadSession) run(ctx context.Context, pgURL string) (events, txns int64, err error) {
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return 0, 0, fmt.Errorf("connect source: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		return 0, 0, fmt.Errorf("bypass triggers: %w", err)
	}
	var sql bytes.Buffer
	for {
		sql.Reset()
		n, t := 0, 0
		for t < w.cfg.TxnsPerStatement {
			k := w.take(1 + w.gen.IntN(10))
			if k == 0 {
				break
			}
			w.appendTxn(&sql, k)
			n += k
			t++
		}
		if t == 0 {
			return events, txns, nil
		}
		if _, err := conn.PgConn().Exec(ctx, sql.String()).ReadAll(); err != nil {
			return events, txns, fmt.Errorf("load session %d: %w", w.id, err)
		}
		events += int64(n)
		txns += int64(t)
	}
}

// take reserves up to n events of the budget.
func (w *loadSession) take(n int) int {
	for {
		left := w.remaining.Load()
		if left <= 0 {
			return 0
		}
		got := min(int64(n), left)
		if w.remaining.CompareAndSwap(left, left-got) {
			return int(got)
		}
	}
}

// appendTxn appends one transaction of n events over 1–3 of the session's
// streams, grouped by stream as EventCore writes them.
func (w *loadSession) appendTxn(sql *bytes.Buffer, n int) {
	k := min(1+w.gen.IntN(3), n, len(w.streams))
	picked := make([]int, 0, k)
	for len(picked) < k {
		s := w.streams[w.gen.IntN(len(w.streams))]
		dup := false
		for _, p := range picked {
			dup = dup || p == s
		}
		if !dup {
			picked = append(picked, s)
		}
	}
	counts := make([]int, k)
	for i := range counts {
		counts[i] = 1
	}
	for range n - k {
		counts[w.gen.IntN(k)]++
	}
	correlation := uuid.NewString()
	sql.WriteString("BEGIN;INSERT INTO eventcore_events (event_id, stream_id, stream_version, event_type, event_data, metadata) VALUES ")
	first := true
	for i, s := range picked {
		for range counts[i] {
			if !first {
				sql.WriteByte(',')
			}
			first = false
			w.versions[s]++
			typ := w.gen.EventType()
			sql.WriteString("('")
			sql.WriteString(uuid.Must(uuid.NewV7()).String())
			sql.WriteString("','")
			sql.WriteString(w.cfg.StreamPrefix + "-" + strconv.Itoa(s))
			sql.WriteString("',")
			sql.WriteString(strconv.FormatInt(w.versions[s], 10))
			sql.WriteString(",'")
			sql.WriteString(typ)
			sql.WriteString("',")
			writeLiteral(sql, w.gen.EventData(typ))
			sql.WriteByte(',')
			writeLiteral(sql, w.gen.Metadata(correlation))
			sql.WriteByte(')')
		}
	}
	sql.WriteString(";COMMIT;")
}

// writeLiteral writes b as a standard-conforming SQL string literal.
func writeLiteral(sql *bytes.Buffer, b []byte) {
	sql.WriteByte('\'')
	for {
		i := bytes.IndexByte(b, '\'')
		if i < 0 {
			sql.Write(b)
			break
		}
		sql.Write(b[:i+1])
		sql.WriteByte('\'')
		b = b[i+1:]
	}
	sql.WriteByte('\'')
}

// errNoEvents is returned by measurements that need a non-empty backlog.
var errNoEvents = errors.New("bench: no events to measure")
