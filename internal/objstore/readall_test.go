package objstore_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/objstore"
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
