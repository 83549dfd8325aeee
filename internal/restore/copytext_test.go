package restore

import (
	"io"
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

func TestRowReader_Read(t *testing.T) {
	var chunks []chunk
	want := ""
	for c := 0; c < 3; c++ {
		var evs []*event.Event
		for i := 0; i < 1000; i++ {
			v := []byte{byte('a' + c), byte('0' + i%10)}
			evs = append(evs, &event.Event{Values: [][]byte{v}})
			want += string(v) + "\n"
		}
		chunks = append(chunks, chunk{events: evs})
	}
	chunks = append(chunks, chunk{})
	r := newRowReader(chunks, []int{0})
	// a tiny buffer exercises partial reads
	got, err := io.ReadAll(io.LimitReader(struct{ io.Reader }{r}, 1<<30))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want || r.rows != 3000 || len(eventsOf(chunks)) != 3000 {
		t.Fatalf("rows %d, len %d want %d", r.rows, len(got), len(want))
	}
	small := newRowReader(chunks, []int{0})
	buf := make([]byte, 5)
	var out []byte
	for {
		n, err := small.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			break
		}
	}
	if string(out) != want {
		t.Fatal("small reads differ")
	}
}

// eventsOf flattens chunks.
func eventsOf(chunks []chunk) []*event.Event {
	var out []*event.Event
	for _, c := range chunks {
		out = append(out, c.events...)
	}
	return out
}
