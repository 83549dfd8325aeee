package restore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/restore/restoretest"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/oracle"
)

// pickStreams returns n stream ids of the fixture with several events,
// including one with awkward characters.
func pickStreams(t *testing.T, f *fixture, n int) []string {
	t.Helper()
	count := map[string]int{}
	var weird string
	for _, tx := range f.txns {
		for _, e := range tx {
			s := string(e.Values[f.table.ColumnIndex("stream_id")])
			count[s]++
			if strings.ContainsAny(s, "\t\n\\") {
				weird = s
			}
		}
	}
	var out []string
	if weird != "" {
		out = append(out, weird)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range count {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		if len(out) < n && count[k] >= 5 && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func expectedRows(t *testing.T, url string, at time.Time, keep func(oracle.Row) bool) []oracle.Row {
	t.Helper()
	rows, err := oracle.Expected(context.Background(), url, eventcore.Table, at)
	if err != nil {
		t.Fatal(err)
	}
	var out []oracle.Row
	for _, r := range rows {
		if keep(r) {
			r.CommitTime = time.Time{}
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b oracle.Row) int { return strings.Compare(a.EventID, b.EventID) })
	return out
}

func TestRestore_PartialStreams(t *testing.T) {
	f := sharedFixture(t)
	a := openArchive(t, f.dir, nil)
	streams := pickStreams(t, f, 3)
	at := f.times[len(f.times)*3/4]
	target, res := restoreAt(t, a, at, Options{Filter: Filter{Streams: streams}})
	want := expectedRows(t, f.sourceURL, at, func(r oracle.Row) bool { return slices.Contains(streams, r.StreamID) })
	got := expectedRows(t, target, farFuture, func(oracle.Row) bool { return true })
	if len(want) == 0 || !slices.Equal(want, got) {
		t.Fatalf("partial restore of %q: got %d rows, want %d", streams, len(got), len(want))
	}
	if res.Streams != int64(len(streams)) || res.Verification.Status != VerifyOK {
		t.Fatalf("result: streams %d, verification %+v", res.Streams, res.Verification)
	}
	t.Logf("streams %q: %d events", streams, len(got))

	// by prefix and type: the types filter leaves gaps, so continuity is skipped
	target2, res2 := restoreAt(t, a, at, Options{Filter: Filter{StreamPrefixes: []string{"loadgen-1"}, EventTypes: []string{"FundsDeposited", "OrderPlaced"}}})
	want2 := expectedRows(t, f.sourceURL, at, func(r oracle.Row) bool {
		return strings.HasPrefix(r.StreamID, "loadgen-1") && (r.EventType == "FundsDeposited" || r.EventType == "OrderPlaced")
	})
	got2 := expectedRows(t, target2, farFuture, func(oracle.Row) bool { return true })
	if len(want2) == 0 || !slices.Equal(want2, got2) {
		t.Fatalf("prefix+type restore: got %d rows, want %d", len(got2), len(want2))
	}
	if res2.Verification.Status != VerifyOK {
		t.Fatalf("verification %+v", res2.Verification)
	}
}

func TestRestore_IntoExistingRepairs(t *testing.T) {
	f := sharedFixture(t)
	a := openArchive(t, f.dir, nil)
	at := f.last
	target, _ := restoreAt(t, a, at, Options{})
	stream := pickStreams(t, f, 2)[1]
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// delete some events of one stream (bypassing EventCore's delete trigger)
	var deleted int64
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM eventcore_events WHERE stream_id = $1 AND stream_version % 2 = 0`, stream)
		deleted = tag.RowsAffected()
		return err
	})
	if err != nil || deleted == 0 {
		t.Fatalf("delete: %v (%d rows)", err, deleted)
	}
	p, _ := a.Plan(at, "")
	res, err := Restore(ctx, p, Options{TargetURL: target, IntoExisting: true, Filter: Filter{Streams: []string{stream}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.EventsThisRun != deleted || res.Verification.Status != VerifyOK {
		t.Fatalf("inserted %d (deleted %d), verification %+v", res.EventsThisRun, deleted, res.Verification)
	}
	restoretest.Compare(t, f.sourceURL, target, at)
	// idempotent: a second run inserts nothing
	res, err = Restore(ctx, p, Options{TargetURL: target, IntoExisting: true, Filter: Filter{Streams: []string{stream}}})
	if err != nil || res.EventsThisRun != 0 || res.EventsAlreadyPresent == 0 {
		t.Fatalf("second run: %v, %+v", err, res)
	}
	restoretest.Compare(t, f.sourceURL, target, at)
	// triggers still enabled
	var enabled int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgrelid = 'eventcore_events'::regclass AND tgenabled = 'O' AND NOT tgisinternal`).Scan(&enabled); err != nil || enabled != len(eventcore.Triggers) {
		t.Fatalf("enabled triggers: %d, %v", enabled, err)
	}
}

func TestRestore_ToFile(t *testing.T) {
	f := sharedFixture(t)
	a := openArchive(t, f.dir, nil)
	at := f.times[len(f.times)/2]
	p, _ := a.Plan(at, "")
	var buf bytes.Buffer
	res, err := Restore(context.Background(), p, Options{Output: &buf})
	if err != nil {
		t.Fatal(err)
	}
	want := expectedRows(t, f.sourceURL, at, func(oracle.Row) bool { return true })
	byID := map[string]oracle.Row{}
	for _, r := range want {
		byID[r.EventID] = r
	}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 8<<20)
	n := 0
	for sc.Scan() {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &obj); err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		var id, ct, lsn string
		_ = json.Unmarshal(obj["event_id"], &id)
		_ = json.Unmarshal(obj["commit_time"], &ct)
		_ = json.Unmarshal(obj["commit_lsn"], &lsn)
		r, ok := byID[id]
		if !ok {
			t.Fatalf("line %d: event %s not expected at %s", n, id, FormatTime(at))
		}
		if string(obj["event_data"]) != r.EventData || string(obj["stream_version"]) != jsonInt(r.StreamVersion) {
			t.Fatalf("event %s: data or version differ", id)
		}
		if tm, err := time.Parse(time.RFC3339Nano, ct); err != nil || tm.After(at) || lsn == "" {
			t.Fatalf("event %s: commit_time %q commit_lsn %q", id, ct, lsn)
		}
		n++
	}
	if n != len(want) || res.Events != int64(n) {
		t.Fatalf("%d lines, result %d, want %d", n, res.Events, len(want))
	}
}

func jsonInt(v int64) string { b, _ := json.Marshal(v); return string(b) }
