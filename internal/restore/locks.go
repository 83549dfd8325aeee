package restore

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/lifecycle"
	"github.com/tidemark/tidemark/internal/objstore"
)

// LockReport says how many objects CheckLocks read and how many fall short.
type LockReport struct {
	// Mode and RetainSeconds are the policy's lock.
	Mode          string  `json:"mode"`
	RetainSeconds float64 `json:"retain_seconds"`
	// Checked counts the objects whose lock was read; Short those without
	// the policy's lock.
	Checked int `json:"checked"`
	Short   int `json:"short"`
}

// CheckLocks reads the retention lock of every live segment and every
// catalog entry in store and reports, as WARNING findings of check "lock"
// naming the object, each whose lock is missing, of another mode, or ends
// before its upload time plus the policy's period. Checkpoints and epoch
// objects are not locked by policy (the first are derived from the
// entries, the second are rewritten by their holder).
func CheckLocks(ctx context.Context, store objstore.Store, policy *lifecycle.Store, rep *Report) (*LockReport, error) {
	lr := &LockReport{Mode: policy.Lock.Mode, RetainSeconds: float64(policy.Lock.Retain) / 1e9}
	if policy.Lock.Mode == "" {
		return lr, nil
	}
	c, err := catalog.Load(ctx, store)
	if err != nil {
		return lr, nil // verify of the store has reported why
	}
	var keys []string
	for _, s := range c.Segments() {
		keys = append(keys, s.Key)
	}
	entries, err := store.List(ctx, catalog.EntriesPrefix, "")
	if err != nil {
		return nil, fmt.Errorf("list entries in %s: %w", store, err)
	}
	for _, o := range entries {
		keys = append(keys, o.Key)
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, k := range keys {
		g.Go(func() error {
			info, err := store.Stat(gctx, k)
			if err != nil {
				return fmt.Errorf("read the lock of %s: %w", k, err)
			}
			why := policy.LockShort(info.ModTime, info.Lock)
			mu.Lock()
			defer mu.Unlock()
			lr.Checked++
			if why != "" {
				lr.Short++
				if lr.Short <= maxProblems {
					rep.Problems = append(rep.Problems, Problem{Severity: SeverityWarning, Check: "lock", Object: k, Message: why})
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if lr.Short > 0 {
		if lr.Short > maxProblems {
			rep.Problems = append(rep.Problems, Problem{Severity: SeverityWarning, Check: "lock",
				Message: fmt.Sprintf("%d more objects without the policy's lock", lr.Short-maxProblems)})
		}
		if rep.Status == StatusOK {
			rep.Status = StatusWarning
		}
	} else {
		rep.Notes = append(rep.Notes, fmt.Sprintf("lock: %d objects (live segments and catalog entries) carry the policy's %s lock", lr.Checked, lr.Mode))
	}
	return lr, nil
}
