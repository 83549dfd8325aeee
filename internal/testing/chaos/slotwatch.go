package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
)

// slotWatchInterval is how often I6 is sampled.
const slotWatchInterval = 200 * time.Millisecond

// slotWatch samples the slot's confirmed_flush_lsn and then the catalog's
// durable watermark, and records any sample where the slot is ahead. The
// slot is read first: the watermark only grows, so a slot position ahead
// of a later watermark was ahead of the watermark when it was read.
type slotWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	samples   int
	errors    int
	created   event.Position // the slot's position before anything was archived
	maxAhead  event.Position
	violation string
	lastSlot  event.Position
	lastWM    event.Position
}

func startSlotWatch(ctx context.Context, pgURL string, store objstore.Store, slot string) *slotWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &slotWatch{cancel: cancel, done: make(chan struct{})}
	go w.run(ctx, pgURL, store, slot)
	return w
}

func (w *slotWatch) run(ctx context.Context, pgURL string, store objstore.Store, slot string) {
	defer close(w.done)
	var conn *pgx.Conn
	var cat *catalog.Catalog
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	t := time.NewTicker(slotWatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if conn == nil || conn.IsClosed() {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			c, err := pgx.Connect(cctx, pgURL)
			cancel()
			if err != nil {
				w.fail()
				continue
			}
			conn = c
		}
		pos, ok, err := slotPosition(ctx, conn, slot)
		if err != nil {
			conn.Close(context.Background())
			conn = nil
			w.fail()
			continue
		}
		if !ok {
			continue // no slot (yet, or dropped by the scenario)
		}
		if cat == nil {
			if cat, err = catalog.Load(ctx, store); err != nil {
				cat = nil
				w.fail()
				continue
			}
		} else if err := cat.Refresh(ctx, store); err != nil {
			w.fail()
			continue
		}
		w.observe(pos, cat.Watermark().LSN)
	}
}

// slotPosition returns the slot's confirmed_flush_lsn; ok is false when
// the slot does not exist.
func slotPosition(ctx context.Context, conn *pgx.Conn, slot string) (event.Position, bool, error) {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var lsn *string
	err := conn.QueryRow(qctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&lsn)
	if err == pgx.ErrNoRows || (err == nil && lsn == nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	p, err := event.ParsePosition(*lsn)
	return p, err == nil, err
}

func (w *slotWatch) fail() {
	w.mu.Lock()
	w.errors++
	w.mu.Unlock()
}

// observe checks one sample: before anything is archived the slot must
// stay where it was created; after, it may not pass the watermark (or its
// creation point, which the first archived item covers).
func (w *slotWatch) observe(slot, wm event.Position) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.samples++
	w.lastSlot, w.lastWM = slot, wm
	if w.created == 0 {
		w.created = slot
	}
	limit := max(wm, w.created)
	if slot > limit {
		if slot-limit > w.maxAhead {
			w.maxAhead = slot - limit
		}
		if w.violation == "" {
			w.violation = fmt.Sprintf("confirmed_flush_lsn %s passed the durable watermark %s (slot created at %s) at %s",
				slot, wm, w.created, time.Now().UTC().Format(time.RFC3339Nano))
		}
	}
}

func (w *slotWatch) stop() {
	w.cancel()
	<-w.done
}

// verdict stops the watcher and returns the I6 violation, if any.
func (w *slotWatch) verdict() (*Violation, string) {
	w.stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	summary := fmt.Sprintf("i6_samples=%d", w.samples)
	if w.violation != "" {
		return violation("I6", "%s (max %d bytes ahead, %d samples)", w.violation, uint64(w.maxAhead), w.samples), summary
	}
	if w.samples == 0 {
		return violation("I6", "the slot and the watermark were never sampled (%d errors)", w.errors), summary
	}
	return nil, summary
}
