package chaos

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/testing/harness"
	"github.com/tidemark/tidemark/internal/testing/s3fault"
)

func init() {
	register(
		Scenario{
			Name: "merge-levels-exact",
			Injects: "nothing but merges forced every second (levels 2s,10s,60s, settle 1s, a flush every 250 ms) and `archiver gc --grace 5s --interval 2s` beside them, " +
				"under load, until levels of 2 and more are live and gc has deleted superseded segments",
			Checks: "I1-I6; I3: 200 instants (commit times exactly and 1 µs before, up to 8 edges of each 2s/10s/60s bucket span, exactly and 1 µs before) restored with --output equal the oracle; " +
				"no live segment deleted; verify clean",
			Budget: 10 * time.Minute,
			Run:    mergeLevelsExact,
		},
		Scenario{
			Name: "merge-crash-points",
			Injects: "the archiver exits as if killed at each step of a merge in turn (merge-written, merge-uploaded, merge-recorded; seeded occurrence), twice, " +
				"each time replaced by a new archiver (the last by a standby), with `archiver gc --grace 1s --interval 1s` running beside them, under load",
			Checks: "I1-I6; I5: verify clean (leftovers adopted or recorded as debris); I3: 40 more instants restored with --output equal the oracle; no live segment deleted",
			Budget: 10 * time.Minute,
			Run:    mergeCrashPoints,
		},
		Scenario{
			Name: "merge-s3-errors",
			Injects: "while the archiver merges every second (s3 store): 500/503 for half its requests for 6-10 s; then 4 merged-segment PUTs, then 4 catalog-entry PUTs, " +
				"that succeed while it is told 500; then segment GET bodies cut short (probability 0.3, 10 in all); `archiver gc --grace 5s --interval 2s` beside it",
			Checks: "I1-I6; every phase injected its faults and merges went on; no live segment deleted; verify clean",
			Budget: 8 * time.Minute,
			Run:    mergeS3Errors,
		},
	)
}

// mergeSpans are the merge levels the scenarios force: a level-1 bucket
// every 2 s, level 2 every 10 s, level 3 every minute.
var mergeSpans = []time.Duration{2 * time.Second, 10 * time.Second, time.Minute}

// mergeArgs make the archiver merge every second, a bucket 1 s after its
// end, with the watermark (which closes buckets) moving every second.
func mergeArgs() []string {
	var spans []string
	for _, s := range mergeSpans {
		spans = append(spans, fmt.Sprintf("%ds", int(s.Seconds())))
	}
	return []string{"--merge-levels", strings.Join(spans, ","), "--merge-interval", "1s", "--merge-settle", "1s", "--idle-watermark-interval", "1s"}
}

// liveLevels counts the catalog's live segments by level.
func liveLevels(cat *catalog.Catalog) []int {
	var n []int
	for _, s := range cat.Segments() {
		for len(n) <= s.Level {
			n = append(n, 0)
		}
		n[s.Level]++
	}
	return n
}

func formatLevels(n []int) string {
	var parts []string
	for l, c := range n {
		parts = append(parts, fmt.Sprintf("L%d:%d", l, c))
	}
	return strings.Join(parts, ",")
}

// waitMerged waits until segments of level minLevel or more are live and
// the gc processes have deleted at least one superseded segment.
func (e *Env) waitMerged(minLevel int, d time.Duration, gcs ...*harness.Proc) error {
	deadline := time.Now().Add(d)
	for {
		cat, err := catalog.Load(e.Ctx, e.Store)
		var levels []int
		if err == nil {
			levels = liveLevels(cat)
		}
		t := readGCTotals(gcs...)
		if len(levels) > minLevel && t.segments > 0 {
			e.Note("live=%s", formatLevels(levels))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: live segments by level %s, gc deleted %d superseded segments (want a level ≥ %d and one deleted; load error: %v)",
				d, formatLevels(levels), t.segments, minLevel, err)
		}
		if err := e.Sleep(time.Second); err != nil {
			return err
		}
	}
}

func mergeLevelsExact(e *Env) error {
	if err := e.Boot(Setup{ArchiverArgs: append(mergeArgs(), "--flush-interval", "250ms")}); err != nil {
		return err
	}
	gc, err := e.StartGC("gc", "", 5*time.Second, 2*time.Second)
	if err != nil {
		return err
	}
	load := e.StartLoad(45*time.Second, 0)
	if _, err := load.Wait(); err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	if err := e.waitMerged(2, 90*time.Second, gc); err != nil {
		return err
	}
	// gc stops before the instants are checked, so they all read one
	// stable set of live segments; merges go on. A restore racing gc is
	// gc-races-restore's job.
	return e.finishAfterGC(gc, 200, mergeSpans)
}

// finishAfterGC stops gc, notes what it deleted, runs the final checks
// and, when instants > 0, checks that many instants; every segment the
// final catalog lists must still be in the store.
func (e *Env) finishAfterGC(gc *harness.Proc, instants int, spans []time.Duration) error {
	if err := gc.Stop(10 * time.Second); err != nil {
		e.Logf("gc: %v", err)
	}
	t := readGCTotals(gc)
	e.Note("%s", t)
	var vs []*Violation
	if err := e.Finish(CheckOptions{Instants: 4}); err != nil {
		if vs, err = appendViolation(vs, err); err != nil {
			return err
		}
	}
	if instants > 0 {
		iv, err := e.CheckInstants(instants, spans)
		if err != nil {
			return err
		}
		vs = append(vs, iv...)
	}
	return joinViolations(append(vs, e.checkCollected(t)))
}

// appendViolation appends err when it is a *Violation and returns any
// other error (the scenario could not run).
func appendViolation(vs []*Violation, err error) ([]*Violation, error) {
	var v *Violation
	if !errors.As(err, &v) {
		return vs, err
	}
	return append(vs, v), nil
}

// mergeCrashStages are the archive's merge steps the crash hook accepts.
var mergeCrashStages = []string{archive.StageMergeWritten, archive.StageMergeUploaded, archive.StageMergeRecorded}

func mergeCrashPoints(e *Env) error {
	tmp := filepath.Join(e.Dir, "merge-tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	if err := e.Boot(Setup{Archivers: -1, ArchiverArgs: append(mergeArgs(), "--temp-dir", tmp)}); err != nil {
		return err
	}
	// The shortest grace gc accepts: a leftover recorded as debris is past
	// it by the time the next term's merges adopt it.
	gc, err := e.StartGC("gc", "", time.Second, time.Second)
	if err != nil {
		return err
	}
	load := e.StartLoad(10*time.Minute, 0)
	crashes := 0
	for round := range 2 {
		for i, stage := range mergeCrashStages {
			last := round == 1 && i == len(mergeCrashStages)-1
			ok, err := e.crashAtMerge(fmt.Sprintf("%s:%d", stage, 1+e.Rand.IntN(3)), last)
			if err != nil {
				return err
			}
			if ok {
				crashes++
			}
			e.Mark()
		}
	}
	e.Note("crashes=%d", crashes)
	if crashes != 2*len(mergeCrashStages) {
		return fmt.Errorf("only %d of %d archivers crashed at their hook", crashes, 2*len(mergeCrashStages))
	}
	if err := e.Sleep(e.Between(5*time.Second, 10*time.Second)); err != nil {
		return err
	}
	load.Stop()
	e.noteMergeLeftovers(tmp)
	return e.finishAfterGC(gc, 40, nil)
}

// crashAtMerge starts an archiver that exits at the merge step spec names
// and waits for it to end; with standby, a plain archiver is started
// beside it once it leads, and must take over.
func (e *Env) crashAtMerge(spec string, standby bool) (bool, error) {
	a, err := e.StartArchiver("TIDEMARK_ARCHIVER_CRASH_AT=" + spec)
	if err != nil {
		return false, err
	}
	if standby {
		if err := e.waitMetric(a, "tidemark_archiver_is_leader", 1, 30*time.Second); err != nil {
			e.Logf("%s: %v", a.Name, err) // it may have crashed already
		}
		if _, err := e.StartArchiver(); err != nil {
			return false, err
		}
	}
	select {
	case <-a.Done():
	case <-time.After(90 * time.Second):
		return false, fmt.Errorf("archiver with %s did not reach its crash point within 90s:\n%s", spec, a.LogTail(20))
	case <-e.Ctx.Done():
		return false, e.Ctx.Err()
	}
	crashed := logContains(a.LogPath, "crash hook: exiting at")
	if !standby {
		return crashed, nil
	}
	start := time.Now()
	next, err := e.Leader(30 * time.Second)
	if err != nil {
		return false, violation("I5", "after %s crashed at %s: %v", a.Name, spec, err)
	}
	e.Note("takeover=%s by %s", time.Since(start).Round(100*time.Millisecond), next.Name)
	return crashed, nil
}

// noteMergeLeftovers records what interrupted merges left: merged objects
// the next terms recorded as debris (from their logs), how many of them a
// later merge adopted (listed as its output), and temporary files the
// merger left in its directory.
func (e *Env) noteMergeLeftovers(tmp string) {
	recorded := 0
	for _, a := range e.Archivers {
		b, err := os.ReadFile(a.LogPath)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "recorded leftovers of interrupted merges as debris") {
				var n int
				if i := strings.Index(line, "objects="); i >= 0 {
					fmt.Sscanf(line[i:], "objects=%d", &n)
				}
				recorded += n
			}
		}
	}
	adopted := 0
	if cat, err := loadForChecks(e.Ctx, e.Store); err == nil {
		debris := map[string]bool{}
		for _, en := range cat.Entries() {
			for _, d := range en.Debris {
				debris[d.Key] = true
			}
			if en.Merge != nil && debris[en.Merge.Output.Key] {
				adopted++
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(tmp, "tidemark-merge-*"))
	e.Note("merge_leftovers_recorded=%d adopted=%d merge_temp_files_left=%d", recorded, adopted, len(files))
}

func mergeS3Errors(e *Env) error {
	var proxy *s3fault.Proxy
	err := e.Boot(Setup{Store: "s3", ArchiverArgs: mergeArgs(), BeforeStart: func(e *Env) error {
		p, url, err := e.s3Proxy()
		proxy = p
		e.setup.ArchiverVia.StoreURL = url
		return err
	}})
	if err != nil {
		return err
	}
	gc, err := e.StartGC("gc", "", 5*time.Second, 2*time.Second)
	if err != nil {
		return err
	}
	load := e.StartLoad(10*time.Minute, 0)
	status := http.StatusInternalServerError
	if e.Rand.IntN(2) == 1 {
		status = http.StatusServiceUnavailable
	}
	mergedKey := "-L" // only merged segment keys hold it (…-L<level>.tms)
	phases := []s3Phase{
		{name: "storm", rules: []s3fault.Rule{s3fault.ErrorStorm(status, 0.5, 0)}, action: s3fault.Fail,
			min: e.Between(6*time.Second, 10*time.Second)},
		{name: "lost-merge-acks", rules: []s3fault.Rule{s3fault.LostPutAcks(mergedKey, 0)}, action: s3fault.LoseResponse, want: 4, max: 40 * time.Second},
		{name: "lost-entry-acks", rules: []s3fault.Rule{s3fault.LostPutAcks("/catalog/entries/", 0)}, action: s3fault.LoseResponse, want: 4, max: 20 * time.Second},
		{name: "truncated", rules: []s3fault.Rule{{Action: s3fault.Truncate, Method: http.MethodGet, PathContains: "/segments/", Probability: 0.3, Count: 10}},
			action: s3fault.Truncate, want: 10, max: 30 * time.Second},
	}
	for _, ph := range phases {
		if err := e.Sleep(e.Between(5*time.Second, 8*time.Second)); err != nil {
			return err
		}
		if err := e.runS3Phase(proxy, ph); err != nil {
			return err
		}
	}
	if err := e.Sleep(10 * time.Second); err != nil {
		return err
	}
	load.Stop()
	if err := e.waitMerged(2, 90*time.Second, gc); err != nil {
		return err
	}
	return e.finishAfterGC(gc, 0, nil)
}

// s3Phase is one fault of merge-s3-errors: rules held for min, or until
// want faults of action were injected (at most max). Lost PUT answers are
// counted by the proxy only when the server stored the object; the client's
// retry of such a PUT (conditional, so the server answers 412) matches the
// rule again, so those rules do not retire by count but when want is
// reached.
type s3Phase struct {
	name     string
	rules    []s3fault.Rule
	action   s3fault.Action
	min, max time.Duration
	want     int64
}

// runS3Phase applies a phase's rules and notes how many faults it injected
// and how many merges completed meanwhile; a phase that injected nothing is
// an error (the scenario did not test what it says).
func (e *Env) runS3Phase(proxy *s3fault.Proxy, ph s3Phase) error {
	before, _ := e.mergesDone()
	hits0 := proxy.Stats().Hits[ph.action]
	e.Mark()
	proxy.SetRules(ph.rules...)
	start := time.Now()
	var hits int64
	for {
		hits = proxy.Stats().Hits[ph.action] - hits0
		if (ph.want == 0 && time.Since(start) >= ph.min) || (ph.want > 0 && (hits >= ph.want || time.Since(start) >= ph.max)) {
			break
		}
		if err := e.Sleep(100 * time.Millisecond); err != nil {
			proxy.Clear()
			return err
		}
	}
	proxy.Clear()
	// Merges that were under way when the rules lifted finish in a few seconds.
	if err := e.Sleep(3 * time.Second); err != nil {
		return err
	}
	after, _ := e.mergesDone()
	e.Note("%s: faults=%d in %s merges=%d", ph.name, hits, time.Since(start).Round(time.Second), after-before)
	if hits == 0 {
		return fmt.Errorf("phase %s injected no fault within %s", ph.name, time.Since(start).Round(time.Second))
	}
	return nil
}

// mergesDone sums tidemark_archiver_merges_total over the live archivers.
func (e *Env) mergesDone() (int, error) {
	n := 0.0
	for _, a := range e.Live() {
		m, err := a.Metrics(e.Ctx)
		if err != nil {
			return 0, err
		}
		n += sumMetric(m, "tidemark_archiver_merges_total")
	}
	return int(n), nil
}
