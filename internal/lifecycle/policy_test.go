package lifecycle_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/lifecycle"
	"github.com/tidemark/tidemark/internal/objstore"
)

const day = 24 * time.Hour

func TestLoad_MultiRegion(t *testing.T) {
	l, err := lifecycle.Load("testdata/multi-region.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Stores) != 4 || l.Stores[0].Name != "primary" {
		t.Fatalf("stores: %+v", l.Stores)
	}
	vault, err := l.Lookup("vault")
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(vault.Lock.Retain) != 7*365*day || time.Duration(vault.Transitions[0].After) != 90*day {
		t.Fatalf("vault: %+v", vault)
	}
	us, _ := l.Lookup("replica-us")
	for level, want := range map[int]string{0: "STANDARD", 1: "STANDARD", 2: "STANDARD_IA", 3: "STANDARD_IA"} {
		if got := us.ClassFor(level); got != want {
			t.Errorf("replica-us level %d: class %q, want %q", level, got, want)
		}
	}
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	o := vault.PutOptions(1, now)
	if o.Lock.Mode != "COMPLIANCE" || !o.Lock.Until.Equal(now.Add(7*365*day)) || o.StorageClass != "STANDARD" {
		t.Fatalf("vault put options: %+v", o)
	}
	if _, err := l.Lookup("nope"); err == nil || !strings.Contains(err.Error(), "primary, replica-eu") {
		t.Fatalf("lookup of an unknown store: %v", err)
	}
}

func TestParse_Refuses(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"empty", `stores: []`, "no stores"},
		{"unknown key", "stores:\n  - {name: a, url: /a, lokc: {mode: COMPLIANCE}}", "lokc"},
		{"bad mode", "stores:\n  - {name: a, url: /a, lock: {mode: STRICT, retain: 1d}}", "GOVERNANCE or COMPLIANCE"},
		{"lock without period", "stores:\n  - {name: a, url: /a, lock: {mode: GOVERNANCE}}", "retain period"},
		{"grace shorter than lock", "stores:\n  - {name: a, url: /a, gc_grace: 1d, lock: {mode: GOVERNANCE, retain: 30d}}", "shorter than the lock"},
		{"bad class", "stores:\n  - {name: a, url: /a, storage_class: [{level: 0, class: COLD}]}", "not an S3 class"},
		{"twice", "stores:\n  - {name: a, url: /a}\n  - {name: a, url: /b}", "twice"},
		{"bad duration", "stores:\n  - {name: a, url: /a, gc_grace: 3 weeks}", "want 10m"},
	} {
		if _, err := lifecycle.Parse([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestStore_LockShort(t *testing.T) {
	s := &lifecycle.Store{Lock: lifecycle.Lock{Mode: "COMPLIANCE", Retain: lifecycle.Duration(365 * day)}}
	up := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		got  objstore.Retention
		want string // "" = meets the policy
	}{
		{objstore.Retention{Mode: "COMPLIANCE", Until: up.Add(365 * day)}, ""},
		{objstore.Retention{Mode: "COMPLIANCE", Until: up.Add(400 * day)}, ""},
		{objstore.Retention{}, "no retention lock"},
		{objstore.Retention{Mode: "GOVERNANCE", Until: up.Add(365 * day)}, "mode GOVERNANCE"},
		{objstore.Retention{Mode: "COMPLIANCE", Until: up.Add(30 * day)}, "locked until"},
	} {
		if got := s.LockShort(up, tc.got); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("LockShort(%+v) = %q, want %q", tc.got, got, tc.want)
		}
	}
	if got := (&lifecycle.Store{}).LockShort(up, objstore.Retention{}); got != "" {
		t.Errorf("no policy lock: %q", got)
	}
}

// TestOperationsDoc_MultiRegion checks that the worked configuration in
// docs/operations.md is testdata/multi-region.yaml, which loads above.
func TestOperationsDoc_MultiRegion(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/multi-region.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "### A multi-region layout")
	if !ok {
		t.Fatal("docs/operations.md has no multi-region layout section")
	}
	_, block, ok := strings.Cut(after, "```yaml\n")
	if !ok {
		t.Fatal("the multi-region section has no yaml block")
	}
	block, _, _ = strings.Cut(block, "```")
	if block != string(want) {
		t.Fatalf("the policy in docs/operations.md differs from testdata/multi-region.yaml:\n%s", block)
	}
}
