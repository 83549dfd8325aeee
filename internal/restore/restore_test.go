package restore

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/restore/restoretest"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/oracle"
)

// restoreAt restores the fixture to t into a fresh EventCore database and
// returns the target URL and result.
func restoreAt(t *testing.T, a *Archive, at time.Time, opts Options) (string, *Result) {
	t.Helper()
	ctx := context.Background()
	if opts.TargetURL == "" {
		opts.TargetURL = newEventCoreDB(t)
	}
	p, err := a.Plan(at, "")
	if err != nil {
		t.Fatalf("plan %s: %v", FormatTime(at), err)
	}
	res, err := Restore(ctx, p, opts)
	if err != nil {
		t.Fatalf("restore to %s: %v", FormatTime(at), err)
	}
	return opts.TargetURL, res
}

func TestRestore_PointInTimeEqualsOracle(t *testing.T) {
	f := sharedFixture(t)
	a := openArchive(t, f.dir, nil)
	rng := rand.New(rand.NewPCG(11, 12))
	var instants []time.Time
	// exactly a commit time, and 1 µs before one, at both ends and inside
	for _, i := range []int{0, 1, len(f.times) / 3, len(f.times) - 1} {
		instants = append(instants, f.times[i], f.times[i].Add(-time.Microsecond))
	}
	for len(instants) < 22 {
		switch k := rng.IntN(3); k {
		case 0:
			instants = append(instants, f.times[rng.IntN(len(f.times))])
		case 1:
			instants = append(instants, f.times[rng.IntN(len(f.times))].Add(-time.Microsecond))
		default:
			span := f.last.Sub(f.first)
			instants = append(instants, f.first.Add(time.Duration(rng.Int64N(int64(span)))).Truncate(time.Microsecond))
		}
	}
	for _, at := range instants {
		target, res := restoreAt(t, a, at, Options{BatchRows: 1000 + rng.IntN(3000), Parallel: 1 + rng.IntN(4)})
		restoretest.Compare(t, f.sourceURL, target, at)
		if res.Verification.Status != VerifyOK {
			t.Fatalf("verification at %s: %+v", FormatTime(at), res.Verification)
		}
		if at.Before(f.first) != res.Empty {
			t.Fatalf("Empty = %v at %s (first %s)", res.Empty, FormatTime(at), FormatTime(f.first))
		}
	}
	t.Logf("%d instants restored and compared", len(instants))
}

func TestRestore_TriggersBypassedAndStayEnabled(t *testing.T) {
	f := sharedFixture(t)
	a := openArchive(t, f.dir, nil)
	target, res := restoreAt(t, a, f.last, Options{})
	restoretest.Compare(t, f.sourceURL, target, f.last)
	t.Logf("restored %d events of %d streams in %s", res.Events, res.Streams, res.Duration)
	// the comparison is not vacuous: an earlier instant differs
	if d, err := oracle.CompareTable(context.Background(), f.sourceURL, target, eventcore.Table, f.times[len(f.times)/2]); err != nil || d.Empty() {
		t.Fatalf("compare with an earlier instant: %v, empty=%v", err, d.Empty())
	}
	if res.TriggerBypass != "session_replication_role" {
		t.Fatalf("bypass = %q", res.TriggerBypass)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tgname, tgenabled::text FROM pg_trigger WHERE tgrelid = 'eventcore_events'::regclass AND NOT tgisinternal`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rows.Next() {
		var n, e string
		if err := rows.Scan(&n, &e); err != nil {
			t.Fatal(err)
		}
		got[n] = e
	}
	for _, tr := range eventcore.Triggers {
		if got[tr] != "O" {
			t.Fatalf("trigger %s enabled = %q after restore, want O (all: %v)", tr, got[tr], got)
		}
	}
	// and they still work: an update is refused, a new event gets the next version
	if _, err := conn.Exec(ctx, `UPDATE eventcore_events SET event_type = 'x' WHERE true`); err == nil {
		t.Fatal("update succeeded: immutability trigger not active")
	}
}
