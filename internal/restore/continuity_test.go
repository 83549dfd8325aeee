package restore

import (
	"strconv"
	"testing"

	"github.com/tidemark/tidemark/internal/event"
)

func TestVersionStats_Broken(t *testing.T) {
	tbl := event.Table{Columns: []event.Column{{Name: "stream_id"}, {Name: "stream_version"}}}
	for _, tc := range []struct {
		name     string
		versions []string
		ok       bool
	}{
		{"in order", []string{"1", "2", "3"}, true},
		{"any order", []string{"3", "1", "2"}, true},
		{"gap", []string{"1", "3"}, false},
		{"not from 1", []string{"2", "3"}, false},
		{"duplicate", []string{"1", "2", "2"}, false},
		{"duplicate and gap", []string{"1", "2", "2", "4"}, false},
		{"swapped counts", []string{"1", "1", "4", "4"}, false},
		{"invalid", []string{"1", "x"}, false},
		{"zero", []string{"0", "1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newVersionStats(tbl)
			for _, v := range tc.versions {
				s.add(&event.Event{Values: [][]byte{[]byte("s"), []byte(v)}})
			}
			bad, n := s.broken(10)
			if (n == 0) != tc.ok || len(bad) != n {
				t.Fatalf("broken = %v (%d), want ok=%v", bad, n, tc.ok)
			}
		})
	}
	s := newVersionStats(tbl)
	for i := 1; i <= 100000; i++ {
		s.add(&event.Event{Values: [][]byte{[]byte("big"), []byte(strconv.Itoa(100001 - i))}})
	}
	if _, n := s.broken(10); n != 0 {
		t.Fatal("large contiguous stream reported broken")
	}
}
