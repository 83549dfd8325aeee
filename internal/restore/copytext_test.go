package restore

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/event"
)

func TestAppendCopyText(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values [][]byte
		cols   []int
		want   string
	}{
		{"plain", [][]byte{[]byte("a"), []byte("b")}, []int{0, 1}, "a\tb\n"},
		{"null and empty", [][]byte{nil, {}}, []int{0, 1}, "\\N\t\n"},
		{"escapes", [][]byte{[]byte("x\\y\tz\n\r\\N")}, []int{0}, "x\\\\y\\tz\\n\\r\\\\N\n"},
		{"bytea", [][]byte{[]byte(`\x00ff`)}, []int{0}, "\\\\x00ff\n"},
		{"reordered and missing", [][]byte{[]byte("a"), []byte("b")}, []int{1, -1, 0, 5}, "b\t\\N\ta\t\\N\n"},
		{"utf8", [][]byte{[]byte(`{"k": "ünï\u0000"}`)}, []int{0}, "{\"k\": \"ünï\\\\u0000\"}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(appendCopyText(nil, tc.values, tc.cols)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// sliceSource returns evs one by one, then io.EOF.
func sliceSource(evs []*event.Event) *lookahead {
	i := 0
	return &lookahead{next: func(context.Context) (item, error) {
		if i == len(evs) {
			return item{}, io.EOF
		}
		i++
		return item{e: evs[i-1], key: "k", offset: i}, nil
	}}
}

// readBatches reads batches of limit rows from in until it is exhausted,
// reading through a buffer of bufSize bytes.
func readBatches(t *testing.T, in *lookahead, limit, bufSize int) []string {
	t.Helper()
	var out []string
	for {
		b := &batchReader{ctx: context.Background(), in: in, cols: []int{0}, limit: limit}
		buf := make([]byte, bufSize)
		var got []byte
		for {
			n, err := b.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := b.close(); err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 {
			out = append(out, string(got))
		}
		if b.exhausted {
			return out
		}
	}
}

func TestBatchReader_Read(t *testing.T) {
	// 3000 events in transactions of 1–4 events
	var evs []*event.Event
	want := ""
	for i := 0; len(evs) < 3000; i++ {
		n := 1 + i%4
		for j := 0; j < n; j++ {
			v := []byte{byte('a' + i%26), byte('0' + j)}
			evs = append(evs, &event.Event{EndLSN: event.Position(100 + i), Index: j, Count: n, Values: [][]byte{v}})
			want += string(v) + "\n"
		}
	}
	for _, tc := range []struct {
		name         string
		limit, bufSz int
	}{{"one batch", 1 << 20, 1 << 16}, {"small batches", 7, 1 << 16}, {"tiny reads", 100, 5}} {
		t.Run(tc.name, func(t *testing.T) {
			batches := readBatches(t, sliceSource(evs), tc.limit, tc.bufSz)
			if strings.Join(batches, "") != want {
				t.Fatal("rows differ from the events")
			}
			rows := 0
			for i, b := range batches {
				n := strings.Count(b, "\n")
				rows += n
				if n < tc.limit && i < len(batches)-1 {
					t.Fatalf("batch %d has %d rows, fewer than %d", i, n, tc.limit)
				}
				// every batch ends on a transaction boundary
				if last := evs[rows-1]; last.Index != last.Count-1 {
					t.Fatalf("batch %d ends inside a transaction (index %d of %d)", i, last.Index, last.Count)
				}
			}
		})
	}
}

func TestBatchReader_EventFailure(t *testing.T) {
	errBad := errors.New("bad segment")
	n := 0
	in := &lookahead{next: func(context.Context) (item, error) {
		if n == 10 {
			return item{}, errBad
		}
		n++
		return item{e: &event.Event{EndLSN: event.Position(n), Values: [][]byte{[]byte("x")}}}, nil
	}}
	b := &batchReader{ctx: context.Background(), in: in, cols: []int{0}, limit: 100}
	if _, err := io.ReadAll(b); !errors.Is(err, errBad) {
		t.Fatalf("read: %v", err)
	}
	if err := b.close(); !errors.Is(err, errBad) {
		t.Fatalf("close: %v, want the events' failure", err)
	}
	if n, err := b.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("read after close: %d, %v", n, err)
	}
}
