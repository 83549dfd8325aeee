package event

import "testing"

func TestPosition_StringParse(t *testing.T) {
	for _, tc := range []struct {
		p Position
		s string
	}{{0, "0/0"}, {0x16B374D848, "16/B374D848"}, {1<<64 - 1, "FFFFFFFF/FFFFFFFF"}} {
		if got := tc.p.String(); got != tc.s {
			t.Errorf("String(%d) = %q, want %q", tc.p, got, tc.s)
		}
		back, err := ParsePosition(tc.s)
		if err != nil || back != tc.p {
			t.Errorf("ParsePosition(%q) = %v, %v; want %v", tc.s, back, err, tc.p)
		}
	}
	for _, bad := range []string{"", "12", "x/1", "1/x", "100000000/0"} {
		if _, err := ParsePosition(bad); err == nil {
			t.Errorf("ParsePosition(%q) succeeded, want error", bad)
		}
	}
}

func TestTable_ID(t *testing.T) {
	a := Table{Schema: "public", Name: "e", Columns: []Column{{Name: "id", Type: "uuid"}}}
	b := a
	b.Columns = []Column{{Name: "id", Type: "text"}}
	if a.ID() == b.ID() {
		t.Fatal("different definitions share an ID")
	}
	same := Table{Schema: "public", Name: "e", Columns: []Column{{Name: "id", Type: "uuid"}}}
	if a.ID() != same.ID() || len(a.ID()) != 16 {
		t.Fatalf("ID not stable or wrong length: %q", a.ID())
	}
	if LayoutOf(a).EventID != -1 {
		t.Fatal("missing column should be -1")
	}
}
