package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
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

// readBack returns the contents of a fetched segment's temporary file.
func readBack(t *testing.T, sf *segmentFile) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(sf.file, 0, sf.ref.Size+1))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFetcher_FetchRetriesShortReads(t *testing.T) {
	ctx := context.Background()
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("segment bytes "), 1000)
	if err := st.Put(ctx, "segments/x.tms", bytes.NewReader(body), int64(len(body)), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	ref := catalog.SegmentRef{Key: "segments/x.tms", Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
	tmp := t.TempDir()
	fetcherOf := func(st objstore.Store) *fetcher { return &fetcher{store: st, tempDir: tmp, progress: &Progress{}} }

	flaky := &shortReads{Store: st, n: objstore.DefaultRetry.Attempts - 1}
	sf, err := fetcherOf(flaky).fetch(ctx, ref)
	if err != nil {
		t.Fatalf("fetch after %d short reads: %v", flaky.n, err)
	}
	if got := readBack(t, sf); !bytes.Equal(got, body) {
		t.Fatalf("fetched %d bytes, want the %d of the object", len(got), len(body))
	}
	sf.close()
	if flaky.gets != objstore.DefaultRetry.Attempts {
		t.Fatalf("%d Gets, want %d", flaky.gets, objstore.DefaultRetry.Attempts)
	}

	broken := &shortReads{Store: st, n: 1 << 30}
	if _, err := fetcherOf(broken).fetch(ctx, ref); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("always short: %v, want io.ErrUnexpectedEOF", err)
	}
	if broken.gets != objstore.DefaultRetry.Attempts {
		t.Fatalf("%d Gets for an always-short object, want %d", broken.gets, objstore.DefaultRetry.Attempts)
	}

	var gone *goneError
	missing := catalog.SegmentRef{Key: "segments/missing.tms", Size: 10}
	if _, err := fetcherOf(flaky).fetch(ctx, missing); !errors.As(err, &gone) {
		t.Fatalf("missing object: %v, want a goneError", err)
	}

	altered := ref
	altered.SHA256 = strings.Repeat("0", 64)
	if _, err := fetcherOf(st).fetch(ctx, altered); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("SHA-256 mismatch: %v, want ErrIntegrity", err)
	}
	longer := ref
	longer.Size--
	if _, err := fetcherOf(st).fetch(ctx, longer); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("object larger than the catalog says: %v, want ErrIntegrity", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
}
