package copier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// objectRef is a segment object to copy, as the catalog records it.
type objectRef struct {
	key       string
	size      int64
	sha256    string
	optional  bool // absent from the primary is not an error (gc deleted it)
	overwrite bool // copy even over an object of the same size (a repair)
}

// copyObject copies one segment object unless the copy holds it already
// (same size; verify checks the bytes). It streams the object through a
// temporary file and checks its size and SHA-256 against the catalog
// before the copy sees a byte: a damaged object in the primary is never
// copied, it stops the sync naming the object.
func (c *Copy) copyObject(ctx context.Context, r objectRef, st *Status) error {
	if !r.overwrite {
		if info, err := c.dest.Stat(ctx, r.key); err == nil && info.Size == r.size {
			return nil
		} else if err != nil && !errors.Is(err, objstore.ErrNotFound) {
			return fmt.Errorf("stat %s in the copy: %w", r.key, err)
		}
	}
	f, err := os.CreateTemp(c.tempDir, "tidemark-copy-*.tms")
	if err != nil {
		return fmt.Errorf("copy %s: %w", r.key, err)
	}
	defer func() { f.Close(); os.Remove(f.Name()) }()
	n, sum, err := objstore.Download(ctx, c.primary, r.key, f, r.size, objstore.WithRetry(objstore.DefaultRetry))
	switch {
	case errors.Is(err, objstore.ErrNotFound) && r.optional:
		return nil
	case err != nil:
		return fmt.Errorf("read %s from the primary: %w", r.key, err)
	case n != r.size || sum != r.sha256:
		return fmt.Errorf("the primary's %s does not match its catalog entry (%d bytes, SHA-256 %.16s; the catalog says %d, %.16s): not copied (Try: restorer verify --store PRIMARY)",
			r.key, n, sum, r.size, r.sha256)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return err
	}
	level := 0
	if info, err := segment.ParseKey(r.key); err == nil {
		level = info.Level
	}
	if err := c.dest.Put(ctx, r.key, f, n, c.putOptions(level)); err != nil {
		return fmt.Errorf("write %s to the copy: %w", r.key, err)
	}
	st.Objects++
	st.Bytes += n
	objectsCopied.WithLabelValues(c.Name).Inc()
	bytesCopied.WithLabelValues(c.Name).Add(float64(n))
	return nil
}

// copyEpochs copies the primary's epoch objects the copy lacks or holds in
// an older form (their holder rewrites them on renewal), so verify of the
// copy finds every entry's epoch.
func (c *Copy) copyEpochs(ctx context.Context) error {
	dst, err := c.dest.List(ctx, catalog.EpochsPrefix, "")
	if err != nil {
		return fmt.Errorf("list the copy's epochs: %w", err)
	}
	sizes := make(map[string]int64, len(dst))
	for _, o := range dst {
		sizes[o.Key] = o.Size
	}
	objs, err := c.primary.List(ctx, catalog.EpochsPrefix, "")
	if err != nil {
		return fmt.Errorf("list the primary's epochs: %w", err)
	}
	for i, o := range objs {
		if _, ok := catalog.EpochNumber(o.Key); !ok {
			continue
		}
		size, ok := sizes[o.Key]
		if ok && size == o.Size && i < len(objs)-1 {
			continue // an older epoch is rewritten only by its holder, which no longer writes
		}
		if err := c.mirror(ctx, o.Key, catalog.MaxEpochBytes); err != nil {
			return err
		}
	}
	return nil
}

// mirror copies a small object when the copy lacks it or holds other bytes.
func (c *Copy) mirror(ctx context.Context, key string, limit int64) error {
	body, err := objstore.ReadAll(ctx, c.primary, key, limit, objstore.WithRetry(objstore.DefaultRetry))
	if errors.Is(err, objstore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the primary's %s: %w", key, err)
	}
	have, err := objstore.ReadAll(ctx, c.dest, key, limit, objstore.WithRetry(objstore.DefaultRetry))
	if err == nil && bytes.Equal(have, body) {
		return nil
	}
	if err != nil && !errors.Is(err, objstore.ErrNotFound) {
		return fmt.Errorf("read the copy's %s: %w", key, err)
	}
	if err := c.dest.Put(ctx, key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{}); err != nil {
		return fmt.Errorf("write %s to the copy: %w", key, err)
	}
	return nil
}

// copyCatalogObject copies a created-once catalog object (a checkpoint)
// conditionally; an object the primary's gc deleted meanwhile is skipped.
func (c *Copy) copyCatalogObject(ctx context.Context, key string, limit int64) error {
	body, err := objstore.ReadAll(ctx, c.primary, key, limit, objstore.WithRetry(objstore.DefaultRetry))
	if errors.Is(err, objstore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the primary's %s: %w", key, err)
	}
	return c.putCatalogObject(ctx, key, body)
}
