package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/consumer"
	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/redact"
	"github.com/tidemark/tidemark/internal/restore"
)

// replayFlags are replay's own flags.
type replayFlags struct {
	from, tz, resume, table, output    string
	streams, prefixes, types           []string
	follow                             bool
	natsURL, feedStream, subjectPrefix string
	seamTimeout, checkpointInterval    time.Duration
}

func (a *app) replayCmd() *cobra.Command {
	f := &replayFlags{}
	cmd := &cobra.Command{
		Use:   "replay --store URL --from beginning|T [--follow --nats-url URL] --output -|FILE",
		Short: "Print the archived history as JSON lines, then follow the live feed with no gap and no duplicate",
		Long: `Replay the archived table's events, in the source's commit order, as JSON lines:
one object per event with its position, commit time, xid, ids and row
(docs/consumers.md). From the beginning, or after instant T (exactly the
transactions a restore to T does not hold).

With --follow (and --nats-url) replay switches from the archive to the live
JetStream feed at the exact chain position the archive ends at, and keeps
printing; when the stream no longer holds that region (its max-age dropped
it), it reads further in the archive until the feed overlaps, and fails
(exit 1) when that does not happen within --seam-timeout. Without --follow
it stops at the archive's watermark.

--resume FILE saves the position durably while replaying; run the same
command again after a crash and it continues after the last event saved.
With --output FILE the file is cut back to the saved position first, so it
holds every event exactly once; with --output - a reader drops lines whose
position is not after the last one it kept.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runReplay(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.from, "from", "", `where to start when --resume has no saved position: "beginning" or an instant T (as restore --to)`)
	fl.StringVar(&f.tz, "tz", "UTC", `time zone for --from values without an offset`)
	fl.StringVar(&f.resume, "resume", "", "position file: resume after the position it holds, and save the position there")
	fl.StringVar(&f.table, "table", "", "archived table to replay (schema.name); default: the archive's only table")
	fl.StringArrayVar(&f.streams, "stream", nil, "only this stream id (repeatable)")
	fl.StringArrayVar(&f.prefixes, "stream-prefix", nil, "only streams whose id starts with this prefix (repeatable)")
	fl.StringArrayVar(&f.types, "event-type", nil, "only events of this type (repeatable)")
	fl.StringVar(&f.output, "output", "-", `where the JSON lines go: "-" for stdout, or a file (appended to; cut back to the saved position on --resume)`)
	fl.BoolVar(&f.follow, "follow", false, "after the archive, follow the live feed (needs --nats-url)")
	fl.StringVar(&f.natsURL, "nats-url", "", "NATS server URL of the live feed")
	fl.StringVar(&f.feedStream, "feed-stream", consumer.DefaultStream, "JetStream stream of the feed (capture's --stream)")
	fl.StringVar(&f.subjectPrefix, "subject-prefix", consumer.DefaultSubjectPrefix, "subject prefix of the feed (capture's --subject-prefix)")
	fl.DurationVar(&f.seamTimeout, "seam-timeout", consumer.DefaultSeamTimeout, "how long a gap between the archive and the feed may stay open before replay fails")
	fl.DurationVar(&f.checkpointInterval, "checkpoint-interval", 200*time.Millisecond, "least time between position saves (each save syncs the output first)")
	return cmd
}

// replayState is the --resume file: the position of the last event written,
// and the size of --output FILE when it was written (docs/consumers.md).
type replayState struct {
	Position    consumer.Position `json:"position"`
	OutputBytes int64             `json:"output_bytes"`
	SavedAt     time.Time         `json:"saved_at"`
}

// replayLine is one event of replay's output.
type replayLine struct {
	Position      consumer.Position `json:"position"`
	CommitTime    string            `json:"commit_time"`
	XID           uint32            `json:"xid"`
	Table         string            `json:"table"`
	EventID       string            `json:"event_id,omitempty"`
	StreamID      string            `json:"stream_id,omitempty"`
	StreamVersion int64             `json:"stream_version,omitempty"`
	EventType     string            `json:"event_type,omitempty"`
	Snapshot      bool              `json:"snapshot,omitempty"`
	Live          bool              `json:"live"`
	Row           json.RawMessage   `json:"row"`
}

func (a *app) runReplay(ctx context.Context, f *replayFlags) error {
	if a.storeURL == "" {
		return cli.Usage(errors.New("--store is required"), "pass --store URL or set "+envPrefix+"STORE")
	}
	if f.follow && f.natsURL == "" {
		return cli.Usage(errors.New("--follow needs --nats-url"), "pass the NATS URL of the feed, or drop --follow to stop at the archive's watermark")
	}
	var state replayState
	resumed := false
	if f.resume != "" {
		b, err := os.ReadFile(f.resume)
		switch {
		case err == nil:
			if err := json.Unmarshal(b, &state); err != nil || state.Position.IsZero() {
				return cli.Usage(fmt.Errorf("--resume %s holds no replay position", f.resume), "remove the file to start over, or pass the right file")
			}
			resumed = true
		case !errors.Is(err, os.ErrNotExist):
			return cli.Usage(fmt.Errorf("read --resume %s: %w", f.resume, err), "pass a readable file")
		}
	}
	start := consumer.Resume(state.Position)
	if !resumed {
		switch f.from {
		case "":
			return cli.Usage(errors.New("--from is required (unless --resume names a saved position)"), `e.g. --from beginning, --from '2026-11-25 10:15:30'`)
		case "beginning":
			start = consumer.FromBeginning()
		default:
			spec, err := parseTo(f.from, f.tz)
			if err != nil || spec.Latest {
				return cli.Usage(fmt.Errorf("cannot read --from %q", f.from), `use "beginning" or `+restore.TimeFormatsHelp)
			}
			start = consumer.After(spec.Time)
		}
	}
	// the output: stdout, or a file cut back to the saved position
	var (
		sink    = a.stdout
		out     *os.File // --output FILE
		written int64
	)
	if f.output != "-" {
		var err error
		if out, err = os.OpenFile(f.output, os.O_CREATE|os.O_RDWR, 0o644); err != nil {
			return cli.Usage(fmt.Errorf("open --output %s: %w", f.output, err), "pass a writable path")
		}
		defer out.Close()
		if resumed {
			written = state.OutputBytes
		} else if st, err := out.Stat(); err == nil && st.Size() > 0 {
			return cli.Usage(fmt.Errorf("--output %s is not empty and there is no saved position to continue from", f.output), "pass --resume with its position file, or a new output file")
		}
		if err := out.Truncate(written); err != nil {
			return fmt.Errorf("cut --output back to the saved position: %w", err)
		}
		if _, err := out.Seek(written, io.SeekStart); err != nil {
			return err
		}
		sink = out
	}
	keys, err := a.keyTextAll()
	if err != nil {
		return err
	}
	cfg := consumer.Config{StoreURL: a.storeURL, DecryptionKeys: keys, Table: f.table,
		Filter: consumer.Filter{StreamIDs: f.streams, StreamPrefixes: f.prefixes, EventTypes: f.types},
		Stream: f.feedStream, SubjectPrefix: f.subjectPrefix, SeamTimeout: f.seamTimeout, Logger: a.log}
	if f.follow {
		nc, err := nats.Connect(f.natsURL, nats.Name("tidemark-restorer-replay"))
		if err != nil {
			return fmt.Errorf("connect to NATS %s: %w", redact.URL(f.natsURL), err)
		}
		defer nc.Close()
		cfg.NATS = nc
	}
	cur, err := consumer.Open(ctx, cfg, start)
	if err != nil {
		return err
	}
	defer cur.Close()
	w := bufio.NewWriterSize(sink, 1<<20)
	var (
		last      consumer.Position
		unsaved   bool
		lastSave  time.Time
		lines     int64
		wasLive   bool
		lineBytes []byte
	)
	save := func() error {
		if err := w.Flush(); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		if f.resume == "" || !unsaved {
			return nil
		}
		if out != nil {
			if err := out.Sync(); err != nil {
				return fmt.Errorf("sync output: %w", err)
			}
		}
		b, _ := json.Marshal(replayState{Position: last, OutputBytes: written, SavedAt: time.Now().UTC()})
		if err := writeFileAtomic(f.resume, append(b, '\n')); err != nil {
			return err
		}
		unsaved, lastSave = false, time.Now()
		return nil
	}
	// A ticker saves what waits in the buffer while the cursor blocks (an
	// idle feed); the loop holds mu while it writes a transaction.
	var mu sync.Mutex
	var saveErr error
	tick := time.NewTicker(f.checkpointInterval)
	stopTick := make(chan struct{})
	var ticking sync.WaitGroup
	ticking.Add(1)
	go func() {
		defer ticking.Done()
		for {
			select {
			case <-stopTick:
				return
			case <-tick.C:
				mu.Lock()
				if unsaved || w.Buffered() > 0 {
					if err := save(); err != nil && saveErr == nil {
						saveErr = err
					}
				}
				mu.Unlock()
			}
		}
	}()
	stopTicking := sync.OnceFunc(func() {
		tick.Stop()
		close(stopTick)
		ticking.Wait()
	})
	defer func() {
		stopTicking()
		_ = save()
	}()
	for {
		t, err := cur.NextTransaction(ctx)
		mu.Lock()
		if err == nil && saveErr != nil {
			err = saveErr
		}
		mu.Unlock()
		if errors.Is(err, io.EOF) {
			stopTicking()
			a.log.Info("replay reached the archive's watermark", "events", lines, "position", last.String())
			return save()
		}
		if err != nil {
			return err // the deferred save keeps what was written
		}
		mu.Lock()
		if cur.Live() && !wasLive {
			wasLive = true
			a.log.Info("replay is following the live feed", "events", lines)
		}
		for _, e := range t.Events {
			lineBytes, _ = json.Marshal(replayLine{Position: e.Position, CommitTime: e.CommitTime.Format(time.RFC3339Nano),
				XID: e.XID, Table: e.Table, EventID: e.EventID, StreamID: e.StreamID, StreamVersion: e.StreamVersion,
				EventType: e.EventType, Snapshot: e.Snapshot, Live: e.Live, Row: e.Row})
			lineBytes = append(lineBytes, '\n')
			if _, err := w.Write(lineBytes); err != nil {
				mu.Unlock()
				return fmt.Errorf("write output: %w", err)
			}
			written += int64(len(lineBytes))
			lines++
		}
		last, unsaved = t.Position(), true
		switch {
		case time.Since(lastSave) >= f.checkpointInterval || w.Buffered() > 1<<19:
			err = save()
		case cur.Live():
			if err = w.Flush(); err != nil { // a follower sees each transaction at once
				err = fmt.Errorf("write output: %w", err)
			}
		}
		mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// keyTextAll returns the identities of --encryption-key-file and
// --encryption-key together.
func (a *app) keyTextAll() (string, error) {
	if _, err := a.keyring(); err != nil {
		return "", err
	}
	text := a.keyText
	if a.keyFile != "" {
		b, err := os.ReadFile(a.keyFile)
		if err != nil {
			return "", cli.Usage(fmt.Errorf("read --encryption-key-file %s: %w", a.keyFile, err), "give a readable file of AGE-SECRET-KEY-1… lines")
		}
		text = string(b) + "\n" + text
	}
	return text, nil
}

// writeFileAtomic replaces path with data: a synced temporary file renamed
// over it, then the directory synced, so a crash leaves the old or the new
// content, never a torn one.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
