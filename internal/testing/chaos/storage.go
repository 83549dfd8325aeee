package chaos

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// damage is one way of corrupting the stored archive.
type damage struct {
	name, store, injects string
	// apply corrupts the archive and returns the objects it damaged (for
	// an injection, the injected ones).
	apply func(e *Env, refs []catalog.SegmentRef, victim int) ([]string, error)
	// injected: the archive's content is intact (restores must still
	// match the oracle) and verify must name the extra object.
	injected bool
	// catalogOnly: a catalog entry was altered; verify must fail naming it,
	// and a restore must either refuse or restore correct data.
	catalogOnly bool
}

func init() {
	for _, d := range []damage{
		{name: "bitflip", store: "file", injects: "one bit flipped in a stored segment", apply: flipBit},
		{name: "truncate", store: "s3", injects: "a stored segment truncated", apply: truncateObject},
		{name: "delete", store: "file", injects: "a stored segment deleted", apply: deleteObject},
		{name: "swap", store: "s3", injects: "the contents of two stored segments swapped", apply: swapObjects},
		{name: "inject", store: "file", injects: "a copy of a segment injected under a new segment key the catalog does not list", apply: injectSegment, injected: true},
		{name: "catalog-entry", store: "file", injects: "a catalog entry rewritten (a segment's event count changed, valid JSON, stale hash)", apply: tamperEntry, catalogOnly: true},
	} {
		register(Scenario{
			Name:    "object-" + d.name,
			Injects: d.injects + " (" + d.store + " store), after a healthy run",
			Checks:  "I1-I6 before the damage; I5: verify fails naming the object, restore refuses naming it and writes nothing from it; I3: a restore to just before the damage still equals the oracle",
			Run:     func(e *Env) error { return objectDamage(e, d) },
		})
	}
}

func objectDamage(e *Env, d damage) error {
	if err := e.Boot(Setup{Store: d.store}); err != nil {
		return err
	}
	e.StartLoad(8*time.Second, 0)
	if err := e.Finish(CheckOptions{Instants: 1}); err != nil {
		return err
	}
	for _, a := range e.Live() {
		_ = a.Stop(10 * time.Second)
	}
	cat, err := catalog.Load(e.Ctx, e.Store)
	if err != nil {
		return err
	}
	refs := cat.Segments()
	if len(refs) < 3 {
		return fmt.Errorf("only %d segments archived; the scenario needs 3", len(refs))
	}
	victim := 1 + e.Rand.IntN(len(refs)-2)
	ids, err := segmentIDs(e.Ctx, e.Store, refs[victim].Key)
	if err != nil {
		return err
	}
	e.Mark()
	objs, err := d.apply(e, refs, victim)
	if err != nil {
		return fmt.Errorf("damage the archive: %w", err)
	}
	e.Note("damaged=%s", strings.Join(objs, ","))
	var vs []*Violation
	vs = append(vs, e.checkVerifyNames(d, objs)...)
	vs = append(vs, e.checkDamagedRestore(d, objs, ids)...)
	vs = append(vs, e.checkRestoreBefore(d, objs, refs[victim].MinCommitTime)...)
	return joinViolations(vs)
}

// checkVerifyNames requires verify to report the damage and name an object.
func (e *Env) checkVerifyNames(d damage, objs []string) []*Violation {
	out, err := e.verifyArchive(e.Ctx, "verify-damaged", e.H.StoreURL, false)
	if err != nil {
		return []*Violation{violation("I5", "run verify: %v", err)}
	}
	if out.Verify == nil && out.Err != nil {
		if mentionsAny(out.Err.Message, objs) && out.ExitCode != 0 {
			return nil // refused outright, naming the object
		}
		return []*Violation{violation("I5", "verify of a damaged archive exited %d without naming %v: %s", out.ExitCode, objs, out.Err.Message)}
	}
	if out.Verify == nil {
		return []*Violation{violation("I5", "verify printed no report (exit %d)", out.ExitCode)}
	}
	named := false
	for _, p := range out.Verify.Problems {
		named = named || mentionsAny(p.Object+" "+p.Message, objs)
	}
	want := "FAILURE"
	if d.injected && out.Verify.Status == "WARNING" {
		want = "WARNING" // an unlisted object cannot be told from an upload in flight
	}
	if out.Verify.Status != want || !named {
		return []*Violation{violation("I5", "verify of a damaged archive said %s (exit %d) and named the damaged object: %v; problems: %s",
			out.Verify.Status, out.ExitCode, named, out.Verify.problems())}
	}
	return nil
}

// checkDamagedRestore restores "latest": for injected objects it must
// still equal the oracle; otherwise it must refuse, name the object, and
// hold no event of the damaged segment and no partial transaction.
func (e *Env) checkDamagedRestore(d damage, objs []string, ids map[uuid.UUID]bool) []*Violation {
	out, target, err := e.restoreTo(e.Ctx, "restore-damaged", e.H.StoreURL, "latest")
	if err != nil {
		return []*Violation{violation("I5", "run restore: %v", err)}
	}
	if d.injected || (d.catalogOnly && out.ExitCode == 0) {
		if out.ExitCode != 0 {
			return []*Violation{violation("I3", "restore ignoring an injected object exited %d: %s", out.ExitCode, errText(out))}
		}
		return compareRestore(e.Ctx, e.H.SourceURL, target, "latest", out.Target)
	}
	var vs []*Violation
	if out.ExitCode == 0 || !mentionsAny(errText(out), objs) {
		vs = append(vs, violation("I5", "restore of a damaged archive exited %d, naming the object: %v (%s)", out.ExitCode, mentionsAny(errText(out), objs), errText(out)))
	}
	leaked, err := countIDs(e.Ctx, target, ids)
	if err != nil {
		return append(vs, violation("I4", "read restore target: %v", err))
	}
	if leaked > 0 && !d.catalogOnly {
		vs = append(vs, violation("I4", "the refused restore wrote %d events of the damaged segment", leaked))
	}
	if partial, err := partialTransactions(e.Ctx, e.H.SourceURL, target); err != nil || partial > 0 {
		vs = append(vs, violation("I4", "the refused restore left %d partial transactions (%v)", partial, err))
	}
	return vs
}

// checkRestoreBefore restores to 1µs before the damaged segment's first
// commit: that instant does not need it, so the restore must succeed. A
// broken catalog chain makes the whole catalog untrusted: there a refusal
// naming the altered entry is the right answer too.
func (e *Env) checkRestoreBefore(d damage, objs []string, t time.Time) []*Violation {
	to := formatT(t.Add(-time.Microsecond))
	out, target, err := e.restoreTo(e.Ctx, "restore-before-damage", e.H.StoreURL, to)
	if err != nil {
		return []*Violation{violation("I3", "run restore: %v", err)}
	}
	if out.ExitCode != 0 && d.catalogOnly && mentionsAny(errText(out), objs) {
		return nil
	}
	if out.ExitCode != 0 {
		return []*Violation{violation("I3", "restore --to %s (before the damaged segment) exited %d: %s", to, out.ExitCode, errText(out))}
	}
	return compareRestore(e.Ctx, e.H.SourceURL, target, to, out.Target)
}

func mentionsAny(s string, objs []string) bool {
	for _, o := range objs {
		if strings.Contains(s, o) {
			return true
		}
	}
	return false
}

// segmentIDs returns the event ids in one (intact) segment.
func segmentIDs(ctx context.Context, store objstore.Store, key string) (map[uuid.UUID]bool, error) {
	data, err := objstore.ReadAll(ctx, store, key, maxSegmentBytes)
	if err != nil {
		return nil, err
	}
	seg, err := segment.Decode(key, data, segment.ReadOptions{})
	if err != nil {
		return nil, err
	}
	col := event.LayoutOf(seg.Header.Table).EventID
	ids := map[uuid.UUID]bool{}
	for _, ev := range seg.Events {
		if id, err := uuid.ParseBytes(ev.Value(col)); err == nil {
			ids[id] = true
		}
	}
	return ids, nil
}

// countIDs counts how many of ids the target holds.
func countIDs(ctx context.Context, targetURL string, ids map[uuid.UUID]bool) (int, error) {
	conn, err := pgx.Connect(ctx, targetURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT event_id FROM eventcore_events")
	if err != nil {
		return 0, err
	}
	n := 0
	var id uuid.UUID
	_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
		if ids[id] {
			n++
		}
		return nil
	})
	return n, err
}

func readObject(e *Env, key string) ([]byte, error) {
	return objstore.ReadAll(e.Ctx, e.Store, key, maxSegmentBytes)
}

func writeObject(e *Env, key string, b []byte) error {
	return e.Store.Put(e.Ctx, key, bytes.NewReader(b), int64(len(b)), objstore.PutOptions{})
}

func flipBit(e *Env, refs []catalog.SegmentRef, victim int) ([]string, error) {
	key := refs[victim].Key
	b, err := readObject(e, key)
	if err != nil {
		return nil, err
	}
	i := e.Rand.IntN(len(b))
	b[i] ^= 1 << e.Rand.IntN(8)
	return []string{key}, writeObject(e, key, b)
}

func truncateObject(e *Env, refs []catalog.SegmentRef, victim int) ([]string, error) {
	key := refs[victim].Key
	b, err := readObject(e, key)
	if err != nil {
		return nil, err
	}
	return []string{key}, writeObject(e, key, b[:e.Rand.IntN(len(b))])
}

func deleteObject(e *Env, refs []catalog.SegmentRef, victim int) ([]string, error) {
	key := refs[victim].Key
	return []string{key}, e.Store.Delete(e.Ctx, key)
}

func swapObjects(e *Env, refs []catalog.SegmentRef, victim int) ([]string, error) {
	a, b := refs[victim].Key, refs[victim+1].Key
	ba, err := readObject(e, a)
	if err != nil {
		return nil, err
	}
	bb, err := readObject(e, b)
	if err != nil {
		return nil, err
	}
	if err := writeObject(e, a, bb); err != nil {
		return nil, err
	}
	return []string{a, b}, writeObject(e, b, ba)
}

// injectSegment copies a segment under a key shaped like a real one whose
// positions lie beyond the watermark.
func injectSegment(e *Env, refs []catalog.SegmentRef, victim int) ([]string, error) {
	ref := refs[victim]
	b, err := readObject(e, ref.Key)
	if err != nil {
		return nil, err
	}
	last := refs[len(refs)-1]
	key := segment.Key(ref.MaxCommitTime, last.LastEndLSN+1000, last.LastEndLSN+2000, ref.TableID)
	return []string{key}, writeObject(e, key, b)
}

// tamperEntry rewrites the catalog entry of the victim segment with a
// different event count, keeping its (now stale) hash.
func tamperEntry(e *Env, refs []catalog.SegmentRef, victim int) ([]string, error) {
	cat, err := catalog.LoadWith(e.Ctx, e.Store, catalog.LoadOptions{IgnoreCheckpoints: true})
	if err != nil {
		return nil, err
	}
	seq, ok := cat.SegmentSeq(refs[victim].Key)
	if !ok {
		return nil, fmt.Errorf("no catalog entry for %s", refs[victim].Key)
	}
	key := catalog.EntryKey(seq)
	b, err := readObject(e, key)
	if err != nil {
		return nil, err
	}
	old := fmt.Sprintf(`"events":%d`, refs[victim].Events)
	if !bytes.Contains(b, []byte(old)) {
		return nil, fmt.Errorf("entry %s has no %s field", key, old)
	}
	b = bytes.Replace(b, []byte(old), []byte(fmt.Sprintf(`"events":%d`, refs[victim].Events+1)), 1)
	return []string{key}, writeObject(e, key, b)
}
