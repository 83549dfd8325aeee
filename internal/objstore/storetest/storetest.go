package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/objstore"
)

// LargeSize is the size of the large-object round trip: above two 5 MiB
// multipart parts, so an S3 backend with PartSize 5 MiB uploads three parts.
const LargeSize = 12 << 20

// RunConformance runs the suite; newStore must return a fresh, empty store
// for each subtest (cleanup registered on the t it is given).
func RunConformance(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s objstore.Store)
	}{
		{"PutGet", testPutGet},
		{"EmptyObject", testEmptyObject},
		{"Overwrite", testOverwrite},
		{"IfAbsent", testIfAbsent},
		{"IfAbsentConcurrent", testIfAbsentConcurrent},
		{"NotFound", testNotFound},
		{"List", testList},
		{"ListPrefixAndStartAfter", testListPrefixStartAfter},
		{"Delete", testDelete},
		{"ShortBody", testShortBody},
		{"Large", testLarge},
		{"LargeIfAbsent", testLargeIfAbsent},
		{"SpecialCharacters", testSpecialCharacters},
		{"InvalidKeys", testInvalidKeys},
		{"CancelledContext", testCancelledContext},
		{"String", testString},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// put stores body under key with its size known, failing the test on error.
func put(t *testing.T, s objstore.Store, key string, body []byte) {
	t.Helper()
	if err := s.Put(ctxT(t), key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{}); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

// get reads key, failing the test on error.
func get(t *testing.T, s objstore.Store, key string) ([]byte, objstore.ObjectInfo) {
	t.Helper()
	rc, info, err := s.Get(ctxT(t), key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b, info
}

func wantBody(t *testing.T, s objstore.Store, key string, want []byte) {
	t.Helper()
	got, info := get(t, s, key)
	if !bytes.Equal(got, want) {
		t.Fatalf("get %q: body has %d bytes (sha256 %x), want %d bytes (sha256 %x)",
			key, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
	if info.Size != int64(len(want)) {
		t.Fatalf("get %q: info.Size = %d, want %d", key, info.Size, len(want))
	}
	if info.Key != key {
		t.Fatalf("get %q: info.Key = %q", key, info.Key)
	}
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n - n%8; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func testPutGet(t *testing.T, s objstore.Store) {
	body := []byte("hello, tidemark")
	put(t, s, "a/b/c.txt", body)
	wantBody(t, s, "a/b/c.txt", body)

	// Unknown size (-1) is accepted too.
	if err := s.Put(ctxT(t), "a/unknown", bytes.NewBufferString("streamed"), -1, objstore.PutOptions{}); err != nil {
		t.Fatalf("put with unknown size: %v", err)
	}
	wantBody(t, s, "a/unknown", []byte("streamed"))

	info, err := s.Stat(ctxT(t), "a/b/c.txt")
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if info.Key != "a/b/c.txt" || info.Size != int64(len(body)) || info.ModTime.IsZero() {
		t.Fatalf("stat = %+v, want key a/b/c.txt, size %d, a modification time", info, len(body))
	}
	if d := time.Since(info.ModTime); d > time.Hour || d < -time.Hour {
		t.Fatalf("stat: modification time %v is not close to now", info.ModTime)
	}
}

func testEmptyObject(t *testing.T, s objstore.Store) {
	put(t, s, "empty", nil)
	wantBody(t, s, "empty", []byte{})
	if err := s.Put(ctxT(t), "empty2", bytes.NewReader(nil), 0, objstore.PutOptions{IfAbsent: true}); err != nil {
		t.Fatalf("conditional put of an empty object: %v", err)
	}
	wantBody(t, s, "empty2", []byte{})
}

func testOverwrite(t *testing.T, s objstore.Store) {
	put(t, s, "k", []byte("first version, longer"))
	put(t, s, "k", []byte("second"))
	wantBody(t, s, "k", []byte("second"))
}

func testIfAbsent(t *testing.T, s objstore.Store) {
	ctx := ctxT(t)
	first := []byte("first")
	if err := s.Put(ctx, "cond/x", bytes.NewReader(first), int64(len(first)), objstore.PutOptions{IfAbsent: true}); err != nil {
		t.Fatalf("first conditional put: %v", err)
	}
	second := []byte("second body")
	err := s.Put(ctx, "cond/x", bytes.NewReader(second), int64(len(second)), objstore.PutOptions{IfAbsent: true})
	if !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("second conditional put: err = %v, want ErrExists", err)
	}
	wantBody(t, s, "cond/x", first)
	// Unknown size takes the same path.
	err = s.Put(ctx, "cond/x", strings.NewReader("third"), -1, objstore.PutOptions{IfAbsent: true})
	if !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("conditional put with unknown size: err = %v, want ErrExists", err)
	}
	wantBody(t, s, "cond/x", first)
	// No temporary or extra object is visible.
	objs, err := s.List(ctx, "cond/", "")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(objs) != 1 || objs[0].Key != "cond/x" {
		t.Fatalf("list cond/ = %v, want only cond/x", keys(objs))
	}
}

func testIfAbsentConcurrent(t *testing.T, s objstore.Store) {
	ctx := ctxT(t)
	const writers = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []int
		others  []error
	)
	bodies := make([][]byte, writers)
	for i := range writers {
		bodies[i] = randomBytes(uint64(i+1), 4096+i)
	}
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			<-start
			err := s.Put(ctx, "race/seq-1", bytes.NewReader(bodies[i]), int64(len(bodies[i])), objstore.PutOptions{IfAbsent: true})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				winners = append(winners, i)
			} else if !errors.Is(err, objstore.ErrExists) {
				others = append(others, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("conditional puts failed with unexpected errors: %v", others)
	}
	if len(winners) != 1 {
		t.Fatalf("%d conditional puts succeeded (%v), want exactly 1", len(winners), winners)
	}
	wantBody(t, s, "race/seq-1", bodies[winners[0]])
}

func testNotFound(t *testing.T, s objstore.Store) {
	ctx := ctxT(t)
	put(t, s, "dir/present", []byte("x"))
	for _, key := range []string{"absent", "dir/absent", "nodir/absent", "dir"} {
		if _, _, err := s.Get(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("get %q: err = %v, want ErrNotFound", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("stat %q: err = %v, want ErrNotFound", key, err)
		}
	}
	if _, _, err := s.Get(ctx, "dir/present/below"); err == nil {
		t.Errorf("get below an object: err = nil, want an error")
	}
}

func keys(objs []objstore.ObjectInfo) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Key
	}
	return out
}

func wantList(t *testing.T, s objstore.Store, prefix, startAfter string, want []string) {
	t.Helper()
	objs, err := s.List(ctxT(t), prefix, startAfter)
	if err != nil {
		t.Fatalf("list(%q, %q): %v", prefix, startAfter, err)
	}
	got := keys(objs)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("list(%q, %q) = %q, want %q", prefix, startAfter, got, want)
	}
}

func testList(t *testing.T, s objstore.Store) {
	wantList(t, s, "", "", []string{})
	// Written out of order; '-' (0x2d) < '/' (0x2f) < '0' (0x30), so a
	// directory walk order ("x" before "x-1") differs from key order.
	written := []string{"d/y", "d/x0", "d/x/2", "d/x-1", "d/x/1", "e", "d/x/sub/deep"}
	for i, k := range written {
		put(t, s, k, bytes.Repeat([]byte{'a'}, i+1))
	}
	wantList(t, s, "", "", []string{"d/x-1", "d/x/1", "d/x/2", "d/x/sub/deep", "d/x0", "d/y", "e"})
	objs, err := s.List(ctxT(t), "", "")
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	for i, k := range written {
		sizes[k] = int64(i + 1)
	}
	for _, o := range objs {
		if o.Size != sizes[o.Key] {
			t.Errorf("list: %s has size %d, want %d", o.Key, o.Size, sizes[o.Key])
		}
		if o.ModTime.IsZero() {
			t.Errorf("list: %s has no modification time", o.Key)
		}
	}
}

func testListPrefixStartAfter(t *testing.T, s objstore.Store) {
	for _, k := range []string{"d/y", "d/x0", "d/x/2", "d/x-1", "d/x/1", "d/x/sub/deep", "dz", "e/1"} {
		put(t, s, k, []byte(k))
	}
	tests := []struct {
		prefix, startAfter string
		want               []string
	}{
		{"d/", "", []string{"d/x-1", "d/x/1", "d/x/2", "d/x/sub/deep", "d/x0", "d/y"}},
		{"d", "", []string{"d/x-1", "d/x/1", "d/x/2", "d/x/sub/deep", "d/x0", "d/y", "dz"}},
		{"d/x", "", []string{"d/x-1", "d/x/1", "d/x/2", "d/x/sub/deep", "d/x0"}},
		{"d/x/", "", []string{"d/x/1", "d/x/2", "d/x/sub/deep"}},
		{"d/x/s", "", []string{"d/x/sub/deep"}},
		{"d/", "d/x-1", []string{"d/x/1", "d/x/2", "d/x/sub/deep", "d/x0", "d/y"}},
		{"d/", "d/x/1", []string{"d/x/2", "d/x/sub/deep", "d/x0", "d/y"}},
		{"d/", "d/x/", []string{"d/x/1", "d/x/2", "d/x/sub/deep", "d/x0", "d/y"}},
		{"d/", "d/x/sub/deep", []string{"d/x0", "d/y"}},
		{"d/", "d/y", []string{}},
		{"d/", "a", []string{"d/x-1", "d/x/1", "d/x/2", "d/x/sub/deep", "d/x0", "d/y"}},
		{"", "d/y", []string{"dz", "e/1"}},
		{"nothing/", "", []string{}},
		{"d/y/", "", []string{}},
	}
	for _, tt := range tests {
		wantList(t, s, tt.prefix, tt.startAfter, tt.want)
	}
}

func testDelete(t *testing.T, s objstore.Store) {
	ctx := ctxT(t)
	put(t, s, "del/a", []byte("a"))
	put(t, s, "del/b", []byte("b"))
	if err := s.Delete(ctx, "del/a"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.Stat(ctx, "del/a"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("stat after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "del/a"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if err := s.Delete(ctx, "never/was"); err != nil {
		t.Fatalf("delete of an absent key: %v", err)
	}
	wantList(t, s, "del/", "", []string{"del/b"})
	// A deleted key can be created again, conditionally.
	if err := s.Put(ctx, "del/a", strings.NewReader("again"), 5, objstore.PutOptions{IfAbsent: true}); err != nil {
		t.Fatalf("conditional put after delete: %v", err)
	}
	wantBody(t, s, "del/a", []byte("again"))
}

func testShortBody(t *testing.T, s objstore.Store) {
	ctx := ctxT(t)
	err := s.Put(ctx, "short", strings.NewReader("only 12 byte"), 100, objstore.PutOptions{})
	if err == nil {
		t.Fatalf("put of a body shorter than its size: err = nil")
	}
	if _, err := s.Stat(ctx, "short"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("stat after a failed put: err = %v, want ErrNotFound", err)
	}
}

func testLarge(t *testing.T, s objstore.Store) {
	body := randomBytes(42, LargeSize+12345)
	put(t, s, "large/known", body)
	wantBody(t, s, "large/known", body)
	if err := s.Put(ctxT(t), "large/unknown", bytes.NewBuffer(body), -1, objstore.PutOptions{}); err != nil {
		t.Fatalf("large put with unknown size: %v", err)
	}
	wantBody(t, s, "large/unknown", body)
}

func testLargeIfAbsent(t *testing.T, s objstore.Store) {
	ctx := ctxT(t)
	first := randomBytes(1, LargeSize)
	if err := s.Put(ctx, "large/cond", bytes.NewReader(first), int64(len(first)), objstore.PutOptions{IfAbsent: true}); err != nil {
		t.Fatalf("first large conditional put: %v", err)
	}
	second := randomBytes(2, LargeSize+1)
	err := s.Put(ctx, "large/cond", bytes.NewReader(second), int64(len(second)), objstore.PutOptions{IfAbsent: true})
	if !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("second large conditional put: err = %v, want ErrExists", err)
	}
	err = s.Put(ctx, "large/cond", bytes.NewReader(second), -1, objstore.PutOptions{IfAbsent: true})
	if !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("large conditional put with unknown size: err = %v, want ErrExists", err)
	}
	wantBody(t, s, "large/cond", first)
}

// SpecialKeys are keys with characters that need escaping in URLs or are
// unusual in file names; every backend stores them under the exact key.
var SpecialKeys = []string{
	"special/space in name",
	"special/plus+sign",
	"special/percent%20literal",
	"special/question?mark",
	"special/hash#tag",
	"special/amp&equals=semi;colon",
	"special/unicode-äöü-日本-🙂",
	"special/quote'and\"double",
	"special/tilde~star*(paren)[bracket]",
	"special/comma,at@dollar$",
	"special/.hidden",
	"special/dots..in..name",
}

func testSpecialCharacters(t *testing.T, s objstore.Store) {
	for i, k := range SpecialKeys {
		put(t, s, k, []byte(fmt.Sprintf("body %d", i)))
	}
	for i, k := range SpecialKeys {
		wantBody(t, s, k, []byte(fmt.Sprintf("body %d", i)))
	}
	want := append([]string(nil), SpecialKeys...)
	slices.Sort(want)
	wantList(t, s, "special/", "", want)
	for _, k := range SpecialKeys {
		if err := s.Delete(ctxT(t), k); err != nil {
			t.Fatalf("delete %q: %v", k, err)
		}
	}
	wantList(t, s, "special/", "", []string{})
}

func testInvalidKeys(t *testing.T, s objstore.Store) {
	ctx := ctxT(t)
	for _, key := range []string{"", "/abs", "a//b", "a/", "../escape", "a/../b", "a/./b", ".", "..", "nul\x00", `back\slash`, objstore.TempPrefix + "x", strings.Repeat("k", objstore.MaxKeyLength+1)} {
		if err := s.Put(ctx, key, strings.NewReader("x"), 1, objstore.PutOptions{}); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("put %q: err = %v, want ErrInvalidKey", key, err)
		}
		if _, _, err := s.Get(ctx, key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("get %q: err = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("stat %q: err = %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("delete %q: err = %v, want ErrInvalidKey", key, err)
		}
	}
	wantList(t, s, "", "", []string{})
}

func testCancelledContext(t *testing.T, s objstore.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Put(ctx, "cancelled", strings.NewReader("x"), 1, objstore.PutOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("put with a cancelled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.Stat(ctxT(t), "cancelled"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("stat after a cancelled put: err = %v, want ErrNotFound", err)
	}
}

func testString(t *testing.T, s objstore.Store) {
	if s.String() == "" {
		t.Fatalf("String() is empty")
	}
}

// RunMissingBucket checks a store whose bucket does not exist (for the file
// backend: whose root directory was removed after Open): every method
// fails with ErrBucketNotFound carrying a hint (objstore.Hint), never
// ErrNotFound or success, and a Put does not create the bucket.
func RunMissingBucket(t *testing.T, s objstore.Store) {
	ctx := ctxT(t)
	calls := []struct {
		name string
		call func() error
	}{
		{"Put", func() error { return s.Put(ctx, "k", strings.NewReader("v"), 1, objstore.PutOptions{}) }},
		{"PutIfAbsent", func() error { return s.Put(ctx, "k", strings.NewReader("v"), 1, objstore.PutOptions{IfAbsent: true}) }},
		{"Get", func() error {
			rc, _, err := s.Get(ctx, "k")
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{"Stat", func() error { _, err := s.Stat(ctx, "k"); return err }},
		{"List", func() error { _, err := s.List(ctx, "", ""); return err }},
		{"ListPrefix", func() error { _, err := s.List(ctx, "a/b/", ""); return err }},
		{"Delete", func() error { return s.Delete(ctx, "k") }},
		{"ReadAll", func() error {
			_, err := objstore.ReadAll(ctx, s, "k", 10, objstore.WithRetry(objstore.RetryPolicy{Attempts: 3, Backoff: time.Hour}))
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if !errors.Is(err, objstore.ErrBucketNotFound) || errors.Is(err, objstore.ErrNotFound) {
				t.Fatalf("err = %v, want ErrBucketNotFound (and not ErrNotFound)", err)
			}
			if objstore.Hint(err) == "" {
				t.Fatalf("err = %v carries no hint (objstore.Hint)", err)
			}
		})
	}
}
