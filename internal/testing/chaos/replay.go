package chaos

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/consumer"
	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/testing/harness"
	"github.com/tidemark/tidemark/internal/testing/oracle"
)

func init() {
	register(Scenario{
		Name: "replay-kill9-max-age",
		Injects: "`restorer replay --from beginning --follow --resume` killed with kill -9 three times at seeded moments under load, on a stream whose max-age is set to 5 s once the archive started; " +
			"after one kill it and the archiver (SIGSTOP) stay down 8 s, so the feed no longer holds what follows the archive's watermark; the replay resumes 3 s before the archiver (SIGCONT) and must wait for the archive to advance over the hole",
		Checks: "I1, I2 for consumers: the replay's output file holds every source event exactly once, in rising chain positions, with its source commit time; then I1-I6",
		Budget: 6 * time.Minute,
		Run:    replayKill9MaxAge,
	})
}

func replayKill9MaxAge(e *Env) error {
	if err := e.Boot(Setup{}); err != nil {
		return err
	}
	// max-age only once the archive has started: a stream that dropped the
	// snapshot-done heartbeat before the archiver first read it cannot
	// start an archive (the heartbeat is not re-sent by a rewind)
	for {
		c, err := catalog.Load(e.Ctx, e.Store)
		if err == nil && c.Watermark().LSN > 0 {
			break
		}
		if err := e.Sleep(100 * time.Millisecond); err != nil {
			return fmt.Errorf("the archive did not start: %w", err)
		}
	}
	if err := setStreamMaxAge(e, 5*time.Second); err != nil {
		return err
	}
	load := e.StartLoad(30*time.Second, 300)
	dir := filepath.Join(e.Dir, "replay")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	out, pos := filepath.Join(dir, "events.jsonl"), filepath.Join(dir, "position.json")
	start := func(n int) (*harness.Proc, error) {
		return e.H.StartProgram(e.Ctx, "restorer", fmt.Sprintf("replay-%d", n), nil, "replay", "--store", e.H.StoreURL,
			"--from", "beginning", "--follow", "--nats-url", e.H.NATSURL, "--output", out, "--resume", pos, "--seam-timeout", "2m")
	}
	var p *harness.Proc
	for n := range 3 {
		var err error
		if p, err = start(n); err != nil {
			return err
		}
		if n == 2 {
			// the replay resumed while the archiver was stopped: its archive
			// ends before what the feed still holds; let the archiver go on
			if err := e.Sleep(3 * time.Second); err != nil {
				return err
			}
			if err := e.Archivers[0].Signal(syscall.SIGCONT); err != nil {
				return err
			}
		}
		if err := e.Sleep(e.Between(2*time.Second, 6*time.Second)); err != nil {
			return err
		}
		if done, _ := p.Exited(); done {
			return fmt.Errorf("replay %d exited before it was killed:\n%s", n, p.LogTail(20))
		}
		e.Mark()
		p.Kill()
		if n == 1 {
			// replay and archiver down for longer than max-age
			if err := e.Archivers[0].Signal(syscall.SIGSTOP); err != nil {
				return err
			}
			e.Defer(func() { _ = e.Archivers[0].Signal(syscall.SIGCONT) })
			if err := e.Sleep(8 * time.Second); err != nil {
				return err
			}
		}
	}
	p, err := start(3)
	if err != nil {
		return err
	}
	if _, err := load.Wait(); err != nil {
		return err
	}
	if err := e.Finish(CheckOptions{}); err != nil {
		return err
	}
	want, err := oracle.Expected(e.Ctx, e.H.SourceURL, "eventcore_events", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		return err
	}
	for {
		n, err := countLines(out)
		if err != nil {
			return err
		}
		if n >= len(want) {
			break
		}
		if done, _ := p.Exited(); done {
			return &Violation{Invariant: "I1", Detail: fmt.Sprintf("the resumed replay exited with %d of %d events written:\n%s", n, len(want), p.LogTail(20))}
		}
		if err := e.Sleep(200 * time.Millisecond); err != nil {
			return fmt.Errorf("the resumed replay wrote %d of %d events: %w\n%s", n, len(want), err, p.LogTail(20))
		}
	}
	_ = p.Stop(10 * time.Second)
	if v := checkReplayOutput(out, want); v != nil {
		return v
	}
	holes := 0 // runs that found the feed not reaching their position
	for n := range 4 {
		if logContains(filepath.Join(e.Dir, fmt.Sprintf("replay-%d.log", n)), "waiting for the chain to close") {
			holes++
		}
	}
	e.Note("replayed=%d replay_runs_with_hole=%d", len(want), holes)
	if !logContains(filepath.Join(e.Dir, "replay-2.log"), "waiting for the chain to close") {
		return errors.New("the staged hole did not happen: replay-2 never waited for the archive (see replay-2.log)")
	}
	return nil
}

// setStreamMaxAge sets the feed's max-age (and its duplicate window to no
// more than it, as the server requires).
func setStreamMaxAge(e *Env, age time.Duration) error {
	nc, err := nats.Connect(e.H.NATSURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	s, err := js.Stream(e.Ctx, "TIDEMARK")
	if err != nil {
		return err
	}
	cfg := s.CachedInfo().Config
	cfg.MaxAge = age
	cfg.Duplicates = min(cfg.Duplicates, age)
	_, err = js.UpdateStream(e.Ctx, cfg)
	return err
}

func countLines(path string) (int, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		n++
	}
	return n, sc.Err()
}

// checkReplayOutput compares replay's JSON lines with the source's rows.
func checkReplayOutput(path string, want []oracle.Row) *Violation {
	byID := make(map[string]oracle.Row, len(want))
	for _, r := range want {
		byID[r.EventID] = r
	}
	f, err := os.Open(path)
	if err != nil {
		return &Violation{Invariant: "I1", Detail: err.Error()}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	seen := map[string]bool{}
	var last consumer.Position
	for i := 1; sc.Scan(); i++ {
		var l struct {
			Position   consumer.Position `json:"position"`
			EventID    string            `json:"event_id"`
			CommitTime time.Time         `json:"commit_time"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return &Violation{Invariant: "I1", Detail: fmt.Sprintf("replay output line %d: %v", i, err)}
		}
		r, ok := byID[l.EventID]
		switch {
		case i > 1 && !last.Before(l.Position):
			return &Violation{Invariant: "I2", Detail: fmt.Sprintf("replay output line %d: position %s does not follow %s", i, l.Position, last)}
		case seen[l.EventID]:
			return &Violation{Invariant: "I1", Detail: fmt.Sprintf("replay output line %d: event %s a second time", i, l.EventID)}
		case !ok:
			return &Violation{Invariant: "I1", Detail: fmt.Sprintf("replay output line %d: event %s is not in the source", i, l.EventID)}
		case !r.CommitTime.Equal(l.CommitTime):
			return &Violation{Invariant: "I2", Detail: fmt.Sprintf("replay output line %d: commit time %s, the source says %s", i, l.CommitTime, r.CommitTime)}
		}
		seen[l.EventID], last = true, l.Position
	}
	if err := sc.Err(); err != nil {
		return &Violation{Invariant: "I1", Detail: err.Error()}
	}
	if len(seen) != len(want) {
		return &Violation{Invariant: "I1", Detail: fmt.Sprintf("replay output holds %d events, the source %d", len(seen), len(want))}
	}
	return nil
}
