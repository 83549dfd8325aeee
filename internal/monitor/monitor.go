package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/redact"
	"github.com/tidemark/tidemark/internal/segment"
)

// DefaultSample is how many archived events one round compares with the source.
const DefaultSample = 20

// Checks a round runs; they name findings and label metrics.
const (
	CheckSlot           = "slot"            // the slot's confirmed position passed the watermark
	CheckSegmentMissing = "segment-missing" // the sampled segment is missing from the store
	CheckSegmentCorrupt = "segment-corrupt" // the sampled segment's bytes differ from its catalog entry or do not decode
	CheckSourceMissing  = "source-missing"  // an archived event's source row is gone
	CheckSourceChanged  = "source-changed"  // an archived event's source row differs (changed after capture)
	CheckFeedMissing    = "feed-missing"    // the stream lacks an archived event it should still hold
	CheckFeedChanged    = "feed-changed"    // an event's feed copy differs from the archived event
	CheckFeedGap        = "feed-gap"        // on the feed, a stream's next version is not the sampled one plus one
	CheckArchiveOrder   = "archive-order"   // in a segment, a stream's versions do not increase
)

// Options configures a monitor.
type Options struct {
	// Store is the archive; Keyring decrypts it (nil: plaintext).
	Store   objstore.Store
	Keyring *segment.Keyring
	// SourceURL is the source database (read-only role: SELECT on the
	// table and pg_replication_slots).
	SourceURL string
	// Slot is capture's replication slot ("" skips the slot check).
	Slot string
	// Sample bounds the events (and so the source lookups) per round
	// (default DefaultSample).
	Sample int
	// TempDir holds the sampled segment while it is read ("" = os.TempDir()).
	TempDir string
	// Segments is how many random live segments a round samples
	// (default 1); Sample events are drawn from each.
	Segments int
	// Feed locates the feed copies in JetStream (nil skips the feed check).
	Feed *FeedOptions
	// Logger receives findings (nil: none).
	Logger *slog.Logger
}

// Finding is one disagreement a round found.
type Finding struct {
	Check   string `json:"check"`
	Object  string `json:"object,omitempty"`
	Stream  string `json:"stream,omitempty"`
	EventID string `json:"event_id,omitempty"`
	Message string `json:"message"`
	// KnownGap is the known-gap catalog entry that accepts it (0: none);
	// a known finding is reported, not alerted on.
	KnownGap uint64 `json:"known_gap,omitempty"`
}

// Round is the outcome of one sampling round.
type Round struct {
	At time.Time `json:"at"`
	// Watermark is the archive's durable watermark; SlotConfirmed the
	// slot's confirmed position (0 when not checked).
	Watermark     event.Position `json:"watermark"`
	SlotConfirmed event.Position `json:"slot_confirmed"`
	// Segment is the segment sampled ("" when the archive holds none);
	// Segments every segment sampled when more than one.
	Segment  string   `json:"segment,omitempty"`
	Segments []string `json:"segments,omitempty"`
	// Compared counts the events compared with the source.
	Compared int `json:"compared"`
	// FeedCompared counts the events looked up in JetStream; FeedExpired
	// those older than the stream's first retained message (not checked).
	FeedCompared int `json:"feed_compared"`
	FeedExpired  int `json:"feed_expired"`
	// Findings lists every disagreement.
	Findings []Finding `json:"findings"`
}

// Violations counts the findings no known gap accepts.
func (r *Round) Violations() int {
	n := 0
	for _, f := range r.Findings {
		if f.KnownGap == 0 {
			n++
		}
	}
	return n
}

// RunOnce performs one round. It returns an error only when it cannot run
// (store or source unreachable); disagreements are findings.
func RunOnce(ctx context.Context, opts Options) (*Round, error) {
	if opts.Sample <= 0 {
		opts.Sample = DefaultSample
	}
	r := &Round{At: time.Now().UTC(), Findings: []Finding{}}
	conn, err := connect(ctx, opts.SourceURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The slot is read before the catalog: the watermark only grows, so a
	// slot ahead of a later watermark was ahead when it was read. (Read
	// the other way round, the archive's progress in between looked like
	// a violation under load.)
	var slotPos *event.Position
	if opts.Slot != "" {
		if slotPos, err = readSlot(ctx, conn, opts.Slot, r); err != nil {
			return nil, err
		}
	}
	c, err := catalog.Load(ctx, opts.Store)
	if err != nil {
		return nil, fmt.Errorf("monitor: load the catalog: %w", err)
	}
	r.Watermark = c.Watermark().LSN
	if slotPos != nil {
		r.SlotConfirmed = *slotPos
		// Before the archive holds anything (no watermark) the slot stays
		// at its creation point, which is no violation.
		if r.Watermark > 0 && *slotPos > r.Watermark {
			r.Findings = append(r.Findings, Finding{Check: CheckSlot,
				Message: fmt.Sprintf("slot %q confirmed %s, past the archive's watermark %s: the source may recycle WAL the archive does not hold", opts.Slot, *slotPos, r.Watermark)})
		}
	}
	var fr *feedRound
	if opts.Feed != nil {
		if fr, err = openFeedRound(ctx, *opts.Feed); err != nil {
			return nil, err
		}
	}
	if opts.Segments <= 0 {
		opts.Segments = 1
	}
	for _, ref := range pickSegments(c, opts.Segments) {
		if r.Segment == "" {
			r.Segment = ref.Key
		}
		if opts.Segments > 1 {
			r.Segments = append(r.Segments, ref.Key)
		}
		events, table, err := sampleSegment(ctx, opts, ref, r)
		if err != nil {
			return nil, err
		}
		for _, e := range events {
			if err := compareWithSource(ctx, conn, table, ref.Key, e, r); err != nil {
				return nil, err
			}
			if fr != nil {
				if err := fr.compare(ctx, table, ref.Key, e, r); err != nil {
					return nil, err
				}
			}
		}
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		f.KnownGap = c.KnownGapFor(f.Object, f.Stream)
	}
	return r, nil
}

// connect opens the source with the session settings capture uses, so
// values print exactly as they were archived.
func connect(ctx context.Context, rawURL string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("monitor: source URL %s: %s", redact.URL(rawURL), redact.Error(err, rawURL))
	}
	for k, v := range map[string]string{"DateStyle": "ISO, MDY", "TimeZone": "UTC", "IntervalStyle": "postgres",
		"extra_float_digits": "3", "bytea_output": "hex", "application_name": "tidemark-monitor"} {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("monitor: connect to the source %s: %s", redact.URL(rawURL), redact.Error(err, rawURL))
	}
	return conn, nil
}

// readSlot reads the slot's confirmed position (nil when the slot has
// none yet); a missing slot is a finding. Capture confirms only what the
// archive holds, so a confirmed position past the watermark means WAL the
// archive lacks may be recycled.
func readSlot(ctx context.Context, conn *pgx.Conn, slot string, r *Round) (*event.Position, error) {
	var confirmed *string
	err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&confirmed)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		r.Findings = append(r.Findings, Finding{Check: CheckSlot, Message: fmt.Sprintf("replication slot %q does not exist", slot)})
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("monitor: read slot %s: %w", slot, err)
	case confirmed == nil:
		return nil, nil
	}
	pos, err := event.ParsePosition(*confirmed)
	if err != nil {
		return nil, fmt.Errorf("monitor: slot %s position %q: %w", slot, *confirmed, err)
	}
	return &pos, nil
}

// pickSegments chooses up to n distinct live segments at random.
func pickSegments(c *catalog.Catalog, n int) []catalog.SegmentRef {
	var live []catalog.SegmentRef
	for _, s := range c.Segments() {
		if s.Events > 0 {
			live = append(live, s)
		}
	}
	rand.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	return live[:min(n, len(live))]
}

// sampleSegment downloads a live segment, checks it against its catalog
// entry and that each stream's versions increase in it, and returns up to
// opts.Sample of its events, chosen at random, with its table.
func sampleSegment(ctx context.Context, opts Options, ref catalog.SegmentRef, r *Round) ([]*event.Event, *event.Table, error) {
	f, err := os.CreateTemp(opts.TempDir, "tidemark-monitor-*.tms")
	if err != nil {
		return nil, nil, fmt.Errorf("monitor: %w", err)
	}
	defer func() { f.Close(); os.Remove(f.Name()) }()
	n, sum, err := objstore.Download(ctx, opts.Store, ref.Key, f, ref.Size, objstore.WithRetry(objstore.DefaultRetry))
	bad := func(format string, args ...any) ([]*event.Event, *event.Table, error) {
		r.Findings = append(r.Findings, Finding{Check: CheckSegmentCorrupt, Object: ref.Key, Message: fmt.Sprintf(format, args...)})
		return nil, nil, nil
	}
	var tooLarge *objstore.TooLargeError
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		r.Findings = append(r.Findings, Finding{Check: CheckSegmentMissing, Object: ref.Key, Message: "missing from the store (the catalog lists it)"})
		return nil, nil, nil
	case errors.As(err, &tooLarge):
		return bad("larger than the %d bytes the catalog records", ref.Size)
	case err != nil:
		return nil, nil, fmt.Errorf("monitor: download %s: %w", ref.Key, err)
	case n != ref.Size || sum != ref.SHA256:
		return bad("%d bytes with SHA-256 %.16s, the catalog records %d bytes and %.16s", n, sum, ref.Size, ref.SHA256)
	}
	rd, err := segment.OpenReader(ref.Key, f, n, segment.ReadOptions{Keyring: opts.Keyring})
	if err != nil {
		return bad("does not decode: %v", err)
	}
	defer rd.Close()
	t := rd.Header().Table
	l := event.LayoutOf(t)
	last := map[string]int64{} // stream -> last version seen
	// reservoir sample of opts.Sample events
	var out []*event.Event
	for i := 0; ; i++ {
		e, err := rd.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return bad("does not decode: %v", err)
			}
			break
		}
		if l.StreamID >= 0 && l.StreamVersion >= 0 {
			s := string(e.Value(l.StreamID))
			if v, err := strconv.ParseInt(string(e.Value(l.StreamVersion)), 10, 64); err == nil {
				if p, ok := last[s]; ok && v <= p {
					r.Findings = append(r.Findings, Finding{Check: CheckArchiveOrder, Object: ref.Key, Stream: s,
						Message: fmt.Sprintf("stream version %d follows version %d in commit order", v, p)})
				}
				last[s] = v
			}
		}
		switch {
		case len(out) < opts.Sample:
			out = append(out, e)
		default:
			if k := rand.IntN(i + 1); k < opts.Sample {
				out[k] = e
			}
		}
	}
	return out, &t, nil
}

// sourceLookupSQL selects every column as text of the row whose id is $1.
// The id is compared in the column's own type (the server infers $1's
// type from it and parses the archived text form): comparing the column
// cast to text cannot use the primary key's index, and each lookup
// scanned the table — a round grew with it, and its scans held the
// bench-rate workload to half its rate (monitor-steady).
func sourceLookupSQL(t *event.Table, l event.Layout) string {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = pgx.Identifier{c.Name}.Sanitize() + "::text"
	}
	return "SELECT " + strings.Join(cols, ", ") + " FROM " + pgx.Identifier{t.Schema, t.Name}.Sanitize() +
		" WHERE " + pgx.Identifier{t.Columns[l.EventID].Name}.Sanitize() + " = $1"
}

// compareWithSource looks the event up by its id (a primary-key lookup)
// and compares every archived column with the row's text value.
func compareWithSource(ctx context.Context, conn *pgx.Conn, t *event.Table, key string, e *event.Event, r *Round) error {
	l := event.LayoutOf(*t)
	if l.EventID < 0 {
		return nil
	}
	id := string(e.Value(l.EventID))
	stream := ""
	if l.StreamID >= 0 {
		stream = string(e.Value(l.StreamID))
	}
	q := sourceLookupSQL(t, l)
	vals := make([]*string, len(t.Columns))
	dest := make([]any, len(vals))
	for i := range vals {
		dest[i] = &vals[i]
	}
	r.Compared++
	err := conn.QueryRow(ctx, q, id).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		r.Findings = append(r.Findings, Finding{Check: CheckSourceMissing, Object: key, Stream: stream, EventID: id,
			Message: "the archived event's source row is gone (deleted after capture)"})
		return nil
	}
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
		// A data exception: the archived id is not a value of the column's
		// type, so no source row can have it.
		r.Findings = append(r.Findings, Finding{Check: CheckSourceMissing, Object: key, Stream: stream, EventID: id,
			Message: "the archived event's id is not a value of the source column's type: " + pgErr.Message})
		return nil
	}
	if err != nil {
		return fmt.Errorf("monitor: look up event %s in the source: %w", id, err)
	}
	var differ []string
	for i, c := range t.Columns {
		a := e.Value(i)
		switch {
		case vals[i] == nil && a == nil:
		case vals[i] == nil || a == nil || !bytes.Equal([]byte(*vals[i]), a):
			differ = append(differ, c.Name)
		}
	}
	if len(differ) > 0 {
		r.Findings = append(r.Findings, Finding{Check: CheckSourceChanged, Object: key, Stream: stream, EventID: id,
			Message: fmt.Sprintf("the source row differs from the archived event in %s (changed after capture)", strings.Join(differ, ", "))})
	}
	return nil
}
