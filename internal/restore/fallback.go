package restore

import (
	"context"
	"errors"
	"fmt"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
)

// fetch downloads ref from the archive's store, and when that fails — the
// object is missing there, damaged (size or SHA-256 differ from the
// catalog), or unreadable — from each fallback store in turn, checking it
// against the same catalog. Without fallbacks, or when every store fails,
// it returns the store's own failure, naming the object and, for a
// missing object, why each fallback could not supply it.
func (f *fetcher) fetch(ctx context.Context, ref catalog.SegmentRef) (*segmentFile, error) {
	sf, err := f.fetchFrom(ctx, f.store, ref)
	if err == nil || len(f.fallbacks) == 0 {
		return sf, err
	}
	var why []string
	for _, fb := range f.fallbacks {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		sf, ferr := f.fetchFrom(ctx, fb, ref)
		if ferr == nil {
			f.progress.FromFallback.Add(1)
			return sf, nil
		}
		why = append(why, fmt.Sprintf("the fallback %s: %v", fb, ferr))
	}
	var gone *goneError
	if errors.As(err, &gone) {
		gone.fallbacks = why
		return nil, gone
	}
	return nil, fmt.Errorf("%w (and from %d fallback store(s): %s)", err, len(why), joinWhy(why))
}

func joinWhy(why []string) string {
	out := ""
	for i, w := range why {
		if i > 0 {
			out += "; "
		}
		out += w
	}
	return out
}

// WithFallbacks returns the archive with stores to read a segment from
// when Store lacks it or holds it damaged; they must hold copies of the
// same archive (archiver copy), checked against Store's catalog.
func (a *Archive) WithFallbacks(stores ...objstore.Store) *Archive {
	a.Fallbacks = append(a.Fallbacks, stores...)
	return a
}
