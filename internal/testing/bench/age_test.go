package bench

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/objstore/file"
)

// TestAge_SmallDay runs the soak for two one-hour "days": merges happen,
// GC deletes what they superseded, and the archive verifies clean.
func TestAge_SmallDay(t *testing.T) {
	st, err := file.Open(filepath.Join(t.TempDir(), "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Age(ctx, AgeConfig{Store: st, Days: 2, Marks: []int{1, 2}, DaySeconds: 3600, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rep.Marks {
		t.Logf("%+v", m)
		if m.VerifyWorst != "OK" {
			t.Errorf("day %d: verify %s", m.Day, m.VerifyWorst)
		}
		if m.Live > 200 || m.RestorePlan > 200 {
			t.Errorf("day %d: %d live segments, a restore plans %d objects", m.Day, m.Live, m.RestorePlan)
		}
	}
	last := rep.Marks[len(rep.Marks)-1]
	if last.Segments > 3600/2 {
		t.Errorf("%d segment objects after %d flushes: GC did not collect", last.Segments, 2*3600)
	}
}
