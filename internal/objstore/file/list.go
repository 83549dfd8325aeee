package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tidemark/tidemark/internal/objstore"
)

// List walks the directory that holds every key with the prefix and
// returns the matching regular files in lexicographic key order (a walk
// visits "a/b" before "a-c"; the result is sorted as S3 sorts it).
// Temporary files of Puts in flight are skipped.
func (s *Store) List(ctx context.Context, prefix, startAfter string) ([]objstore.ObjectInfo, error) {
	objs, err := s.list(ctx, prefix, startAfter)
	if err != nil {
		return nil, fmt.Errorf("file: list %s: %w", prefix, err)
	}
	return objs, nil
}

func (s *Store) list(ctx context.Context, prefix, startAfter string) ([]objstore.ObjectInfo, error) {
	if strings.ContainsAny(prefix, "\x00\\") || strings.HasPrefix(prefix, "/") {
		return nil, fmt.Errorf("%w: prefix %q", objstore.ErrInvalidKey, prefix)
	}
	// The deepest directory every key with the prefix lives under.
	base := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		base = prefix[:i]
	}
	if base != "" {
		if err := validateDir(base); err != nil {
			return nil, err
		}
	}
	var out []objstore.ObjectInfo
	walkRoot := filepath.Join(s.root, filepath.FromSlash(base))
	err := filepath.WalkDir(walkRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != walkRoot {
				return nil // removed while walking
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if p != walkRoot && !couldHold(key+"/", prefix) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), objstore.TempPrefix) {
			return nil
		}
		if !strings.HasPrefix(key, prefix) || key <= startAfter {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		out = append(out, info(key, fi))
		return nil
	})
	if notExist(err) {
		if s.rootGone() {
			return nil, s.errRootGone()
		}
		return nil, nil // nothing stored under the prefix yet
	}
	if err != nil {
		return nil, classify(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// couldHold reports whether a directory whose keys start with dirPrefix can
// hold keys starting with prefix.
func couldHold(dirPrefix, prefix string) bool {
	return strings.HasPrefix(dirPrefix, prefix) || strings.HasPrefix(prefix, dirPrefix)
}

// validateDir checks a directory part of a list prefix.
func validateDir(dir string) error {
	if err := objstore.ValidateKey(dir); err != nil {
		return fmt.Errorf("prefix directory %q: %w", dir, err)
	}
	if path.Clean(dir) != dir {
		return fmt.Errorf("%w: prefix directory %q", objstore.ErrInvalidKey, dir)
	}
	return nil
}
