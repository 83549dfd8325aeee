package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/restore/restoretest"
	"github.com/tidemark/tidemark/internal/segment"
)

// segmentIDs decodes a segment of the fixture archive and returns its event ids.
func segmentIDs(t *testing.T, dir, key string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, key))
	if err != nil {
		t.Fatal(err)
	}
	seg, err := segment.Decode(key, b, segment.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := event.LayoutOf(seg.Header.Table)
	var ids []string
	for _, e := range seg.Events {
		ids = append(ids, string(e.Value(l.EventID)))
	}
	return ids
}

func countIDs(t *testing.T, url string, ids []string) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM eventcore_events WHERE event_id::text = ANY($1)`, ids).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRestore_DamagedSegment(t *testing.T) {
	f := sharedFixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		damage    func(path string) error
		untouched bool // the preflight catches it before any write
	}{
		{"bit flip", func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 0x10
			return os.WriteFile(p, b, 0o644)
		}, false},
		{"missing", os.Remove, true},
		{"truncated", func(p string) error { return os.Truncate(p, 100) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyArchive(t, f.dir)
			a := openArchive(t, dir, nil)
			p, err := a.Plan(f.last, "")
			if err != nil {
				t.Fatal(err)
			}
			victim := p.Segments[len(p.Segments)*2/3].Key
			ids := segmentIDs(t, dir, victim)
			if err := tc.damage(filepath.Join(dir, victim)); err != nil {
				t.Fatal(err)
			}
			target := newEventCoreDB(t)
			before := restoretest.TargetState(t, target)
			_, err = Restore(ctx, p, Options{TargetURL: target, BatchRows: 300, Parallel: 3})
			if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), victim) {
				t.Fatalf("restore with a damaged segment: %v; want ErrIntegrity naming %s", err, victim)
			}
			t.Logf("%v (hint: %s)", err, HintOf(err))
			if n := countIDs(t, target, ids); n != 0 {
				t.Fatalf("%d events of the damaged segment were written", n)
			}
			if after := restoretest.TargetState(t, target); tc.untouched && after != before {
				t.Fatalf("target changed: %q -> %q", before, after)
			}
		})
	}
}

func TestRestore_BadTargets(t *testing.T) {
	f := sharedFixture(t)
	a := openArchive(t, f.dir, nil)
	ctx := context.Background()
	p, err := a.Plan(f.last, "")
	if err != nil {
		t.Fatal(err)
	}
	nonEmpty := newEventCoreDB(t)
	restoretest.InsertEvent(t, nonEmpty)
	noTable := shared.PG.Get(t).NewDatabase(t)
	for _, tc := range []struct {
		name   string
		target string
		opts   Options
		want   error
	}{
		{"non-empty target", nonEmpty, Options{}, ErrTarget},
		{"non-empty target with --create-table", nonEmpty, Options{CreateTable: true}, ErrTarget},
		{"target without the table", noTable, Options{}, ErrTarget},
		{"target database missing", strings.Replace(noTable, "/tm_", "/nope_", 1), Options{}, ErrTarget},
		{"both a file and a database", noTable, Options{Output: &strings.Builder{}}, ErrUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before string
			if !strings.Contains(tc.target, "/nope_") {
				before = restoretest.TargetState(t, tc.target)
			}
			tc.opts.TargetURL = tc.target
			_, err := Restore(ctx, p, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if HintOf(err) == "" {
				t.Fatalf("no hint for %v", err)
			}
			t.Logf("%v\n  Try: %s", err, HintOf(err))
			if before != "" {
				if after := restoretest.TargetState(t, tc.target); after != before {
					t.Fatalf("target changed: %q -> %q", before, after)
				}
			}
		})
	}
	t.Run("out of window", func(t *testing.T) {
		_, err := a.Plan(a.Window().Watermark.Add(1e3), "")
		var ow *OutOfWindowError
		if !errors.Is(err, ErrOutOfWindow) || !errors.As(err, &ow) || HintOf(err) != "restorer list" {
			t.Fatalf("plan after the watermark: %v", err)
		}
		t.Log(err)
	})
	t.Run("create table", func(t *testing.T) {
		target := shared.PG.Get(t).NewDatabase(t)
		res, err := Restore(ctx, p, Options{TargetURL: target, CreateTable: true})
		if err != nil {
			t.Fatal(err)
		}
		if !res.CreatedTable || res.TriggerBypass != "none" {
			t.Fatalf("result %+v", res)
		}
		restoretest.Compare(t, f.sourceURL, target, f.last)
	})
	t.Run("empty restore before the first event", func(t *testing.T) {
		target := shared.PG.Get(t).NewDatabase(t)
		bp, err := a.Plan(f.first.Add(-1e3), "")
		if err != nil {
			t.Fatal(err)
		}
		res, err := Restore(ctx, bp, Options{TargetURL: target, CreateTable: true})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Empty || res.Events != 0 || len(res.Notes) == 0 || !res.CreatedTable {
			t.Fatalf("result %+v", res)
		}
		t.Log(res.Notes)
		restoretest.Compare(t, f.sourceURL, target, f.first.Add(-1e3))
	})
}

func TestRestore_WrongKey(t *testing.T) {
	f := sharedFixture(t)
	ctx := context.Background()
	key, err := segment.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := segment.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	right, _ := segment.ParseKeyring(key)
	wrong, _ := segment.ParseKeyring(other)
	dir := t.TempDir()
	st, err := fileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := len(f.txns) / 4
	if err := writeArchive(ctx, st, f.table, restoretest.Clone(f.txns[:n]), archiveOptions{segmentEvents: 500, keyring: right, seed: 9}); err != nil {
		t.Fatal(err)
	}
	last := f.txns[n-1][0].CommitTime
	for _, tc := range []struct {
		name string
		kr   *segment.Keyring
	}{{"wrong key", wrong}, {"no key", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			a := openArchive(t, dir, tc.kr)
			p, err := a.Plan(a.Window().Watermark, "")
			if err != nil {
				t.Fatal(err)
			}
			target := newEventCoreDB(t)
			before := restoretest.TargetState(t, target)
			_, err = Restore(ctx, p, Options{TargetURL: target})
			if !errors.Is(err, ErrKey) || strings.Contains(err.Error(), "AGE-SECRET") {
				t.Fatalf("restore with %s: %v, want ErrKey", tc.name, err)
			}
			t.Logf("%v\n  Try: %s", err, HintOf(err))
			if after := restoretest.TargetState(t, target); after != before {
				t.Fatalf("target changed: %q -> %q", before, after)
			}
		})
	}
	t.Run("right key", func(t *testing.T) {
		a := openArchive(t, dir, right)
		// the archive holds transactions up to `last` only; the oracle at an
		// instant before the next source commit sees the same
		at := last
		if at.After(a.Window().Watermark) {
			at = a.Window().Watermark
		}
		target, res := restoreAt(t, a, at, Options{})
		if res.Verification.Status != VerifyOK {
			t.Fatalf("verification %+v", res.Verification)
		}
		if f.txns[n][0].CommitTime.After(at) {
			restoretest.Compare(t, f.sourceURL, target, at)
		}
	})
}

func fileStore(dir string) (objstore.Store, error) {
	return openFileStore(dir)
}
