package copier

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Run syncs every copy every interval until ctx ends, each copy in its own
// goroutine: a destination that is slow or unreachable delays only its own
// syncs, never the others' (nor the primary, which the copier only reads).
// A failed sync is logged and retried at the next interval.
func Run(ctx context.Context, copies []*Copy, interval time.Duration) error {
	var wg sync.WaitGroup
	for _, c := range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.loop(ctx, interval)
		}()
	}
	wg.Wait()
	return nil
}

func (c *Copy) loop(ctx context.Context, interval time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := c.Sync(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			c.log.Warn("copy sync failed; retrying at the next interval", "err", err, "lag_entries", st.LagEntries)
		case err == nil && st.Entries > 0:
			c.log.Info("copy synced", "entries", st.Entries, "objects", st.Objects, "bytes", st.Bytes, "seq", st.CopySeq)
		}
		t.Reset(interval)
	}
}

// SyncAll syncs every copy once, concurrently, and returns their statuses
// in order and the first failure.
func SyncAll(ctx context.Context, copies []*Copy) ([]Status, error) {
	out := make([]Status, len(copies))
	errs := make([]error, len(copies))
	var wg sync.WaitGroup
	for i, c := range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = c.Sync(ctx)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// Ready reports whether any copy's last sync read the primary: nil while
// the copier has not yet tried, an error once every copy failed.
func Ready(copies []*Copy) error {
	var errs []error
	for _, c := range copies {
		st := c.Status()
		if st.Error == "" {
			return nil
		}
		errs = append(errs, errors.New(st.Copy+": "+st.Error))
	}
	return errors.Join(errs...)
}
