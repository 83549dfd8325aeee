package copier

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
)

// Repair reads every live segment of the copy whole and copies again, from
// the primary, each one that is missing from the copy or whose size or
// SHA-256 differs from the catalog (an object deleted or altered in the
// copy only; a sync never copies an object over one of the same size). It
// returns the keys it repaired. A copy under a retention lock refuses the
// overwrite; the error names the object. Run it after `restorer verify` of
// the copy named damaged objects.
func (c *Copy) Repair(ctx context.Context) ([]string, error) {
	dst, err := catalog.Load(ctx, c.dest)
	if err != nil {
		return nil, fmt.Errorf("load the copy's catalog: %w", err)
	}
	f, err := os.CreateTemp(c.tempDir, "tidemark-repair-*.tms")
	if err != nil {
		return nil, err
	}
	defer func() { f.Close(); os.Remove(f.Name()) }()
	var repaired []string
	st := &Status{}
	for _, s := range dst.Segments() {
		n, sum, err := objstore.Download(ctx, c.dest, s.Key, f, s.Size, objstore.WithRetry(objstore.DefaultRetry))
		var tooLarge *objstore.TooLargeError
		switch {
		case err == nil && n == s.Size && sum == s.SHA256:
			continue
		case err != nil && !errors.Is(err, objstore.ErrNotFound) && !errors.As(err, &tooLarge):
			return repaired, fmt.Errorf("read %s in the copy: %w", s.Key, err)
		}
		if err := c.copyObject(ctx, objectRef{key: s.Key, size: s.Size, sha256: s.SHA256, overwrite: true}, st); err != nil {
			return repaired, err
		}
		c.log.Warn("repaired a segment damaged or missing in the copy", "key", s.Key)
		repaired = append(repaired, s.Key)
	}
	return repaired, nil
}
