package merge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// ErrInputDamaged means a merge input no longer matches the size or
// SHA-256 the catalog lists: the merge is skipped (verify names the object).
var ErrInputDamaged = errors.New("merge input does not match the catalog")

// Merger merges live segments as its Policy says, as the holder of the
// catalog lease: it appends merge entries with the lease holder's Writer.
// It streams every input from the store through a temporary file into the
// output's temporary file, so its memory does not depend on segment sizes.
type Merger struct {
	// Store holds the archive.
	Store objstore.Store
	// Catalog is the lease holder's loaded catalog; Writer appends to it.
	Catalog *catalog.Catalog
	Writer  *catalog.Writer
	// Keyring decrypts inputs and encrypts outputs (to its active key); nil
	// for a plaintext archive.
	Keyring *segment.Keyring
	// Policy says what to merge.
	Policy Policy
	// TempDir holds the temporary files ("" = os.TempDir()).
	TempDir string
	// Logger receives one line per merge; nil discards.
	Logger *slog.Logger
	// Hook, when set, runs at each step of a merge (tests inject crashes).
	Hook func(Step)
	// Guard, when set, is asked before every upload; an error stops the
	// merge (the archiver refuses to upload once its lease has lapsed by
	// its own clock).
	Guard func() error
	// Busy, when set, is asked before each merge; true postpones the rest
	// of the round to the next interval. The archiver answers true while
	// its flush path is catching up on a backlog: the watermark, and the
	// slot behind it, come before compaction.
	Busy func() bool
}

// Step names the points of a merge a Hook sees.
type Step string

// The steps of one merge, in order.
const (
	StepPlanned  Step = "planned"
	StepWritten  Step = "written"  // the output is in its temporary file
	StepUploaded Step = "uploaded" // the output is in the store, not yet in the catalog
	StepRecorded Step = "recorded" // the merge entry is appended
)

// Result counts what RunOnce did.
type Result struct {
	Merges   int
	Inputs   int
	Bytes    int64 // output bytes written
	Adopted  int   // outputs found already stored by an interrupted merge
	Skipped  int   // groups skipped because an input was damaged
	Duration time.Duration
}

func (m *Merger) log() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return m.Logger
}

func (m *Merger) hook(s Step) {
	if m.Hook != nil {
		m.Hook(s)
	}
}

// RunOnce performs every merge that is due, level by level, and returns
// what it did. It stops at the first error that is not a damaged input:
// the catalog's errors (ErrFenced, ErrConflict) end the writer's term.
func (m *Merger) RunOnce(ctx context.Context) (Result, error) {
	start := time.Now()
	var res Result
	skip := map[string]bool{}
	for {
		groups := Plan(m.Catalog.Segments(), m.Catalog.Watermark(), m.Policy)
		progressed := false
		for _, g := range groups {
			if skip[g.Inputs[0].Key] {
				continue
			}
			if err := ctx.Err(); err != nil {
				return res, err
			}
			if m.Busy != nil && m.Busy() {
				mergesPostponedTotal.Inc()
				res.Duration = time.Since(start)
				return res, nil
			}
			out, adopted, err := m.Merge(ctx, g)
			if errors.Is(err, ErrInputDamaged) {
				m.log().Error("merge skipped: an input is damaged; run restorer verify", "level", g.Level, "err", err)
				mergeErrorsTotal.WithLabelValues("input").Inc()
				skip[g.Inputs[0].Key] = true
				res.Skipped++
				continue
			}
			if err != nil {
				res.Duration = time.Since(start)
				return res, err
			}
			progressed = true
			res.Merges++
			res.Inputs += len(g.Inputs)
			res.Bytes += out.Size
			if adopted {
				res.Adopted++
			}
		}
		if !progressed {
			res.Duration = time.Since(start)
			return res, nil
		}
	}
}

// Run calls RunOnce every interval until ctx ends (returning nil) or a
// merge fails with a catalog error, which it returns.
func (m *Merger) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		res, err := m.RunOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if errors.Is(err, catalog.ErrFenced) || errors.Is(err, catalog.ErrConflict) || m.Guard != nil && m.Guard() != nil {
				return err
			}
			mergeErrorsTotal.WithLabelValues("store").Inc()
			m.log().Warn("merge failed; retrying at the next interval", "err", err)
		} else if res.Merges > 0 {
			m.log().Info("merged segments", "merges", res.Merges, "inputs", res.Inputs, "bytes", res.Bytes, "seconds", res.Duration.Seconds())
		}
		liveSegments.Set(float64(len(m.Catalog.Segments())))
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Merge writes g's merged segment, stores it and appends the merge entry.
// adopted is true when an interrupted earlier merge had stored the same
// events under the output's key already.
func (m *Merger) Merge(ctx context.Context, g Group) (out *catalog.SegmentRef, adopted bool, err error) {
	start := time.Now()
	m.hook(StepPlanned)
	tmp, err := os.CreateTemp(m.TempDir, "tidemark-merge-*.tms")
	if err != nil {
		return nil, false, fmt.Errorf("merge: %w", err)
	}
	defer func() { tmp.Close(); os.Remove(tmp.Name()) }()
	out, err = m.write(ctx, g, tmp)
	if err != nil {
		return nil, false, err
	}
	m.hook(StepWritten)
	if m.Guard != nil {
		if err := m.Guard(); err != nil {
			return nil, false, fmt.Errorf("merge: %w", err)
		}
	}
	if adopted, err = m.upload(ctx, tmp, out); err != nil {
		return nil, false, err
	}
	m.hook(StepUploaded)
	inputs := make([]catalog.MergeInput, len(g.Inputs))
	for i, s := range g.Inputs {
		inputs[i] = s.Input()
	}
	if _, err := m.Writer.AppendMerge(ctx, catalog.Merge{Inputs: inputs, Output: *out}); err != nil {
		return nil, false, fmt.Errorf("merge: record %s: %w", out.Key, err)
	}
	m.hook(StepRecorded)
	mergesTotal.WithLabelValues(fmt.Sprint(g.Level)).Inc()
	mergeInputsTotal.Add(float64(len(g.Inputs)))
	mergeBytesTotal.Add(float64(out.Size))
	mergeSeconds.Observe(time.Since(start).Seconds())
	m.log().Debug("merged", "level", g.Level, "inputs", len(g.Inputs), "key", out.Key, "events", out.Events, "bytes", out.Size)
	return out, adopted, nil
}

// write streams the inputs' events into the output file and returns the
// output's reference.
func (m *Merger) write(ctx context.Context, g Group, dst *os.File) (*catalog.SegmentRef, error) {
	var w *segment.Writer
	var digest segment.EventsDigest
	h := sha256.New()
	var hdr *segment.Header
	var first, last *segmentEdge
	for _, in := range g.Inputs {
		err := m.readInput(ctx, in, func(r *segment.Reader) error {
			if w == nil {
				hdr = r.Header()
				var err error
				w, err = segment.NewWriter(io.MultiWriter(dst, h), m.writerOptions(g, hdr))
				if err != nil {
					return err
				}
			}
			for {
				e, err := r.Next()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if first == nil {
					first = &segmentEdge{index: e.Index, count: e.Count}
				}
				last = &segmentEdge{index: e.Index, count: e.Count}
				digest.Add(e)
				if err := w.Append(e); err != nil {
					return err
				}
			}
		})
		if err != nil {
			return nil, err
		}
	}
	tr, err := w.Close()
	if err != nil {
		return nil, fmt.Errorf("merge: close output: %w", err)
	}
	size, err := dst.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	key := segment.Key(g.Bucket, tr.FirstEndLSN, tr.LastEndLSN, hdr.Table.ID())
	if first.index > 0 || last.index < last.count-1 {
		key = segment.KeyWithIndexRange(key, first.index, last.index)
	}
	key = segment.KeyWithLevel(key, g.Level)
	return &catalog.SegmentRef{Key: key, Size: size, SHA256: hex.EncodeToString(h.Sum(nil)), Events: tr.Events,
		Transactions: tr.Transactions, Table: hdr.Table.QualifiedName(), TableID: hdr.Table.ID(), KeyID: m.keyID(),
		Compression: segment.Zstd.String(), FirstEndLSN: tr.FirstEndLSN, LastEndLSN: tr.LastEndLSN, PrevLSN: tr.PrevLSN,
		MinCommitTime: tr.MinCommitTime, MaxCommitTime: tr.MaxCommitTime, RawBytes: tr.RawBytes,
		Level: g.Level, EventsDigest: digest.Sum()}, nil
}

type segmentEdge struct{ index, count int }

func (m *Merger) keyID() string {
	if m.Keyring == nil {
		return ""
	}
	return m.Keyring.ActiveID()
}

// writerOptions makes the output's writer options: the inputs' table and
// source, the columnar body (format version 2: about 0.1 of the rows' JSON
// against 0.16 for version 1), zstd, created at the group's last commit time
// so that the same group merged twice yields the same plaintext bytes.
func (m *Merger) writerOptions(g Group, hdr *segment.Header) segment.WriterOptions {
	created := g.Inputs[len(g.Inputs)-1].MaxCommitTime.UTC().Truncate(time.Microsecond)
	level := firstLevelCompression
	if g.Level > 1 {
		level = 0 // the segment package's preset for merged segments
	}
	return segment.WriterOptions{Compression: segment.Zstd, Level: level, Keyring: m.Keyring,
		SystemID: hdr.SystemID, Table: hdr.Table, MergeLevel: g.Level, Created: created,
		Format: segment.ColumnarVersion}
}

// firstLevelCompression is the zstd level of level-1 merges: they are
// merged again within the hour, so they get the default level; levels
// above, which are kept for years, get the segment package's merged preset.
const firstLevelCompression = 3

// readInput downloads one input to a temporary file, checks it against the
// catalog's size and SHA-256, and calls fn with a reader of its events.
func (m *Merger) readInput(ctx context.Context, in catalog.SegmentRef, fn func(*segment.Reader) error) error {
	f, err := os.CreateTemp(m.TempDir, "tidemark-merge-in-*.tms")
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	defer func() { f.Close(); os.Remove(f.Name()) }()
	n, sum, err := objstore.Download(ctx, m.Store, in.Key, f, in.Size, objstore.WithRetry(objstore.DefaultRetry))
	var tooLarge *objstore.TooLargeError
	if errors.As(err, &tooLarge) {
		return fmt.Errorf("%w: %w", ErrInputDamaged, err)
	}
	if err != nil {
		return fmt.Errorf("merge: read input %s: %w", in.Key, err)
	}
	if n != in.Size || sum != in.SHA256 {
		return fmt.Errorf("%w: %s has %d bytes and SHA-256 %.12s, the catalog lists %d and %.12s",
			ErrInputDamaged, in.Key, n, sum, in.Size, in.SHA256)
	}
	r, err := segment.OpenReader(in.Key, f, n, segment.ReadOptions{Keyring: m.Keyring})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInputDamaged, err)
	}
	defer r.Close()
	if err := fn(r); err != nil {
		if errors.Is(err, segment.ErrCorrupt) {
			return fmt.Errorf("%w: %w", ErrInputDamaged, err)
		}
		return fmt.Errorf("merge: %w", err)
	}
	return nil
}

// upload stores the output with a conditional create. An object already
// under the key was left by an interrupted merge of the same group: it is
// adopted when it holds the same events (its digest matches), and the
// reference then describes it.
func (m *Merger) upload(ctx context.Context, f *os.File, out *catalog.SegmentRef) (bool, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, fmt.Errorf("merge: %w", err)
	}
	err := m.Store.Put(ctx, out.Key, f, out.Size, objstore.PutOptions{IfAbsent: true})
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, objstore.ErrExists) {
		return false, fmt.Errorf("merge: upload %s: %w", out.Key, err)
	}
	existing, err := m.describe(ctx, out.Key)
	if err != nil {
		return false, fmt.Errorf("merge: %s exists and cannot be read back: %w", out.Key, err)
	}
	if existing.EventsDigest != out.EventsDigest || existing.Events != out.Events {
		return false, fmt.Errorf("merge: %s exists with other events (digest %.12s, ours %.12s): %w",
			out.Key, existing.EventsDigest, out.EventsDigest, objstore.ErrExists)
	}
	existing.Level, existing.Table, existing.TableID = out.Level, out.Table, out.TableID
	*out = *existing
	return true, nil
}

// maxObjectBytes bounds an existing object describe reads: no merged
// segment this package writes is larger (outputs are capped by raw size).
const maxObjectBytes = 8 << 30

// describe reads a stored segment and returns its reference with the
// digest of its events.
func (m *Merger) describe(ctx context.Context, key string) (*catalog.SegmentRef, error) {
	f, err := os.CreateTemp(m.TempDir, "tidemark-merge-old-*.tms")
	if err != nil {
		return nil, err
	}
	defer func() { f.Close(); os.Remove(f.Name()) }()
	n, sum, err := objstore.Download(ctx, m.Store, key, f, maxObjectBytes, objstore.WithRetry(objstore.DefaultRetry))
	if err != nil {
		return nil, err
	}
	r, err := segment.OpenReader(key, f, n, segment.ReadOptions{Keyring: m.Keyring})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var digest segment.EventsDigest
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		digest.Add(e)
	}
	hdr, tr := r.Header(), r.Trailer()
	return &catalog.SegmentRef{Key: key, Size: n, SHA256: sum, Events: tr.Events, Transactions: tr.Transactions,
		Table: hdr.Table.QualifiedName(), TableID: hdr.Table.ID(), KeyID: hdr.KeyID, Compression: hdr.Compression.String(),
		FirstEndLSN: tr.FirstEndLSN, LastEndLSN: tr.LastEndLSN, PrevLSN: tr.PrevLSN, MinCommitTime: tr.MinCommitTime,
		MaxCommitTime: tr.MaxCommitTime, RawBytes: tr.RawBytes, EventsDigest: digest.Sum()}, nil
}
