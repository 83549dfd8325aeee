package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func TestRegistry(t *testing.T) {
	all := All()
	if len(all) < 20 {
		t.Errorf("%d scenarios; the suite promises at least 20", len(all))
	}
	short := 0
	for _, s := range all {
		if s.Name == "" || s.Injects == "" || s.Checks == "" || s.Run == nil || s.Budget <= 0 {
			t.Errorf("scenario %q is incomplete: %+v", s.Name, s)
		}
		if s.Short {
			short++
		}
	}
	if short < 3 || short > 4 {
		t.Errorf("%d scenarios in the short subset; make test runs 3-4", short)
	}
}

func TestSelect(t *testing.T) {
	tests := []struct {
		names   string
		all     bool
		want    int // -1: every scenario
		wantErr bool
	}{
		{names: "", all: false, want: countShort()},
		{names: "", all: true, want: -1},
		{names: "baseline", want: 1},
		{names: "baseline, capture-kill9", all: true, want: 2},
		{names: "no-such-scenario", wantErr: true},
	}
	for _, tt := range tests {
		got, err := Select(tt.names, tt.all)
		if (err != nil) != tt.wantErr {
			t.Errorf("Select(%q, %v) error = %v", tt.names, tt.all, err)
			continue
		}
		want := tt.want
		if want == -1 {
			want = len(All())
		}
		if !tt.wantErr && len(got) != want {
			t.Errorf("Select(%q, %v) = %d scenarios, want %d", tt.names, tt.all, len(got), want)
		}
	}
}

func countShort() int {
	n := 0
	for _, s := range All() {
		if s.Short {
			n++
		}
	}
	return n
}

func TestSlotWatch_Observe(t *testing.T) {
	tests := []struct {
		name    string
		samples [][2]event.Position // slot, watermark
		wantBad bool
	}{
		{"slot stays at creation before anything is archived", [][2]event.Position{{100, 0}, {100, 0}, {100, 150}, {150, 150}}, false},
		{"slot advances before anything is archived", [][2]event.Position{{100, 0}, {120, 0}}, true},
		{"slot behind the watermark", [][2]event.Position{{100, 0}, {100, 200}, {180, 300}, {300, 300}}, false},
		{"slot passes the watermark", [][2]event.Position{{100, 0}, {100, 200}, {250, 200}}, true},
		{"snapshot positions below creation", [][2]event.Position{{100, 0}, {100, 3}, {100, 100}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &slotWatch{}
			for _, s := range tt.samples {
				w.observe(s[0], s[1])
			}
			if got := w.violation != ""; got != tt.wantBad {
				t.Errorf("violation = %q, want one: %v", w.violation, tt.wantBad)
			}
		})
	}
}

func TestArchiveContent_AddTxn(t *testing.T) {
	a := &archiveContent{txns: map[event.Position]*txnSeen{}}
	for _, ev := range []event.Event{
		{EndLSN: 10, Index: 0, Count: 2}, {EndLSN: 10, Index: 1, Count: 2}, // whole
		{EndLSN: 20, Index: 0, Count: 3}, {EndLSN: 20, Index: 2, Count: 3}, // index 1 missing
		{EndLSN: 30, Index: 0, Count: 1}, {EndLSN: 30, Index: 0, Count: 1}, // duplicated
		{EndLSN: 40, Index: 0, Count: 2}, {EndLSN: 40, Index: 1, Count: 3}, // sizes disagree
	} {
		a.addTxn(&ev)
	}
	whole := func(p event.Position) bool {
		tx := a.txns[p]
		ok := tx.bad == ""
		for _, s := range tx.seen {
			ok = ok && s
		}
		return ok
	}
	if !whole(10) || whole(20) || !whole(30) || whole(40) {
		t.Errorf("whole: 10=%v 20=%v 30=%v 40=%v; want true false true false", whole(10), whole(20), whole(30), whole(40))
	}
	if a.txns[30].dups != 1 {
		t.Errorf("duplicates at 30 = %d, want 1", a.txns[30].dups)
	}
	if d := a.txns[20].describe(); d != "2 of 3 events" {
		t.Errorf("describe = %q", d)
	}
}

func TestJoinViolations(t *testing.T) {
	if err := joinViolations([]*Violation{nil, nil}); err != nil {
		t.Errorf("join of nothing = %v", err)
	}
	inner := joinViolations([]*Violation{violation("I3", "x"), violation("I1", "y")})
	got := joinViolations([]*Violation{inner.(*Violation), violation("I5", "z")}).(*Violation)
	if got.Invariant != "I1,I3,I5" {
		t.Errorf("invariants = %q", got.Invariant)
	}
	if strings.Count(got.Error(), "I3: ") != 1 || !strings.Contains(got.Error(), "I5: z") {
		t.Errorf("detail = %q", got.Error())
	}
}

func TestRepairRecord(t *testing.T) {
	fixed, ok := repairRecord([]byte(`{"type":"verify""status":"OK"}`))
	if !ok || string(fixed) != `{"type":"verify","status":"OK"}` {
		t.Errorf("repair = %s, %v", fixed, ok)
	}
	if _, ok := repairRecord([]byte(`{"type":"verify","status":"OK"}`)); ok {
		t.Error("a valid record was repaired")
	}
}

func TestReliabilityDocListsEveryScenario(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testrig.ModuleRoot(), "docs", "reliability.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range All() {
		if !strings.Contains(string(b), "make chaos SCENARIO="+s.Name+" ") {
			t.Errorf("docs/reliability.md has no rerun command for %s", s.Name)
		}
	}
}
