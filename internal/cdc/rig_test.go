package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// One PostgreSQL cluster serves every test that needs no special server
// settings; each test gets its own database, slot and NATS server.
var (
	sharedPG    testrig.SharedPostgres
	slotCounter atomic.Int64
)

func TestMain(m *testing.M) { testkit.Main(m, sharedPG.Close) }

// env is one test's source database, NATS server and slot.
type env struct {
	t     *testing.T
	pg    *testrig.Postgres
	pgURL string
	nats  *testrig.NATS
	nc    *nats.Conn
	js    jetstream.JetStream
	slot  string
	logs  *testkit.Buffer
	last  *Capture // the capture run started last
}

// newEnv prepares a fresh database with EventCore's schema on pg (the
// shared cluster when nil) and a fresh NATS server.
func newEnv(t *testing.T, pg *testrig.Postgres) *env {
	t.Helper()
	if pg == nil {
		pg = sharedPG.Get(t)
	}
	e := &env{t: t, pg: pg, pgURL: pg.NewDatabase(t), nats: testrig.StartNATS(t),
		slot: fmt.Sprintf("tm_test_%d", slotCounter.Add(1)), logs: &testkit.Buffer{}}
	e.exec(eventcore.SchemaSQL)
	var err error
	if e.nc, err = nats.Connect(e.nats.URL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.nc.Close)
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.dropSlot() })
	return e
}

// config returns a capture configuration for the environment: fast
// heartbeats and status updates, confirming on JetStream.
func (e *env) config() Config {
	c := Defaults()
	c.PGURL, c.NATSURL, c.Slot = e.pgURL, e.nats.URL, e.slot
	c.ConfirmOn = ConfirmJetStream
	c.HeartbeatInterval = 500 * time.Millisecond
	c.StatusInterval = 100 * time.Millisecond
	c.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(e.logs, testWriter{e.t}), &slog.HandlerOptions{Level: slog.LevelInfo}))
	return c
}

// run starts capture in the background; stop cancels it and returns Run's
// result.
func (e *env) run(cfg Config) (stop func() error, done <-chan error) {
	e.t.Helper()
	c, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.runCapture(c)
}

// runCapture is run for a capture already made with New.
func (e *env) runCapture(c *Capture) (stop func() error, done <-chan error) {
	e.t.Helper()
	e.last = c
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	finished := make(chan struct{})
	var res error
	go func() {
		res = c.Run(ctx)
		close(finished)
		ch <- res
	}()
	stop = func() error {
		cancel()
		select {
		case <-finished:
			return res
		case <-time.After(60 * time.Second):
			return errors.New("capture did not stop within 60s")
		}
	}
	e.t.Cleanup(func() { _ = stop() })
	return stop, ch
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		e.t.Fatalf("%s: %v", strings.SplitN(sql, "\n", 2)[0], err)
	}
}

func (e *env) queryRow(sql string, dest ...any) {
	e.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, sql).Scan(dest...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

func (e *env) dropSlot() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.pg.URL("postgres"))
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, e.slot)
	for range 50 {
		if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, e.slot); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// slotState reads the test's slot.
func (e *env) slotState() slotState {
	e.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(ctx)
	s, err := readSlot(ctx, conn, e.slot)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// sourceIDs returns the event ids in the source table.
func (e *env) sourceIDs() map[string]bool {
	e.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT event_id::text FROM eventcore_events")
	if err != nil {
		e.t.Fatal(err)
	}
	ids := map[string]bool{}
	var id string
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { ids[id] = true; return nil }); err != nil {
		e.t.Fatal(err)
	}
	return ids
}

// feedLog is everything read from the stream.
type feedLog struct {
	events     []*event.Event
	eventMsgs  []*jetstream.RawStreamMsg
	heartbeats []event.Heartbeat
	tampers    []feed.Tamper
	tamperSubj []string
	ids        map[string]int // event id → occurrences (by message)
	lastSeq    uint64
}

// readFeed reads the whole stream (up to its last sequence now).
func (e *env) readFeed(stream string) *feedLog {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	fl, err := readFeed(ctx, e.js, stream)
	if err != nil {
		e.t.Fatal(err)
	}
	return fl
}

func readFeed(ctx context.Context, js jetstream.JetStream, stream string) (*feedLog, error) {
	fl := &feedLog{ids: map[string]int{}}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	last := info.State.LastSeq
	fl.lastSeq = last
	if last == 0 {
		return fl, nil
	}
	kv, err := js.KeyValue(ctx, feed.MetaBucket(stream))
	if err != nil {
		return nil, err
	}
	tables := map[string]*event.Table{}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, _ := m.Metadata()
			nm := &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
			switch {
			case feed.IsHeartbeat(nm):
				hb, err := feed.DecodeHeartbeat(nm)
				if err != nil {
					return nil, err
				}
				fl.heartbeats = append(fl.heartbeats, hb)
			case nm.Header.Get(feed.HeaderKind) == "tamper":
				var tp feed.Tamper
				if err := json.Unmarshal(nm.Data, &tp); err != nil {
					return nil, err
				}
				fl.tampers = append(fl.tampers, tp)
				fl.tamperSubj = append(fl.tamperSubj, nm.Subject)
			default:
				id := nm.Header.Get(feed.HeaderSchemaID)
				t := tables[id]
				if t == nil {
					entry, err := kv.Get(ctx, feed.TableKey(id))
					if err != nil {
						return nil, fmt.Errorf("table %s: %w", id, err)
					}
					t = &event.Table{}
					if err := json.Unmarshal(entry.Value(), t); err != nil {
						return nil, err
					}
					tables[id] = t
				}
				ev, err := feed.DecodeEvent(nm, t)
				if err != nil {
					return nil, err
				}
				fl.events = append(fl.events, ev)
				fl.eventMsgs = append(fl.eventMsgs, &jetstream.RawStreamMsg{Subject: nm.Subject, Header: nm.Header, Data: nm.Data})
				fl.ids[string(ev.Values[event.LayoutOf(*t).EventID])]++
			}
			if md != nil && md.Sequence.Stream >= last {
				return fl, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("stream read stalled before sequence %d", last)
		}
	}
}

// waitAllCaptured waits until every source event id is in the stream.
func (e *env) waitAllCaptured(stream string, timeout time.Duration) *feedLog {
	e.t.Helper()
	var fl *feedLog
	var missing int
	deadline := time.Now().Add(timeout)
	for {
		want := e.sourceIDs()
		fl = e.readFeed(stream)
		missing = 0
		for id := range want {
			if fl.ids[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return fl
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("after %s, %d of %d source events are not in the stream", timeout, missing, len(want))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// testWriter forwards logs to t.Log when -v is given.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// waitStreaming waits until the last capture started has begun
// START_REPLICATION. The slot alone is not enough: it is also active for a
// moment while CREATE_REPLICATION_SLOT runs, and a capture stopped then
// abandons its snapshot and drops the new slot.
func (e *env) waitStreaming() {
	e.t.Helper()
	testkit.WaitFor(e.t, 30*time.Second, "slot streaming", func() bool {
		return e.last != nil && e.last.streaming.Load() && e.slotState().Active
	})
}
