package restore

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/tidemark/tidemark/internal/restore/restoretest"
)

var errKilled = errors.New("killed for the test")

func TestRestore_InterruptedAndResumed(t *testing.T) {
	f := sharedFixture(t)
	a := openArchive(t, f.dir, nil)
	at := f.times[len(f.times)*4/5]
	p, err := a.Plan(at, "")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	ctx := context.Background()
	for round := 0; round < 4; round++ {
		target := newEventCoreDB(t)
		batchRows := 500 + rng.IntN(1500)
		// interrupt several times at random batches, by an error or by a
		// cancelled context, then let it finish
		interruptions := 1 + rng.IntN(3)
		for i := 0; i < interruptions; i++ {
			stopAt := 1 + rng.IntN(4)
			cctx, cancel := context.WithCancel(ctx)
			byCancel := rng.IntN(2) == 0
			_, err := Restore(cctx, p, Options{TargetURL: target, BatchRows: batchRows, Parallel: 2,
				AfterBatch: func(n int, _ int64) error {
					if n < stopAt {
						return nil
					}
					if byCancel {
						cancel()
						return nil
					}
					return errKilled
				}})
			cancel()
			if err == nil {
				break // finished before the interruption point
			}
			if !errors.Is(err, errKilled) && !errors.Is(err, context.Canceled) {
				t.Fatalf("round %d: interrupted restore: %v", round, err)
			}
		}
		res, err := Restore(ctx, p, Options{TargetURL: target, BatchRows: batchRows})
		if err != nil {
			t.Fatalf("round %d: resumed restore: %v", round, err)
		}
		restoretest.Compare(t, f.sourceURL, target, at)
		if res.Verification.Status != VerifyOK {
			t.Fatalf("round %d: verification %+v", round, res.Verification)
		}
		if res.Resumed && res.EventsThisRun >= res.Events {
			t.Fatalf("round %d: resumed but wrote %d of %d", round, res.EventsThisRun, res.Events)
		}
		// A finished restore is not resumed again: the target is refused.
		if _, err := Restore(ctx, p, Options{TargetURL: target}); !errors.Is(err, ErrTarget) {
			t.Fatalf("round %d: restore into a finished target: %v, want ErrTarget", round, err)
		}
	}
}

func TestRestore_ResumeRefusesDifferentRestore(t *testing.T) {
	f := sharedFixture(t)
	a := openArchive(t, f.dir, nil)
	ctx := context.Background()
	at := f.times[len(f.times)/2]
	p, _ := a.Plan(at, "")
	target := newEventCoreDB(t)
	_, err := Restore(ctx, p, Options{TargetURL: target, BatchRows: 500,
		AfterBatch: func(n int, _ int64) error { return errKilled }})
	if !errors.Is(err, errKilled) {
		t.Fatalf("interrupted: %v", err)
	}
	before := restoretest.TargetState(t, target)
	other, _ := a.Plan(f.times[len(f.times)/2+1], "")
	for name, run := range map[string]func() error{
		"other T": func() error { _, err := Restore(ctx, other, Options{TargetURL: target}); return err },
		"other filter": func() error {
			_, err := Restore(ctx, p, Options{TargetURL: target, Filter: Filter{EventTypes: []string{"x"}}})
			return err
		},
	} {
		err := run()
		if !errors.Is(err, ErrTarget) {
			t.Fatalf("%s: %v, want ErrTarget", name, err)
		}
		t.Logf("%s: %v (hint: %s)", name, err, HintOf(err))
	}
	if after := restoretest.TargetState(t, target); after != before {
		t.Fatalf("refused restores changed the target: %q -> %q", before, after)
	}
	if _, err := Restore(ctx, p, Options{TargetURL: target}); err != nil {
		t.Fatalf("resume with the same T: %v", err)
	}
	restoretest.Compare(t, f.sourceURL, target, at)
}
