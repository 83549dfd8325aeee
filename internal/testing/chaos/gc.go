package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/testing/harness"
	"github.com/tidemark/tidemark/internal/testing/s3fault"
)

func init() {
	register(
		Scenario{
			Name: "gc-kill9",
			Injects: "kill -9 of `archiver gc --grace 5s` while it deletes, 6 times: a dry run lists what it would delete, and the kill lands after a seeded number of those DELETEs " +
				"(slowed by 20-60 ms in an S3 proxy) — superseded segments, checkpoints or catalog entries — beside an archiver merging every second and flushing every 250 ms (s3 store)",
			Checks: "I1-I6; I5: verify clean after the killed runs and again after a run to completion; no live segment deleted",
			Budget: 8 * time.Minute,
			Run:    gcKill9,
		},
		Scenario{
			Name: "gc-races-restore",
			Injects: "two slow restores (their segment GETs slowed by 1 s, --parallel 1) started under load while the archiver merges every second (a flush every 250 ms) " +
				"and `archiver gc --grace 1s --interval 1s` deletes the segments they planned (s3 store)",
			Checks: "I3, I4: both restores finish and equal the oracle at their instants (needs the restorer's re-plan on a deleted segment); " +
				"a planned segment was deleted while they ran; then I1-I6",
			Budget: 8 * time.Minute,
			Run:    gcRacesRestore,
		},
	)
}

// StartGC starts `archiver gc` on the archive at storeURL (the rig's when
// empty), every interval (once when 0), printing each pass as JSON.
func (e *Env) StartGC(name, storeURL string, grace, interval time.Duration) (*harness.Proc, error) {
	if storeURL == "" {
		storeURL = e.H.StoreURL
	}
	args := []string{"gc", "--store", storeURL, "--grace", grace.String(), "--json", "--log-level", "debug"}
	if interval > 0 {
		args = append(args, "--interval", interval.String())
	}
	p, err := e.H.StartProgram(e.Ctx, "archiver", name, nil, args...)
	if err != nil {
		return nil, err
	}
	e.helpers = append(e.helpers, p)
	return p, nil
}

// gcTotals is what gc passes printed. Segment objects are counted once
// each: a pass deletes every superseded object past its grace again until
// the writer's next checkpoint forgets it (the counters include those
// repeats; see reported).
type gcTotals struct {
	passes                   int
	segments, entries, ckpts int // distinct keys deleted
	reported                 int // superseded and debris deletions the passes reported, repeats included
	deleted                  map[string]bool
}

func (t gcTotals) String() string {
	return fmt.Sprintf("gc_passes=%d gc_deleted_segments=%d (reported %d) gc_deleted_entries=%d gc_deleted_checkpoints=%d",
		t.passes, t.segments, t.reported, t.entries, t.ckpts)
}

// readGCTotals reads the JSON results gc processes logged (one line per
// completed pass; a killed pass prints nothing).
func readGCTotals(procs ...*harness.Proc) gcTotals {
	t := gcTotals{deleted: map[string]bool{}}
	for _, p := range procs {
		b, err := os.ReadFile(p.LogPath)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var r catalog.GCResult
			if !bytes.HasPrefix(sc.Bytes(), []byte("{")) || json.Unmarshal(sc.Bytes(), &r) != nil {
				continue
			}
			t.passes++
			t.reported += r.Segments + r.Debris
			for _, k := range r.Deleted {
				if t.deleted[k] {
					continue
				}
				t.deleted[k] = true
				switch objectKind(k) {
				case "entry":
					t.entries++
				case "checkpoint":
					t.ckpts++
				default:
					t.segments++
				}
			}
		}
	}
	return t
}

// checkCollected requires every live segment of the final catalog to be in
// the store, and says which of them a gc pass had deleted (a key deleted
// and produced again, e.g. a merge leftover GC removed before the merge was
// redone, must be back in the store).
func (e *Env) checkCollected(t gcTotals) *Violation {
	cat, err := catalog.Load(e.Ctx, e.Store)
	if err != nil {
		return violation("I1", "load catalog: %v", err)
	}
	objs, err := e.Store.List(e.Ctx, catalog.SegmentsPrefix, "")
	if err != nil {
		return violation("I1", "list segments: %v", err)
	}
	present := map[string]bool{}
	for _, o := range objs {
		present[o.Key] = true
	}
	var gone []string
	again := 0
	for _, s := range cat.Segments() {
		switch {
		case !present[s.Key]:
			gone = append(gone, s.Key)
		case t.deleted[s.Key]:
			again++
		}
	}
	if again > 0 {
		e.Note("gc_deleted_then_live=%d", again)
	}
	if len(gone) > 0 {
		sort.Strings(gone)
		return violation("I1", "%d live segments are missing from the store (gc deleted %d of them): %v", len(gone), countIn(gone, t.deleted), gone[:min(3, len(gone))])
	}
	return nil
}

func countIn(keys []string, set map[string]bool) int {
	n := 0
	for _, k := range keys {
		if set[k] {
			n++
		}
	}
	return n
}

// gcKill9 lets merges build a backlog of superseded segments (and, with a
// flush every 250 ms, enough entries for a checkpoint), then runs gc
// through an S3 proxy that slows its DELETEs and kills it with -9 after a
// seeded number of them, several times.
func gcKill9(e *Env) error {
	var proxy *s3fault.Proxy
	var gcURL string
	err := e.Boot(Setup{Store: "s3", ArchiverArgs: append(mergeArgs(), "--flush-interval", "250ms"), BeforeStart: func(e *Env) error {
		var err error
		proxy, gcURL, err = e.s3Proxy()
		return err
	}})
	if err != nil {
		return err
	}
	load := e.StartLoad(10*time.Minute, 0)
	if err := e.Sleep(35 * time.Second); err != nil {
		return err
	}
	var procs []*harness.Proc
	killed := map[string]int{} // what the kill interrupted: segment, entry, checkpoint
	for round := range gcKillRounds {
		if round > 0 {
			if err := e.Sleep(e.Between(3*time.Second, 6*time.Second)); err != nil {
				return err
			}
		}
		p, kind, err := e.killGCMidway(fmt.Sprintf("gc-%d", round), proxy, gcURL)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		if kind != "" {
			killed[kind]++
			e.Mark()
		}
	}
	load.Stop()
	n := killed["segment"] + killed["entry"] + killed["checkpoint"]
	e.Note("gc_killed=%d of %d (segments:%d entries:%d checkpoints:%d) deletes_sent=%d", n, gcKillRounds,
		killed["segment"], killed["entry"], killed["checkpoint"], proxy.Stats().Hits[s3fault.Slow])
	if n < gcKillRounds-2 {
		return fmt.Errorf("only %d of %d gc runs were killed while deleting", n, gcKillRounds)
	}
	if err := e.Finish(CheckOptions{Instants: 4}); err != nil {
		return err
	}
	var vs []*Violation
	t := readGCTotals(procs...)
	vs = append(vs, e.checkCollected(t))
	if _, err := e.Store.Stat(e.Ctx, catalog.EntryKey(1)); errors.Is(err, objstore.ErrNotFound) {
		e.Note("entry1_collected=true") // Load and verify started from a checkpoint
	}
	// A run to completion after the killed ones, then verify again.
	final, err := e.StartGC("gc-final", "", 5*time.Second, 0)
	if err != nil {
		return err
	}
	select {
	case <-final.Done():
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("the final gc run did not end within 2 minutes:\n%s", final.LogTail(10))
	}
	procs = append(procs, final)
	e.Note("%s", readGCTotals(procs...))
	vs = append(vs, e.verifyClean("verify-after-gc"), e.checkCollected(readGCTotals(procs...)))
	return joinViolations(vs)
}

// gcKillRounds is how many gc runs gc-kill9 kills.
const gcKillRounds = 6

// killGCMidway asks a dry run what gc would delete, picks a seeded position
// in that list, runs gc through the proxy with its DELETEs slowed, and
// kills it with -9 once the proxy has seen that many DELETEs. It returns
// the kind of object the kill interrupted ("" when gc ended first).
func (e *Env) killGCMidway(name string, proxy *s3fault.Proxy, url string) (*harness.Proc, string, error) {
	res, err := e.H.RunProgram(e.Ctx, "archiver", name+"-dry-run", nil, "gc", "--store", e.H.StoreURL, "--grace", "5s", "--dry-run", "--json")
	if err != nil {
		return nil, "", err
	}
	var plan catalog.GCResult
	if err := json.Unmarshal(res.Stdout, &plan); err != nil || res.ExitCode != 0 {
		return nil, "", fmt.Errorf("gc --dry-run exited %d (%v): %s", res.ExitCode, err, res.Stdout)
	}
	if len(plan.Deleted) == 0 {
		return nil, "", errors.New("gc --dry-run found nothing to delete: merges made no superseded segments")
	}
	at := 1 + e.Rand.IntN(len(plan.Deleted))
	proxy.SetRules(s3fault.Rule{Action: s3fault.Slow, Method: http.MethodDelete, Delay: e.Between(20*time.Millisecond, 60*time.Millisecond)})
	defer proxy.Clear()
	want := proxy.Stats().Hits[s3fault.Slow] + int64(at)
	p, err := e.StartGC(name, url, 5*time.Second, 0)
	if err != nil {
		return nil, "", err
	}
	ok, err := e.killAfterDeletes(p, proxy, want)
	if err != nil || !ok {
		return p, "", err
	}
	e.Logf("%s killed at delete %d of %d (%s)", name, at, len(plan.Deleted), plan.Deleted[at-1])
	return p, objectKind(plan.Deleted[at-1]), nil
}

// objectKind classifies a key gc deletes.
func objectKind(key string) string {
	switch {
	case strings.HasPrefix(key, catalog.EntriesPrefix):
		return "entry"
	case strings.HasPrefix(key, catalog.CheckpointsPrefix):
		return "checkpoint"
	}
	return "segment"
}

// killAfterDeletes waits until the proxy has seen want DELETEs in all and
// kills p with -9; it returns false when p ended first.
func (e *Env) killAfterDeletes(p *harness.Proc, proxy *s3fault.Proxy, want int64) (bool, error) {
	deadline := time.Now().Add(90 * time.Second)
	for {
		if done, _ := p.Exited(); done {
			return false, nil
		}
		if proxy.Stats().Hits[s3fault.Slow] >= want {
			p.Kill()
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("%s sent too few DELETEs within 90s:\n%s", p.Name, p.LogTail(10))
		}
		if err := e.Sleep(5 * time.Millisecond); err != nil {
			return false, err
		}
	}
}

// verifyClean runs `restorer verify` and requires OK.
func (e *Env) verifyClean(logName string) *Violation {
	out, err := e.verifyArchive(e.Ctx, logName, e.H.StoreURL, false)
	switch {
	case err != nil:
		return violation("I5", "run verify: %v", err)
	case out.Verify == nil:
		return violation("I5", "%s printed no report (exit %d: %s)", logName, out.ExitCode, errText(out))
	case out.Verify.Status != "OK" || out.ExitCode != 0:
		return violation("I5", "%s of a healthy archive said %s (exit %d): %s", logName, out.Verify.Status, out.ExitCode, out.Verify.problems())
	}
	return nil
}

// gcRacesRestore starts two slow restores under load while merges replace
// the segments they planned and gc deletes them a second later.
func gcRacesRestore(e *Env) error {
	var slowURL string
	var proxy *s3fault.Proxy
	// A flush every 250 ms: a restore plans many young segments, which
	// merges replace within seconds.
	err := e.Boot(Setup{Store: "s3", ArchiverArgs: append(mergeArgs(), "--flush-interval", "250ms"), BeforeStart: func(e *Env) error {
		var err error
		proxy, slowURL, err = e.s3Proxy()
		return err
	}})
	if err != nil {
		return err
	}
	gc, err := e.StartGC("gc", "", time.Second, time.Second)
	if err != nil {
		return err
	}
	e.StartLoad(40*time.Second, 0)
	if err := e.Sleep(20 * time.Second); err != nil {
		return err
	}
	proxy.SetRules(s3fault.Rule{Action: s3fault.Slow, Method: http.MethodGet, PathContains: "/segments/", Delay: time.Second})
	cat, err := catalog.Load(e.Ctx, e.Store)
	if err != nil {
		return err
	}
	wm := cat.Watermark().CommitTime
	instant := formatT(wm.Add(-time.Duration(1+e.Rand.IntN(5)) * time.Second).Add(-time.Microsecond))
	planned := map[string]bool{}
	for _, s := range cat.Plan(wm) {
		planned[s.Key] = true
	}
	e.Mark()
	type result struct {
		to     string
		out    *restoreOutput
		target string
		err    error
	}
	results := make(chan result, 2)
	for i, to := range []string{"latest", instant} {
		go func() {
			out, target, err := e.restoreTo(e.Ctx, fmt.Sprintf("restore-racing-%d", i), slowURL, to, "--parallel", "1", "--batch-rows", "100")
			results <- result{to, out, target, err}
		}()
	}
	var vs []*Violation
	for range 2 {
		r := <-results
		switch {
		case r.err != nil:
			return r.err
		case r.out.ExitCode != 0:
			vs = append(vs, violation("I3", "restore --to %s, racing merges and gc, exited %d: %s (see %s)", r.to, r.out.ExitCode, errText(r.out), r.out.LogPath))
			if partial, err := partialTransactions(e.Ctx, e.H.SourceURL, r.target); err != nil || partial > 0 {
				vs = append(vs, violation("I4", "the failed restore --to %s left %d partial transactions (%v)", r.to, partial, err))
			}
		default:
			vs = append(vs, compareRestore(e.Ctx, e.H.SourceURL, r.target, r.to, r.out.Target)...)
		}
	}
	proxy.Clear()
	gone := 0
	for k := range planned {
		if _, err := e.Store.Stat(e.Ctx, k); errors.Is(err, objstore.ErrNotFound) {
			gone++
		}
	}
	e.Note("planned=%d deleted_under_restores=%d", len(planned), gone)
	if err := gc.Stop(10 * time.Second); err != nil {
		e.Logf("gc: %v", err)
	}
	e.Note("%s", readGCTotals(gc))
	if gone == 0 && len(vs) == 0 {
		return errors.New("no planned segment was deleted while the restores ran: the race did not happen")
	}
	if err := e.Finish(CheckOptions{Instants: 2}); err != nil {
		if vs, err = appendViolation(vs, err); err != nil {
			return err
		}
	}
	return joinViolations(vs)
}
