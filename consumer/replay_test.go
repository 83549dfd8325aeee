package consumer_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/consumer"
	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/harness"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/oracle"
	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// TestReplay_SeamAfterMaxAgeAndKill runs the real pipeline (capture and
// the archiver as processes). A cursor opened from the beginning reads the
// archive; then JetStream's max-age drops every message up to beyond the
// archive watermark the cursor read to, while writes continue. The cursor
// must read further in the archive, join the feed, and deliver every
// source event exactly once in chain order. Then `restorer replay
// --follow --resume` is killed with SIGKILL while writes go on, run again,
// and its output file must hold every event exactly once.
func TestReplay_SeamAfterMaxAgeAndKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// rows before capture starts reach the feed through its snapshot
	h, _, archiver := startPipeline(t, ctx, loadgen.Config{Writers: 2, Events: 200, Streams: 20, Seed: 1})
	if _, err := loadgen.Run(ctx, h.SourceURL, loadgen.Config{Writers: 4, Events: 1500, Rate: 1500, Streams: 100, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	st, err := h.OpenStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitArchived(t, ctx, st, h.SourceURL)

	nc, err := nats.Connect(h.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cur, err := consumer.Open(ctx, consumer.Config{StoreURL: h.StoreURL, NATS: nc, PollInterval: 100 * time.Millisecond,
		SeamTimeout: 2 * time.Minute}, consumer.FromBeginning())
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	// the cursor's archive ends at or before this watermark
	c, err := catalog.Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	opened := c.Watermark().LSN

	load := startLoad(ctx, h.SourceURL, loadgen.Config{Writers: 2, Rate: 400, Duration: 6 * time.Second, Streams: 100, Seed: 3})
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	orig := setMaxAge(t, ctx, js, 2*time.Second)
	testkit.WaitFor(t, time.Minute, "JetStream's max-age to drop the feed past the cursor's archive watermark", func() bool {
		prev, ok := firstPrev(ctx, js)
		return ok && prev > opened
	})
	if _, err := js.UpdateStream(ctx, orig); err != nil {
		t.Fatal(err)
	}

	// read in the background; the test ends reading once the load is done
	// and the source's every event arrived
	rctx, rcancel := context.WithCancel(ctx)
	events, readErr := make(chan *consumer.Event, 1024), make(chan error, 1)
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			e, err := cur.Next(rctx)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case events <- e:
			case <-rctx.Done():
				return
			}
		}
	}()
	defer func() { rcancel(); readers.Wait() }()
	var got []*consumer.Event
	var fromArchiveAfterOpen, live int
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if load.done() {
			total := sourceCount(t, ctx, h.SourceURL)
			if len(got) == total {
				break
			}
			if len(got) > total {
				t.Fatalf("%d events delivered, the source holds %d", len(got), total)
			}
		}
		select {
		case e := <-events:
			if !e.Live && event.Position(e.Position.End) > opened {
				fromArchiveAfterOpen++
			}
			if e.Live {
				live++
			}
			got = append(got, e)
		case err := <-readErr:
			t.Fatalf("after %d events: %v\narchiver:\n%s", len(got), err, archiver.LogTail(20))
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("after %d events: %v", len(got), ctx.Err())
		}
	}
	if err := load.wait(); err != nil {
		t.Fatal(err)
	}
	if fromArchiveAfterOpen == 0 || live == 0 {
		t.Fatalf("the seam was not crossed as staged: %d events read from the archive past its watermark at open, %d live", fromArchiveAfterOpen, live)
	}
	lines := make([]line, len(got))
	for i, e := range got {
		lines[i] = line{Position: e.Position, EventID: e.EventID, StreamID: e.StreamID, StreamVersion: e.StreamVersion, CommitTime: e.CommitTime}
	}
	checkAgainstSource(t, ctx, h.SourceURL, lines)
	t.Logf("cursor: %d events, %d from the archive after its watermark at open, %d live", len(got), fromArchiveAfterOpen, live)

	// restorer replay, killed with SIGKILL while it follows, resumes
	bin, err := h.Binary(ctx, "restorer")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	outPath, posPath := filepath.Join(dir, "events.jsonl"), filepath.Join(dir, "position.json")
	replay := func(name string) *testkit.Proc {
		cmd := exec.Command(bin, "replay", "--store", h.StoreURL, "--from", "beginning", "--follow", "--nats-url", h.NATSURL,
			"--output", outPath, "--resume", posPath, "--log-format", "json")
		cmd.Env = append(os.Environ(), h.Env()...)
		return testkit.StartT(t, name, cmd)
	}
	first := replay("replay-1")
	load = startLoad(ctx, h.SourceURL, loadgen.Config{Writers: 2, Rate: 400, Duration: 8 * time.Second, Streams: 100, Seed: 4})
	before := len(got)
	testkit.WaitFor(t, time.Minute, "replay to save a position past the events the cursor saw, 200 events into the new writes", func() bool {
		b, err := os.ReadFile(posPath)
		if err != nil {
			return false
		}
		var s struct {
			Position consumer.Position `json:"position"`
		}
		return json.Unmarshal(b, &s) == nil && got[before-1].Position.Before(s.Position) && countLines(t, outPath) >= before+200
	})
	if load.done() {
		t.Log("note: the load ended before the kill")
	}
	first.Kill()
	killedAt := countLines(t, outPath)
	second := replay("replay-2")
	if err := load.wait(); err != nil {
		t.Fatal(err)
	}
	total := sourceCount(t, ctx, h.SourceURL)
	testkit.WaitFor(t, time.Minute, "the resumed replay to write every source event", func() bool {
		return countLines(t, outPath) >= total
	})
	_ = second.Stop(10*time.Second, syscall.SIGTERM)
	lines = readLines(t, outPath)
	checkAgainstSource(t, ctx, h.SourceURL, lines)
	t.Logf("replay: killed with %d lines written, resumed to %d lines (= the source's events)", killedAt, len(lines))
}

type line struct {
	Position      consumer.Position `json:"position"`
	EventID       string            `json:"event_id"`
	StreamID      string            `json:"stream_id"`
	StreamVersion int64             `json:"stream_version"`
	CommitTime    time.Time         `json:"commit_time"`
}

// checkAgainstSource requires every source row exactly once, with its
// commit time, in strictly rising chain positions, each stream's versions
// rising.
func checkAgainstSource(t *testing.T, ctx context.Context, sourceURL string, got []line) {
	t.Helper()
	want, err := oracle.Expected(ctx, sourceURL, eventcore.Table, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]oracle.Row{}
	for _, r := range want {
		byID[r.EventID] = r
	}
	seen := map[string]bool{}
	version := map[string]int64{}
	for i, g := range got {
		if i > 0 && !got[i-1].Position.Before(g.Position) {
			t.Fatalf("event %d at %s does not follow %s", i, g.Position, got[i-1].Position)
		}
		if seen[g.EventID] {
			t.Fatalf("event %s delivered twice (at %s)", g.EventID, g.Position)
		}
		seen[g.EventID] = true
		r, ok := byID[g.EventID]
		switch {
		case !ok:
			t.Fatalf("event %s is not in the source", g.EventID)
		case !r.CommitTime.Equal(g.CommitTime):
			t.Fatalf("event %s: commit time %s, the source says %s", g.EventID, g.CommitTime, r.CommitTime)
		case r.StreamID != g.StreamID || r.StreamVersion != g.StreamVersion:
			t.Fatalf("event %s: stream %s v%d, the source says %s v%d", g.EventID, g.StreamID, g.StreamVersion, r.StreamID, r.StreamVersion)
		case g.StreamVersion <= version[g.StreamID]:
			t.Fatalf("stream %s: version %d after %d", g.StreamID, g.StreamVersion, version[g.StreamID])
		}
		version[g.StreamID] = g.StreamVersion
	}
	if len(seen) != len(want) {
		t.Fatalf("%d distinct events delivered, the source holds %d", len(seen), len(want))
	}
}

func waitArchived(t *testing.T, ctx context.Context, st objstore.Store, sourceURL string) {
	t.Helper()
	times, err := oracle.CommitTimes(ctx, sourceURL, eventcore.Table)
	if err != nil || len(times) == 0 {
		t.Fatalf("commit times: %v", err)
	}
	last := times[len(times)-1]
	testkit.WaitFor(t, time.Minute, "the archive to reach the last commit", func() bool {
		c, err := catalog.Load(ctx, st)
		return err == nil && !c.Watermark().CommitTime.Before(last)
	})
}

// setMaxAge sets the stream's max-age (and a duplicate window no longer
// than it, as the server requires) and returns the configuration before.
func setMaxAge(t *testing.T, ctx context.Context, js jetstream.JetStream, age time.Duration) jetstream.StreamConfig {
	t.Helper()
	s, err := js.Stream(ctx, consumer.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	orig := s.CachedInfo().Config
	cfg := orig
	cfg.MaxAge = age
	if cfg.Duplicates > age {
		cfg.Duplicates = age
	}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	return orig
}

// firstPrev returns the chain link of the first message the stream holds.
func firstPrev(ctx context.Context, js jetstream.JetStream) (event.Position, bool) {
	s, err := js.Stream(ctx, consumer.DefaultStream)
	if err != nil {
		return 0, false
	}
	info, err := s.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return 0, false
	}
	raw, err := s.GetMsg(ctx, info.State.FirstSeq)
	if err != nil {
		return 0, false
	}
	m := &nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data}
	if feed.IsHeartbeat(m) {
		hb, err := feed.DecodeHeartbeat(m)
		return hb.PrevLSN, err == nil
	}
	env, err := feed.DecodeEnvelope(m)
	return env.PrevLSN, err == nil
}

func sourceCount(t *testing.T, ctx context.Context, url string) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+eventcore.Table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func countLines(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte{'\n'})
}

func readLines(t *testing.T, path string) []line {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []line
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %d: %v: %s", len(out)+1, err, strings.TrimSpace(sc.Text()))
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// load is a loadgen run in the background.
type load struct {
	mu  sync.Mutex
	end bool
	err error
	wg  sync.WaitGroup
}

func startLoad(ctx context.Context, url string, cfg loadgen.Config) *load {
	l := &load{}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		_, err := loadgen.Run(ctx, url, cfg)
		l.mu.Lock()
		l.end, l.err = true, err
		l.mu.Unlock()
	}()
	return l
}

func (l *load) done() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.end
}

func (l *load) wait() error {
	l.wg.Wait()
	return l.err
}

// startPipeline starts the rig (file store), loads before (they reach the
// feed through capture's snapshot), then capture and an archiver as
// processes with short heartbeat and flush intervals, ready.
func startPipeline(t *testing.T, ctx context.Context, before loadgen.Config) (h *harness.Harness, capture, archiver *harness.Proc) {
	t.Helper()
	h, err := harness.Start(ctx, harness.Options{Dir: t.TempDir(), Store: "file"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	if _, err := loadgen.Run(ctx, h.SourceURL, before); err != nil {
		t.Fatal(err)
	}
	if capture, err = h.Capture(ctx, "capture", "--heartbeat-interval", "300ms"); err != nil {
		t.Fatal(err)
	}
	if archiver, err = h.Archiver(ctx, "archiver", "--flush-interval", "300ms"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*harness.Proc{capture, archiver} {
		if err := p.WaitReady(ctx); err != nil {
			t.Fatalf("%v\n%s", err, p.LogTail(30))
		}
	}
	return h, capture, archiver
}
