package restore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
)

// shortReads cuts the body of the first n Gets in half, as a connection
// reset or a truncating proxy would; the object itself is whole.
type shortReads struct {
	objstore.Store
	n, gets int
}

func (s *shortReads) Get(ctx context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	rc, info, err := s.Store.Get(ctx, key)
	if err != nil {
		return rc, info, err
	}
	s.gets++
	if s.gets > s.n {
		return rc, info, nil
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	return io.NopCloser(bytes.NewReader(b[:len(b)/2])), info, nil
}

// TestFetcher_FetchRetriesShortReads checks that a segment download cut
// short in transit is read again (objstore.ReadAll's rule, tested there in
// full) and that one that never arrives whole fails.
func TestFetcher_FetchRetriesShortReads(t *testing.T) {
	ctx := context.Background()
	fx := sharedFixture(t)
	st, err := file.Open(fx.dir)
	if err != nil {
		t.Fatal(err)
	}
	ref := openArchive(t, fx.dir, nil).Catalog.Segments()[0]

	flaky := &shortReads{Store: st, n: objstore.DefaultRetry.Attempts - 1}
	f := &fetcher{store: flaky, target: farFuture, progress: &Progress{}}
	got, err := f.fetch(ctx, ref)
	if err != nil || len(got.events) != ref.Events {
		t.Fatalf("fetch after %d short reads: %v", flaky.n, err)
	}
	if flaky.gets != objstore.DefaultRetry.Attempts {
		t.Fatalf("%d Gets, want %d", flaky.gets, objstore.DefaultRetry.Attempts)
	}

	broken := &shortReads{Store: st, n: 1 << 30}
	f.store = broken
	if _, err := f.fetch(ctx, ref); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("always short: %v, want io.ErrUnexpectedEOF", err)
	}
	if broken.gets != objstore.DefaultRetry.Attempts {
		t.Fatalf("%d Gets for an always-short object, want %d", broken.gets, objstore.DefaultRetry.Attempts)
	}
}
