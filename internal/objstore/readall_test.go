package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
)

// getStore serves one body with a claimed size; other methods are unused.
type getStore struct {
	objstore.Store
	body string
	size int64
}

func (g getStore) Get(_ context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	return io.NopCloser(strings.NewReader(g.body)), objstore.ObjectInfo{Key: key, Size: g.size}, nil
}

func TestReadAll(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		body    string
		size    int64
		limit   int64
		wantErr error
	}{
		{"whole", "hello", 5, 10, nil},
		{"exactly the limit", "hello", 5, 5, nil},
		{"claimed size over the limit", "hello", 50, 10, nil}, // TooLargeError, checked below
		{"body over the limit", "hello world", 5, 10, nil},    // TooLargeError
		{"cut short in transit", "hel", 5, 10, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		b, err := objstore.ReadAll(ctx, getStore{body: tt.body, size: tt.size}, "k", tt.limit)
		var tooLarge *objstore.TooLargeError
		switch {
		case strings.Contains(tt.name, "over the limit"):
			if !errors.As(err, &tooLarge) {
				t.Errorf("%s: err = %v, want TooLargeError", tt.name, err)
			}
		case tt.wantErr != nil:
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s: err = %v, want %v", tt.name, err, tt.wantErr)
			}
		default:
			if err != nil || string(b) != tt.body {
				t.Errorf("%s: %q, %v", tt.name, b, err)
			}
		}
	}
}

// faultyStore is a real store whose Gets pass through get, which may
// fail a Get or spoil its body; n counts the Gets from 1.
type faultyStore struct {
	objstore.Store
	get  func(n int, rc io.ReadCloser, info objstore.ObjectInfo) (io.ReadCloser, error)
	gets int
}

func (f *faultyStore) Get(ctx context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	rc, info, err := f.Store.Get(ctx, key)
	if err != nil {
		return rc, info, err
	}
	f.gets++
	rc, err = f.get(f.gets, rc, info)
	return rc, info, err
}

// halfBody cuts a body in half, as a connection reset or a truncating
// proxy would; the object itself stays whole.
func halfBody(rc io.ReadCloser) io.ReadCloser {
	b, _ := io.ReadAll(rc)
	rc.Close()
	return io.NopCloser(bytes.NewReader(b[:len(b)/2]))
}

func TestReadAll_Retry(t *testing.T) {
	ctx := context.Background()
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("segment bytes "), 1000)
	if err := st.Put(ctx, "segments/x.tms", bytes.NewReader(body), int64(len(body)), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	policy := objstore.RetryPolicy{Attempts: 4, Backoff: time.Millisecond}
	reset := errors.New("connection reset by peer")
	tests := []struct {
		name     string
		key      string
		limit    int64
		get      func(n int, rc io.ReadCloser, info objstore.ObjectInfo) (io.ReadCloser, error)
		wantGets int
		wantErr  func(error) bool
	}{
		{"cut short three times, whole the fourth", "segments/x.tms", 1 << 20,
			func(n int, rc io.ReadCloser, _ objstore.ObjectInfo) (io.ReadCloser, error) {
				if n < 4 {
					return halfBody(rc), nil
				}
				return rc, nil
			}, 4, nil},
		{"always cut short", "segments/x.tms", 1 << 20,
			func(_ int, rc io.ReadCloser, _ objstore.ObjectInfo) (io.ReadCloser, error) { return halfBody(rc), nil },
			4, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"transient error, then whole", "segments/x.tms", 1 << 20,
			func(n int, rc io.ReadCloser, _ objstore.ObjectInfo) (io.ReadCloser, error) {
				if n == 1 {
					rc.Close()
					return nil, fmt.Errorf("s3: get segments/x.tms: %w", reset)
				}
				return rc, nil
			}, 2, nil},
		{"not found is not retried", "segments/missing.tms", 1 << 20, nil,
			0, func(err error) bool { return errors.Is(err, objstore.ErrNotFound) }},
		{"access denied is not retried", "segments/x.tms", 1 << 20,
			func(_ int, rc io.ReadCloser, _ objstore.ObjectInfo) (io.ReadCloser, error) {
				rc.Close()
				return nil, fmt.Errorf("s3: get segments/x.tms: %w", objstore.ErrAccessDenied)
			}, 1, func(err error) bool { return errors.Is(err, objstore.ErrAccessDenied) }},
		{"too large is not retried", "segments/x.tms", 10,
			func(_ int, rc io.ReadCloser, _ objstore.ObjectInfo) (io.ReadCloser, error) { return rc, nil },
			1, func(err error) bool { var tl *objstore.TooLargeError; return errors.As(err, &tl) }},
		{"missing bucket is not retried", "segments/x.tms", 1 << 20,
			func(_ int, rc io.ReadCloser, _ objstore.ObjectInfo) (io.ReadCloser, error) {
				rc.Close()
				return nil, fmt.Errorf("s3: get segments/x.tms: %w: b", objstore.ErrBucketNotFound)
			}, 1, func(err error) bool { return errors.Is(err, objstore.ErrBucketNotFound) }},
		{"no credentials is not retried", "segments/x.tms", 1 << 20,
			func(_ int, rc io.ReadCloser, _ objstore.ObjectInfo) (io.ReadCloser, error) {
				rc.Close()
				return nil, fmt.Errorf("s3: get segments/x.tms: %w", objstore.ErrNoCredentials)
			}, 1, func(err error) bool { return errors.Is(err, objstore.ErrNoCredentials) }},
		{"invalid key is not retried", "../x", 1 << 20, nil,
			0, func(err error) bool { return errors.Is(err, objstore.ErrInvalidKey) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &faultyStore{Store: st, get: tt.get}
			got, err := objstore.ReadAll(ctx, f, tt.key, tt.limit, objstore.WithRetry(policy))
			if tt.wantErr == nil {
				if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("%d bytes, %v; want the whole %d", len(got), err, len(body))
				}
			} else if !tt.wantErr(err) {
				t.Fatalf("err = %v", err)
			}
			if f.gets != tt.wantGets {
				t.Fatalf("%d Gets, want %d", f.gets, tt.wantGets)
			}
		})
	}

	t.Run("without WithRetry one read", func(t *testing.T) {
		f := &faultyStore{Store: st, get: func(_ int, rc io.ReadCloser, _ objstore.ObjectInfo) (io.ReadCloser, error) { return halfBody(rc), nil }}
		if _, err := objstore.ReadAll(ctx, f, "segments/x.tms", 1<<20); !errors.Is(err, io.ErrUnexpectedEOF) || f.gets != 1 {
			t.Fatalf("err = %v after %d Gets, want io.ErrUnexpectedEOF after 1", err, f.gets)
		}
	})
	t.Run("context ends during the backoff", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		f := &faultyStore{Store: st, get: func(_ int, rc io.ReadCloser, _ objstore.ObjectInfo) (io.ReadCloser, error) {
			cancel()
			return halfBody(rc), nil
		}}
		slow := objstore.WithRetry(objstore.RetryPolicy{Attempts: 4, Backoff: time.Hour})
		if _, err := objstore.ReadAll(cctx, f, "segments/x.tms", 1<<20, slow); !errors.Is(err, context.Canceled) || f.gets != 1 {
			t.Fatalf("err = %v after %d Gets, want context.Canceled after 1", err, f.gets)
		}
	})
}
