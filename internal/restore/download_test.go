package restore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/tidemark/tidemark/internal/catalog"
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

func TestFetcher_DownloadRetriesShortReads(t *testing.T) {
	ctx := context.Background()
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("segment bytes "), 1000)
	if err := st.Put(ctx, "segments/x.tms", bytes.NewReader(body), int64(len(body)), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	ref := catalog.SegmentRef{Key: "segments/x.tms", Size: int64(len(body))}

	flaky := &shortReads{Store: st, n: downloadTries - 1}
	got, err := (&fetcher{store: flaky}).download(ctx, ref)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("download after %d short reads: %d bytes, %v", flaky.n, len(got), err)
	}
	if flaky.gets != downloadTries {
		t.Fatalf("%d Gets, want %d", flaky.gets, downloadTries)
	}

	broken := &shortReads{Store: st, n: 1 << 30}
	if _, err := (&fetcher{store: broken}).download(ctx, ref); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("always short: %v, want io.ErrUnexpectedEOF", err)
	}
	if broken.gets != downloadTries {
		t.Fatalf("%d Gets for an always-short object, want %d", broken.gets, downloadTries)
	}

	missing := catalog.SegmentRef{Key: "segments/missing.tms", Size: 10}
	if _, err := (&fetcher{store: flaky}).download(ctx, missing); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
}
