package restore

import (
	"context"
	"errors"
	"fmt"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
)

// catalogChecks reports the catalog's own remarks and the segment objects
// the store holds but the catalog does not list. (The hash chain was
// verified by Open: a broken chain never gets this far.)
func (v *verifier) catalogChecks(ctx context.Context, a *Archive) error {
	for _, w := range a.Catalog.Warnings() {
		v.problem(SeverityWarning, "", "", "catalog: %s", w)
	}
	objs, err := a.Store.List(ctx, catalog.SegmentsPrefix, "")
	if err != nil {
		if errors.Is(err, objstore.ErrAccessDenied) {
			return withHint(ErrCredentials, fmt.Errorf("list segments in %s: %w", a.Store, err), "check the store credentials")
		}
		return fmt.Errorf("list segments in %s: %w", a.Store, err)
	}
	for _, o := range objs {
		if _, listed := a.Catalog.SegmentSeq(o.Key); !listed {
			v.problem(SeverityWarning, o.Key, "", "segment object not listed in the catalog (an upload whose entry is not written yet, or an injected object); restores ignore it")
		}
	}
	return nil
}
