package chaos

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/testing/harness"
	"github.com/tidemark/tidemark/internal/testing/testkit"
)

func init() {
	register(Scenario{
		Name: "value-200mib",
		Injects: "one event whose jsonb event_data is 200 MiB as text, amid a light workload, on a nats-server with " +
			"its default limits (a 1 MiB payload limit)",
		Checks: "I1-I6; the event restored byte for byte; capture's and the archiver's peak RSS (VmHWM) at most 256 MiB",
		Budget: 15 * time.Minute,
		Run:    largeValue,
	})
}

// largeValueBytes is the scenario's value size and maxValueRSS the bound
// on the programs' peak resident memory while it passes (issue 13).
const (
	largeValueBytes = 200 << 20
	maxValueRSS     = 256 << 20
)

func largeValue(e *Env) error {
	if err := e.Boot(Setup{NATS: "stock"}); err != nil {
		return err
	}
	e.StartLoad(20*time.Second, 100)
	if err := e.Sleep(2 * time.Second); err != nil {
		return err
	}
	e.Mark()
	start := time.Now()
	if err := insertLargeValue(e, "large-200MiB", largeValueBytes); err != nil {
		return err
	}
	e.Logf("inserted a %d MiB value in %s", largeValueBytes>>20, time.Since(start).Round(time.Millisecond))
	leader, err := e.Leader(time.Minute)
	if err != nil {
		return err
	}
	if err := e.waitMetricAtLeast(leader, "tidemark_archiver_external_values_total", 1, 5*time.Minute); err != nil {
		return fmt.Errorf("the archiver never fetched the value: %w\n%s", err, e.tails(30))
	}
	e.Note("value_passed=%s", time.Since(start).Round(time.Second))
	var vs []*Violation
	if err := e.Finish(CheckOptions{SettleTimeout: 8 * time.Minute, Instants: 1}); err != nil {
		if vs, err = appendViolation(vs, err); err != nil {
			return err
		}
	}
	// Peak RSS of the real processes, after the value passed through both.
	for _, p := range append([]*harness.Proc{e.Capture}, e.Archivers...) {
		if p == nil {
			continue
		}
		if exited, _ := p.Exited(); exited {
			continue
		}
		rss, err := testkit.PeakRSS(p.PID())
		if err != nil {
			return fmt.Errorf("peak RSS of %s: %w", p.Name, err)
		}
		e.Note("%s_peak_rss=%dMiB", p.Name, rss>>20)
		if rss > maxValueRSS {
			vs = append(vs, violation("memory", "%s peaked at %d MiB resident, bound %d MiB", p.Name, rss>>20, maxValueRSS>>20))
		}
	}
	return joinViolations(vs)
}

// insertLargeValue appends one event to stream sid whose event_data is a
// jsonb array of md5 strings of at least size bytes as text (36 bytes an
// element: `"<32 hex>", `).
func insertLargeValue(e *Env, sid string, size int) error {
	conn, err := pgx.Connect(e.Ctx, e.H.SourceURL)
	if err != nil {
		return err
	}
	defer conn.Close(e.Ctx)
	_, err = conn.Exec(e.Ctx, `INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data)
		SELECT gen_random_uuid(), $1, 'Large', jsonb_agg(md5(i::text)) FROM generate_series(1, $2::int) i`, sid, size/36+1)
	if err != nil {
		return fmt.Errorf("insert a %d-byte value: %w", size, err)
	}
	return nil
}
