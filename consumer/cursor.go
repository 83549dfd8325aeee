package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore/storeurl"
	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/segment"
)

// Defaults for Config.
const (
	DefaultStream        = "TIDEMARK"
	DefaultSubjectPrefix = "tidemark"
	DefaultSeamTimeout   = 5 * time.Minute
	DefaultMaxPending    = 100_000
	DefaultPollInterval  = time.Second
)

// Errors a Cursor returns; test with errors.Is.
var (
	// ErrSeam: the live feed and the archive could not be joined without a
	// gap within Config.SeamTimeout — the feed no longer holds what follows
	// the archive's watermark and the archive did not advance to where the
	// feed starts (is the archiver running?), or the feed has a hole the
	// archive does not fill.
	ErrSeam = errors.New("consumer: cannot join the live feed to the archive without a gap")
	// ErrWrongArchive: a saved position belongs to another archive.
	ErrWrongArchive = errors.New("consumer: the saved position belongs to another archive")
	// ErrNoSource: neither an archive nor a live feed was configured.
	ErrNoSource = errors.New("consumer: no archive and no live feed configured")
)

// Config says where a Cursor reads and what it selects.
type Config struct {
	// StoreURL is the archive ("s3://bucket/prefix?…", "file:///path"; the
	// restorer's --store). "" reads the live feed only, from the first
	// message the stream still holds.
	StoreURL string
	// DecryptionKeys are age identities (AGE-SECRET-KEY-1…, one per line)
	// for an encrypted archive; keep retired keys in it.
	DecryptionKeys string
	// NATS is the connection to the live feed; nil reads the archive only.
	NATS *nats.Conn
	// Stream and SubjectPrefix name the feed (defaults DefaultStream and
	// DefaultSubjectPrefix, as capture's --stream and --subject-prefix).
	Stream, SubjectPrefix string
	// Table is the qualified table to read; "" means the archive's only
	// table (every table when there is no archive).
	Table string
	// Filter selects events by stream id and type.
	Filter Filter
	// Follow, without NATS, keeps polling the archive for new history
	// instead of ending at its watermark. With NATS the cursor always
	// follows the live feed.
	Follow bool
	// SeamTimeout bounds how long the cursor waits for a hole between what
	// it has delivered and what the feed holds to close (by the archive
	// advancing, or capture re-sending). Default DefaultSeamTimeout.
	SeamTimeout time.Duration
	// MaxPending bounds the feed messages held while a hole is open; the
	// cursor stops reading the feed at the bound. Default DefaultMaxPending.
	MaxPending int
	// PollInterval is how often the archive's catalog is read again while
	// the cursor waits for it. Default DefaultPollInterval.
	PollInterval time.Duration
	// TempDir holds downloaded segments while they are read ("" = os.TempDir()).
	TempDir string
	// Logger receives the cursor's few notices (seam reached, holes); nil
	// discards them.
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.SeamTimeout <= 0 {
		c.SeamTimeout = DefaultSeamTimeout
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Start says where a Cursor begins.
type Start struct {
	after time.Time
	pos   Position
}

// FromBeginning starts at the first event the archive (or, without an
// archive, the stream) holds.
func FromBeginning() Start { return Start{} }

// After starts after instant t: exactly the transactions with commit time
// later than t, so a restore to t followed by a replay After(t) holds
// every transaction once.
func After(t time.Time) Start { return Start{after: t.UTC().Truncate(time.Microsecond)} }

// Resume starts after a saved position.
func Resume(p Position) Start { return Start{pos: p} }

// Cursor reads events in history order. It is not safe for concurrent use.
type Cursor struct {
	cfg   Config
	since time.Time

	arc    *restore.Archive // nil without an archive
	origin string
	table  string // "" = every table

	// w is the chain position through which every item has been handled;
	// partial, when set, is an event of the item after w up to which that
	// item was delivered before (a resume mid-transaction).
	w       event.Position
	partial *Position
	known   bool // w is known (false only before the first live item without an archive)

	hist   *historyReader // reading the archive
	live   *liveFeed      // following the feed
	queue  []*Event       // Next's events of the current transaction
	closed bool
}

// Open prepares a cursor: it loads and verifies the archive's catalog and
// checks a saved position against it. Reading starts with the first Next.
func Open(ctx context.Context, cfg Config, start Start) (*Cursor, error) {
	cfg.defaults()
	if cfg.StoreURL == "" && cfg.NATS == nil {
		return nil, ErrNoSource
	}
	c := &Cursor{cfg: cfg, since: start.after, table: cfg.Table}
	if !start.pos.IsZero() {
		p := start.pos
		c.w, c.partial, c.known = event.Position(p.End)-1, &p, true
	}
	if cfg.StoreURL != "" {
		if err := c.openArchive(ctx); err != nil {
			return nil, err
		}
		c.known = true
		if p := start.pos; p.Archive != "" && c.origin != "" && p.Archive != c.origin {
			return nil, fmt.Errorf("%w: position %s was read from archive %s, the store holds archive %s; Try: the --store (and copy) the position was saved with, or start over without it",
				ErrWrongArchive, p, p.Archive, c.origin)
		}
		tables := c.arc.Tables()
		switch {
		case c.table == "" && len(tables) > 1:
			return nil, fmt.Errorf("consumer: the archive holds several tables (%v); Try: set the table to read", tables)
		case c.table == "" && len(tables) == 1:
			c.table = tables[0]
		}
		c.hist = newHistoryReader(c, c.arc)
	}
	return c, nil
}

func (c *Cursor) openArchive(ctx context.Context) error {
	st, err := storeurl.Open(ctx, c.cfg.StoreURL)
	if err != nil {
		return fmt.Errorf("consumer: open store: %w", err)
	}
	var kr *segment.Keyring
	if c.cfg.DecryptionKeys != "" {
		if kr, err = segment.ParseKeyring(c.cfg.DecryptionKeys); err != nil {
			return fmt.Errorf("consumer: decryption keys: %w", err)
		}
	}
	c.arc, err = restore.Open(ctx, st, kr)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	c.origin = c.arc.Origin()
	return nil
}

// Live reports whether the cursor has reached the live feed: every event
// it returns from now on comes from JetStream.
func (c *Cursor) Live() bool { return c.live != nil && c.hist == nil }

// Next returns the next selected event. It returns io.EOF only when the
// cursor reads an archive without following (no NATS, no Follow) and has
// reached the archive's watermark.
func (c *Cursor) Next(ctx context.Context) (*Event, error) {
	for len(c.queue) == 0 {
		t, err := c.NextTransaction(ctx)
		if err != nil {
			return nil, err
		}
		c.queue = t.Events
	}
	e := c.queue[0]
	c.queue = c.queue[1:]
	return e, nil
}

// NextTransaction returns the selected events of the next source
// transaction that has any. Do not mix it with Next on one cursor while
// Next has events of a transaction left.
func (c *Cursor) NextTransaction(ctx context.Context) (*Transaction, error) {
	if c.closed {
		return nil, errors.New("consumer: cursor closed")
	}
	for {
		if c.hist != nil {
			t, err := c.hist.next(ctx)
			if err == nil {
				return t, nil
			}
			if !errors.Is(err, io.EOF) {
				return nil, err
			}
			c.advance(c.hist.watermark())
			c.hist.close()
			c.hist = nil
			if c.live != nil {
				c.live.sweep()
			}
			continue
		}
		if c.cfg.NATS == nil {
			if !c.cfg.Follow {
				return nil, io.EOF
			}
			if err := c.waitArchive(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if c.live == nil {
			l, err := startLive(ctx, c)
			if err != nil {
				return nil, err
			}
			c.live = l
			c.cfg.Logger.Info("reading the live feed", "after", c.w.String(), "stream", c.cfg.Stream)
		}
		t, err := c.live.next(ctx)
		if err != nil || t != nil {
			return t, err
		}
		// nil, nil: the archive advanced over a hole; read it (c.hist set).
	}
}

// advance moves w to p if p is later; a partial item at or before w is done.
func (c *Cursor) advance(p event.Position) {
	if p > c.w {
		c.w = p
	}
	if c.partial != nil && event.Position(c.partial.End) <= c.w {
		c.partial = nil
	}
}

// after is the archive position after which history is still to be read.
func (c *Cursor) after() (event.Position, int) {
	if c.partial != nil {
		return event.Position(c.partial.End), c.partial.Index
	}
	return c.w, math.MaxInt32
}

// waitArchive polls the archive until its watermark passes w.
func (c *Cursor) waitArchive(ctx context.Context) error {
	t := time.NewTicker(c.cfg.PollInterval)
	defer t.Stop()
	for {
		ok, err := c.refreshArchive(ctx)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// refreshArchive reads the catalog's new entries; when the watermark has
// passed w it starts reading the new history and returns true.
func (c *Cursor) refreshArchive(ctx context.Context) (bool, error) {
	if err := c.arc.Catalog.Refresh(ctx, c.arc.Store); err != nil {
		return false, fmt.Errorf("consumer: read the archive's catalog: %w", err)
	}
	if c.origin == "" {
		c.origin = c.arc.Origin()
		if c.table == "" && c.cfg.Table == "" {
			if ts := c.arc.Tables(); len(ts) == 1 {
				c.table = ts[0]
			}
		}
	}
	if c.arc.Catalog.Watermark().LSN <= c.w {
		return false, nil
	}
	c.hist = newHistoryReader(c, c.arc)
	return true, nil
}

// Close stops reading and removes temporary files.
func (c *Cursor) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	if c.hist != nil {
		c.hist.close()
	}
	if c.live != nil {
		c.live.stop()
	}
	return nil
}

// selects reports whether the cursor delivers an event of table t.
func (c *Cursor) selects(e *Event) bool {
	if c.table != "" && e.Table != c.table {
		return false
	}
	if !c.since.IsZero() && !e.CommitTime.After(c.since) {
		return false
	}
	if c.partial != nil && LSN(c.partial.End) == e.Position.End && e.Position.Index <= c.partial.Index {
		return false
	}
	return c.cfg.Filter.empty() || c.cfg.Filter.match(e.StreamID, e.EventType)
}
