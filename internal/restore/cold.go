package restore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
)

// ErrCold: a planned segment is in a cold storage class (GLACIER,
// DEEP_ARCHIVE) in every store that holds it, and not thawed (exit 1:
// thaw it, then run the same command again). Nothing was written.
var ErrCold = errors.New("cold objects not thawed")

// ColdObject is a planned segment that must be thawed before a restore
// can read it. Its JSON form is part of `restore --dry-run --json` and
// `restorer thaw --json`.
type ColdObject struct {
	// Key is the segment object.
	Key string `json:"key"`
	// Store is the store it will be read from once thawed (the first in
	// fallback order that holds it).
	Store string `json:"store"`
	// Class is its storage class there.
	Class string `json:"storage_class"`
	// State is "none" (no restore request yet), "pending" or "done".
	State string `json:"state"`
	// Size is its stored size in bytes.
	Size int64 `json:"size"`
	// ExpectedWait is how long a thaw of its class typically takes at the
	// Standard tier (0 once done).
	ExpectedWait time.Duration `json:"expected_wait_ns"`

	store objstore.Store
}

// ColdObjects returns the planned segments that no store of the archive
// (Store, then its Fallbacks) can serve without a thaw, each with the
// first store holding it. A segment readable in some store — not cold, or
// cold and thawed — is not listed; neither is one no store holds (preflight
// reports those). It lists each store once and asks only about cold
// objects (one HEAD each).
func ColdObjects(ctx context.Context, a *Archive, refs []catalog.SegmentRef) ([]ColdObject, error) {
	stores := append([]objstore.Store{a.Store}, a.Fallbacks...)
	lists := make([]map[string]objstore.ObjectInfo, len(stores))
	out := []ColdObject{}
	for _, ref := range refs {
		var candidate *ColdObject
		readable := false
		for i, st := range stores {
			if lists[i] == nil {
				m, err := listInfos(ctx, st)
				if err != nil {
					continue // an unreachable fallback serves nothing
				}
				lists[i] = m
			}
			info, ok := lists[i][ref.Key]
			if !ok || info.Size != ref.Size {
				continue
			}
			if !objstore.IsCold(info.StorageClass) {
				readable = true
				break
			}
			head, err := st.Stat(ctx, ref.Key)
			if err != nil {
				return nil, fmt.Errorf("read the storage class of %s in %s: %w", ref.Key, st, err)
			}
			if !objstore.IsCold(head.StorageClass) || head.Thaw == objstore.ThawDone {
				readable = true
				break
			}
			if candidate == nil {
				candidate = &ColdObject{Key: ref.Key, Store: st.String(), Class: head.StorageClass, State: thawName(head.Thaw),
					Size: ref.Size, ExpectedWait: objstore.ThawWait(head.StorageClass), store: st}
			}
		}
		if !readable && candidate != nil {
			out = append(out, *candidate)
		}
	}
	return out, nil
}

func thawName(s objstore.ThawState) string {
	switch s {
	case objstore.ThawPending:
		return "pending"
	case objstore.ThawDone:
		return "done"
	}
	return "none"
}

// listInfos lists the segment objects of store by key.
func listInfos(ctx context.Context, store objstore.Store) (map[string]objstore.ObjectInfo, error) {
	objs, err := store.List(ctx, catalog.SegmentsPrefix, "")
	if err != nil {
		return nil, err
	}
	m := make(map[string]objstore.ObjectInfo, len(objs))
	for _, o := range objs {
		m[o.Key] = o
	}
	return m, nil
}

// coldError names the cold objects a restore needs and the command that
// thaws them.
func coldError(cold []ColdObject) error {
	var names []string
	for i, c := range cold {
		if i == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(cold)-5))
			break
		}
		names = append(names, fmt.Sprintf("%s (%s in %s, thaw %s)", c.Key, c.Class, c.Store, c.State))
	}
	return withHint(ErrCold, fmt.Errorf("%d planned segments are in a cold storage class and not thawed: %s", len(cold), strings.Join(names, "; ")),
		"restorer thaw --store URL --to T (the same --store, --fallback-store and --to) issues the restore requests and, with --wait, waits for them; then run this restore again")
}

// ThawOptions configure Thaw.
type ThawOptions struct {
	// Days is how long the thawed copies stay readable (default 7).
	Days int
	// Tier is the retrieval tier: Standard (default), Bulk or Expedited.
	Tier string
}

// Thaw issues a restore request for each cold object not yet thawing and
// returns how many it issued. A store that cannot thaw (not S3) is an
// error naming it.
func Thaw(ctx context.Context, cold []ColdObject, opts ThawOptions) (int, error) {
	if opts.Days <= 0 {
		opts.Days = 7
	}
	n := 0
	for _, c := range cold {
		if c.State != "none" {
			continue
		}
		t, ok := c.store.(objstore.Thawer)
		if !ok {
			return n, failf(ErrUsage, "thaw it with the store's own tools", "store %s cannot thaw objects", c.Store)
		}
		if err := t.Thaw(ctx, c.Key, opts.Days, opts.Tier); err != nil {
			return n, fmt.Errorf("thaw %s in %s: %w", c.Key, c.Store, err)
		}
		n++
	}
	return n, nil
}
