package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// ReplayRun is one run of `restorer replay --from beginning` over the
// whole archive, without following the feed.
type ReplayRun struct {
	// Events is the number of JSON lines it wrote.
	Events int64
	// Wall is the process's wall time; MaxRSS its peak resident set size,
	// CPU its user plus system time.
	Wall   time.Duration
	MaxRSS int64
	CPU    time.Duration
}

// EventsPerSecond is Events over the process's wall time.
func (r ReplayRun) EventsPerSecond() float64 { return rate(r.Events, r.Wall) }

// RunReplay replays the archive at storeURL from the beginning into a file
// in dir, counts the lines and removes the file.
func RunReplay(ctx context.Context, bin string, env []string, storeURL, dir, logPath string) (ReplayRun, error) {
	out := filepath.Join(dir, "replay.jsonl")
	defer os.Remove(out)
	res, err := runProcess(ctx, logPath, env, bin, "replay", "--store", storeURL, "--from", "beginning", "--output", out)
	run := ReplayRun{Wall: res.Wall, MaxRSS: res.MaxRSS, CPU: res.CPU}
	if err != nil {
		return run, err
	}
	f, err := os.Open(out)
	if err != nil {
		return run, fmt.Errorf("replay output: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	buf := make([]byte, 1<<20)
	for {
		n, err := r.Read(buf)
		run.Events += int64(bytes.Count(buf[:n], []byte{'\n'}))
		if err == io.EOF {
			return run, nil
		}
		if err != nil {
			return run, fmt.Errorf("replay output: %w", err)
		}
	}
}

// replayArchive measures replay throughput from the archive right after
// the restore of the same backlog.
func (r *runner) replayArchive(ctx context.Context) error {
	bin, err := r.h.Binary(ctx, "restorer")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	run, err := RunReplay(ctx, bin, r.h.Env(), r.h.StoreURL, r.cfg.Dir, filepath.Join(r.cfg.Dir, "replay.log"))
	r.res.Replay = run
	r.childCPU["restorer"] = run.CPU
	if err == nil && run.Events < r.res.Load.Events {
		err = fmt.Errorf("replayed %d events, the backlog holds %d", run.Events, r.res.Load.Events)
	}
	r.cfg.Progress("replayed", "events", run.Events, "seconds", run.Wall.Seconds(), "max_rss_mib", run.MaxRSS>>20)
	return err
}
