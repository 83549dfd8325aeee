package chaos

import (
	"fmt"
	"syscall"
	"time"

	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/testing/harness"
)

func init() {
	register(
		Scenario{
			Name:    "archiver-leader-kill9",
			Injects: "kill -9 of the leading archiver under load; the standby must take over, the killed one rejoins as a standby",
			Checks:  "I1-I6, I5: the standby leads within 30 s",
			Short:   true,
			Run:     archiverLeaderKill,
		},
		Scenario{
			Name:    "archiver-sigstop-lease",
			Injects: "SIGSTOP of the leading archiver for 3 lease lifetimes, then SIGCONT: the standby leads meanwhile and the woken writer must be fenced",
			Checks:  "I1-I6, I5: takeover, catalog epochs never go back, the old writer stops leading",
			Run:     archiverSigstopLease,
		},
		Scenario{
			Name:    "archiver-crash-points",
			Injects: "the archiver exits as if killed at each point of its durability sequence in turn (mid-upload, uploaded, cataloged, watermarked, acked; seeded occurrence), restarted each time",
			Checks:  "I1-I6",
			Run:     archiverCrashPoints,
		},
	)
}

func archiverLeaderKill(e *Env) error {
	if err := e.Boot(Setup{Archivers: 2}); err != nil {
		return err
	}
	e.StartLoad(14*time.Second, 0)
	if err := e.Sleep(e.Between(3*time.Second, 7*time.Second)); err != nil {
		return err
	}
	leader, err := e.Leader(20 * time.Second)
	if err != nil {
		return err
	}
	e.Mark()
	leader.Kill()
	start := time.Now()
	next, err := e.Leader(30 * time.Second)
	if err != nil {
		return violation("I5", "after kill -9 of %s: %v", leader.Name, err)
	}
	e.Note("takeover=%s by %s", time.Since(start).Round(100*time.Millisecond), next.Name)
	if _, err := e.StartArchiver(); err != nil {
		return err
	}
	return e.Finish(CheckOptions{})
}

func archiverSigstopLease(e *Env) error {
	const ttl = 5 * time.Second
	if err := e.Boot(Setup{Archivers: 2}); err != nil {
		return err
	}
	e.StartLoad(22*time.Second, 0)
	if err := e.Sleep(e.Between(3*time.Second, 5*time.Second)); err != nil {
		return err
	}
	leader, err := e.Leader(20 * time.Second)
	if err != nil {
		return err
	}
	e.Mark()
	if err := leader.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = leader.Signal(syscall.SIGCONT)
		}
	}
	defer resume()
	var standby *harness.Proc
	for _, a := range e.Live() {
		if a != leader {
			standby = a
		}
	}
	start := time.Now()
	for {
		if v, err := standby.Metric(e.Ctx, "tidemark_archiver_is_leader"); err == nil && v == 1 {
			break
		}
		if time.Since(start) > 6*ttl {
			return violation("I5", "standby %s did not take over within %s of %s stopping", standby.Name, 6*ttl, leader.Name)
		}
		if err := e.Sleep(100 * time.Millisecond); err != nil {
			return err
		}
	}
	e.Note("takeover=%s", time.Since(start).Round(100*time.Millisecond))
	if err := e.Sleep(max(0, 3*ttl-time.Since(start))); err != nil {
		return err
	}
	e.Mark()
	resume()
	// The woken writer must notice it lost the lease and stop leading.
	deadline := time.Now().Add(4 * ttl)
	for {
		exited, _ := leader.Exited()
		v, err := leader.Metric(e.Ctx, "tidemark_archiver_is_leader")
		if exited || (err == nil && v == 0) {
			break
		}
		if time.Now().After(deadline) {
			return violation("I5", "%s still claims to lead %s after waking past its lease", leader.Name, 4*ttl)
		}
		if err := e.Sleep(100 * time.Millisecond); err != nil {
			return err
		}
	}
	if err := e.Finish(CheckOptions{}); err != nil {
		return err
	}
	return checkEpochs(e)
}

// checkEpochs requires the catalog's epochs to never go back along the
// chain: a fenced writer wrote nothing after its successor.
func checkEpochs(e *Env) error {
	cat, err := catalog.LoadWith(e.Ctx, e.Store, catalog.LoadOptions{IgnoreCheckpoints: true})
	if err != nil {
		return violation("I5", "load catalog: %v", err)
	}
	var last uint64
	writers := map[string]bool{}
	for _, en := range cat.Entries() {
		if en.Epoch < last {
			return violation("I5", "catalog entry %d by %s has epoch %d after epoch %d: a fenced writer wrote", en.Seq, en.Writer, en.Epoch, last)
		}
		last = en.Epoch
		writers[fmt.Sprintf("%s@%d", en.Writer, en.Epoch)] = true
	}
	e.Note("writers=%d", len(writers))
	return nil
}

func archiverCrashPoints(e *Env) error {
	if err := e.Boot(Setup{Archivers: -1}); err != nil {
		return err
	}
	e.StartLoad(20*time.Second, 0)
	crashes := 0
	for _, stage := range archive.Stages {
		spec := fmt.Sprintf("%s:%d", stage, 1+e.Rand.IntN(3))
		a, err := e.StartArchiver("TIDEMARK_ARCHIVER_CRASH_AT=" + spec)
		if err != nil {
			return err
		}
		select {
		case <-a.Done():
			if logContains(a.LogPath, "crash hook: exiting at") {
				crashes++
			}
		case <-time.After(30 * time.Second):
			return fmt.Errorf("archiver with %s did not reach its crash point within 30s:\n%s", spec, a.LogTail(20))
		case <-e.Ctx.Done():
			return e.Ctx.Err()
		}
		e.Mark()
	}
	e.Note("crashes=%d", crashes)
	if crashes != len(archive.Stages) {
		return fmt.Errorf("only %d of %d archivers crashed at their hook", crashes, len(archive.Stages))
	}
	if _, err := e.StartArchiver(); err != nil {
		return err
	}
	return e.Finish(CheckOptions{})
}
