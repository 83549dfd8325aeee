package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/tidemark/tidemark/internal/objstore"
)

var _ objstore.Store = (*Store)(nil)

// Store keeps objects as files under a root directory.
type Store struct {
	root string
}

// Open returns a Store rooted at dir, creating the directory if needed.
// The root is the store's bucket: should it disappear later, every method
// returns ErrBucketNotFound rather than recreating it.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("file: open: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file: open %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("file: open %s: %w", abs, classify(err))
	}
	return &Store{root: abs}, nil
}

// PathFromURL returns the directory of a "file:///path" URL or a bare path.
func PathFromURL(rawURL string) (string, error) {
	if !strings.Contains(rawURL, "://") {
		return rawURL, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("file: parse url: %w", err)
	}
	if u.Scheme != "file" {
		return "", fmt.Errorf("file: parse url: scheme %q is not file", u.Scheme)
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("file: parse url: host %q: only local paths (file:///path)", u.Host)
	}
	if u.Path == "" {
		return "", errors.New("file: parse url: empty path")
	}
	return u.Path, nil
}

// Root returns the absolute root directory.
func (s *Store) Root() string { return s.root }

// String describes the store as a file URL.
func (s *Store) String() string { return "file://" + s.root }

// path maps a validated key to its file path.
func (s *Store) path(key string) string {
	return filepath.Join(s.root, filepath.FromSlash(key))
}

// Put writes the object through a temporary file in the target directory,
// so a reader never sees a partial object.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, opts objstore.PutOptions) error {
	if err := s.put(ctx, key, r, size, opts); err != nil {
		return fmt.Errorf("file: put %s: %w", key, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, key string, r io.Reader, size int64, opts objstore.PutOptions) error {
	if err := objstore.ValidateKey(key); err != nil {
		return err
	}
	if opts.Lock.Mode != "" {
		return objstore.ErrLockUnsupported // a directory cannot refuse its owner
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	final := s.path(key)
	dir := filepath.Dir(final)
	if s.rootGone() {
		return s.errRootGone() // MkdirAll would create a new, empty root
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return classifyWrite(err)
	}
	tmp, err := os.CreateTemp(dir, objstore.TempPrefix+"*")
	if err != nil {
		return classifyWrite(err)
	}
	tmpName := tmp.Name()
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	n, err := io.Copy(tmp, ctxReader{ctx: ctx, r: r})
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("body has %d bytes, want %d", n, size)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if opts.IfAbsent {
		if err := os.Link(tmpName, final); err != nil {
			if errors.Is(err, fs.ErrExist) {
				if fi, serr := os.Lstat(final); serr == nil && fi.IsDir() {
					return errors.New("the name is a directory holding other keys")
				}
				return objstore.ErrExists
			}
			return classifyWrite(err)
		}
		os.Remove(tmpName)
	} else {
		if err := os.Rename(tmpName, final); err != nil {
			return classifyWrite(err)
		}
	}
	committed = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

// Get opens the object's file.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return nil, objstore.ObjectInfo{}, fmt.Errorf("file: get %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, objstore.ObjectInfo{}, fmt.Errorf("file: get %s: %w", key, err)
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, objstore.ObjectInfo{}, fmt.Errorf("file: get %s: %w", key, s.classify(err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, objstore.ObjectInfo{}, fmt.Errorf("file: get %s: %w", key, s.classify(err))
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, objstore.ObjectInfo{}, fmt.Errorf("file: get %s: %w", key, objstore.ErrNotFound)
	}
	return f, info(key, fi), nil
}

// Stat returns the object's size and modification time.
func (s *Store) Stat(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("file: stat %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("file: stat %s: %w", key, err)
	}
	fi, err := os.Stat(s.path(key))
	if err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("file: stat %s: %w", key, s.classify(err))
	}
	if !fi.Mode().IsRegular() {
		return objstore.ObjectInfo{}, fmt.Errorf("file: stat %s: %w", key, objstore.ErrNotFound)
	}
	return info(key, fi), nil
}

// Delete removes the object's file; an absent key is not an error. Empty
// directories are left in place (removing them would race with a
// concurrent Put into the same directory).
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := objstore.ValidateKey(key); err != nil {
		return fmt.Errorf("file: delete %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file: delete %s: %w", key, err)
	}
	p := s.path(key)
	fi, err := os.Lstat(p)
	if notExist(err) && s.rootGone() {
		return fmt.Errorf("file: delete %s: %w", key, s.errRootGone())
	}
	if notExist(err) || (err == nil && fi.IsDir()) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("file: delete %s: %w", key, classify(err))
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("file: delete %s: %w", key, classify(err))
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("file: delete %s: sync directory: %w", key, err)
	}
	return nil
}

func info(key string, fi fs.FileInfo) objstore.ObjectInfo {
	return objstore.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime().UTC()}
}

// classify wraps the error of a read in the objstore sentinels: a missing
// file is ErrNotFound, unless the root directory itself is gone.
func (s *Store) classify(err error) error {
	if notExist(err) && s.rootGone() {
		return s.errRootGone()
	}
	return classify(err)
}

// rootGone reports whether the root directory no longer exists: the file
// backend's missing bucket.
func (s *Store) rootGone() bool {
	fi, err := os.Stat(s.root)
	return errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir())
}

func (s *Store) errRootGone() error { return &rootGoneError{root: s.root} }

// rootGoneError is the file backend's ErrBucketNotFound.
type rootGoneError struct{ root string }

func (e *rootGoneError) Error() string {
	return objstore.ErrBucketNotFound.Error() + ": directory " + e.root + " is gone"
}
func (e *rootGoneError) Is(target error) bool { return target == objstore.ErrBucketNotFound }

// Hint is for objstore.Hint.
func (e *rootGoneError) Hint() string {
	return "the store's directory was removed or unmounted: bring it back, or correct the store path"
}

func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// classify wraps filesystem errors in the objstore sentinels.
func classify(err error) error {
	switch {
	case notExist(err):
		return fmt.Errorf("%w: %w", objstore.ErrNotFound, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %w", objstore.ErrAccessDenied, err)
	}
	return err
}

// classifyWrite wraps errors of a write: a missing directory is not a
// missing object there.
func classifyWrite(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: %w", objstore.ErrAccessDenied, err)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader stops a copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
