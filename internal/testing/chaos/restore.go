package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

func init() {
	register(
		Scenario{
			Name:    "restore-killed-resumed",
			Injects: "kill -9 of a restore at two seeded points of its load, then the same command run again; in between, a restore to another instant into the half-filled target",
			Checks:  "I2-I4 on the resumed restore (it says resumed, holds no duplicate and equals the oracle); I5: the other instant is refused and leaves the target untouched",
			Short:   false,
			Run:     restoreKilledResumed,
		},
		Scenario{
			Name:    "restore-non-empty-target",
			Injects: "a restore into a target whose event table already holds an event",
			Checks:  "I5: refused with exit code 2 naming the problem; the target is untouched",
			Run:     restoreNonEmpty,
		},
	)
}

// rowCount counts the target's events (-1 when the table is unreadable).
func rowCount(ctx context.Context, url string) int64 {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return -1
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM eventcore_events").Scan(&n); err != nil {
		return -1
	}
	return n
}

func restoreKilledResumed(e *Env) error {
	if err := e.Boot(Setup{}); err != nil {
		return err
	}
	e.StartLoad(10*time.Second, 0)
	if err := e.Finish(CheckOptions{Instants: 1}); err != nil {
		return err
	}
	last, err := lastCommit(e.Ctx, e.H.SourceURL, time.Time{})
	if err != nil {
		return err
	}
	to := formatT(last)
	target, err := e.newTarget(e.Ctx)
	if err != nil {
		return err
	}
	args := []string{"restore", "--store", e.H.StoreURL, "--target", target, "--to", to, "--batch-rows", "200", "--parallel", "1", "--json"}
	for kill := range 2 {
		at := int64(float64(e.events) * (0.15 + 0.35*float64(kill) + 0.2*e.Rand.Float64()))
		p, err := e.H.StartProgram(e.Ctx, "restorer", fmt.Sprintf("restore-killed-%d", kill), nil, args...)
		if err != nil {
			return err
		}
		for {
			n := rowCount(e.Ctx, target)
			if done, _ := p.Exited(); done {
				return fmt.Errorf("the restore finished before it could be killed at %d rows (at %d):\n%s", at, n, p.LogTail(10))
			}
			if n >= at {
				break
			}
			if err := e.Sleep(20 * time.Millisecond); err != nil {
				return err
			}
		}
		e.Mark()
		p.Kill()
		e.Note("killed_at=%d", rowCount(e.Ctx, target))
		if partial, err := partialTransactions(e.Ctx, e.H.SourceURL, target); err != nil || partial > 0 {
			return violation("I4", "a killed restore left %d partial transactions (%v)", partial, err)
		}
	}
	var vs []*Violation
	before := rowCount(e.Ctx, target)
	other, err := e.runRestorer(e.Ctx, "restore-other-instant", "restore", "--store", e.H.StoreURL, "--target", target, "--to", formatT(last.Add(-time.Second)))
	if err != nil {
		return err
	}
	if other.ExitCode != 2 || rowCount(e.Ctx, target) != before {
		vs = append(vs, violation("I5", "a restore to another instant into an unfinished restore's target exited %d (want 2) and changed it from %d to %d rows: %s",
			other.ExitCode, before, rowCount(e.Ctx, target), errText(other)))
	}
	out, err := e.runRestorer(e.Ctx, "restore-resumed", args[:len(args)-1]...)
	if err != nil {
		return err
	}
	if out.ExitCode != 0 {
		return joinViolations(append(vs, violation("I3", "the resumed restore exited %d: %s", out.ExitCode, errText(out))))
	}
	if resumed, _ := out.Result["resumed"].(bool); !resumed {
		vs = append(vs, violation("I5", "the rerun restore did not report resumed: %v", out.Result))
	}
	vs = append(vs, compareRestore(e.Ctx, e.H.SourceURL, target, to, out.Target)...)
	return joinViolations(vs)
}

func restoreNonEmpty(e *Env) error {
	if err := e.Boot(Setup{}); err != nil {
		return err
	}
	e.StartLoad(6*time.Second, 0)
	if err := e.Finish(CheckOptions{Instants: 1}); err != nil {
		return err
	}
	target, err := e.newTarget(e.Ctx)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(e.Ctx, target)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	const row = `SELECT event_id::text || stream_id || stream_version || event_type || event_data::text || metadata::text || created_at::text FROM eventcore_events`
	if _, err := conn.Exec(e.Ctx, `INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data, metadata)
		VALUES (gen_random_uuid(), 'already-here', 'Existing', '{"keep": true}', '{}')`); err != nil {
		return err
	}
	var want string
	if err := conn.QueryRow(e.Ctx, row).Scan(&want); err != nil {
		return err
	}
	e.Mark()
	out, err := e.runRestorer(e.Ctx, "restore-non-empty", "restore", "--store", e.H.StoreURL, "--target", target, "--to", "latest")
	if err != nil {
		return err
	}
	var got string
	_ = conn.QueryRow(e.Ctx, row).Scan(&got)
	var vs []*Violation
	if out.ExitCode != 2 {
		vs = append(vs, violation("I5", "a restore into a non-empty table exited %d (want 2): %s", out.ExitCode, errText(out)))
	}
	if n := rowCount(e.Ctx, target); n != 1 || got != want {
		vs = append(vs, violation("I5", "the refused restore changed the target (%d rows)", n))
	}
	e.Note("refusal=%q", errText(out))
	return joinViolations(vs)
}
