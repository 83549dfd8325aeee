package chaos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/monitor"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/testing/harness"
	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// monitorInterval is the sampling interval of the monitor the scenarios
// run; a fault must be reported within two of them plus monitorSlack (one
// round's own duration on a busy machine).
const (
	monitorInterval = 5 * time.Second
	monitorSlack    = 5 * time.Second
)

func init() {
	register(
		Scenario{
			Name: "monitor-faults",
			Injects: "with `archiver monitor --interval 5s` sampling every segment and event of a settled archive (capture running, the archiver stopped), in sequence: " +
				"a sampled event's message deleted from JetStream (DeleteMsg), an archived event's row UPDATEd in the source with session_replication_role=replica, " +
				"a live segment deleted, a byte flipped in another live segment, and (capture stopped, rows inserted) the slot advanced past the watermark with pg_replication_slot_advance",
			Checks: "each fault reported by the monitor (violations metric with its check: feed-missing, source-changed, segment-missing, segment-corrupt, slot) " +
				"within 2 intervals + 5 s, time to detect printed; no violation before the first fault",
			Budget: 6 * time.Minute,
			Run:    monitorFaults,
		},
		Scenario{
			Name: "monitor-steady",
			Injects: "nothing: a 10-minute workload (the loadgen program, 16 writers, 10,000 streams, nats-server as a process) at TIDEMARK_CHAOS_RATE events/s (default 5000, the bench rate) through capture and an archiver " +
				"with `archiver monitor --interval 5s` (20 events per round, JetStream check on)",
			Checks: "the workload reached at least 90% of the rate; no false alarm: the monitor's violations total stays 0 over every round; rounds ran and compared events with the source and the feed",
			Budget: 20 * time.Minute,
			Run:    monitorSteady,
		},
	)
}

// StartMonitor starts `archiver monitor` on the rig's archive, source and
// stream with the given extra flags and waits for its first round.
func (e *Env) StartMonitor(name string, extra ...string) (*harness.Proc, error) {
	addr, err := testkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{"monitor", "--store", e.H.StoreURL, "--source", e.H.PG.URL("source"), "--nats-url", e.H.NATSURL,
		"--interval", monitorInterval.String(), "--http", addr, "--log-level", "debug"}, extra...)
	p, err := e.H.StartProgram(e.Ctx, "archiver", name, nil, args...)
	if err != nil {
		return nil, err
	}
	p.HTTPAddr = addr
	e.helpers = append(e.helpers, p)
	return p, e.waitReady(p, time.Minute)
}

// violationsOf sums the monitor's violations for one check ("" = all).
func violationsOf(m map[string]float64, check string) float64 {
	if check == "" {
		return sumMetric(m, "tidemark_monitor_violations_total")
	}
	return m[`tidemark_monitor_violations_total{check="`+check+`"}`]
}

// waitDetected waits until the monitor reports check after the fault
// injected at t0 and notes the time it took; past 2 intervals + slack it
// is a violation.
func (e *Env) waitDetected(p *harness.Proc, check string, before float64, t0 time.Time) error {
	deadline := t0.Add(2*monitorInterval + monitorSlack)
	for {
		m, err := p.Metrics(e.Ctx)
		if err == nil && violationsOf(m, check) > before {
			d := time.Since(t0)
			e.Note("%s=%.1fs", check, d.Seconds())
			e.Logf("monitor reported %s %.1fs after the fault", check, d.Seconds())
			return nil
		}
		if time.Now().After(deadline) {
			return violation("monitor", "%s not reported within %s of the fault (violations %v, last scrape error %v)",
				check, 2*monitorInterval+monitorSlack, violationsOf(m, check), err)
		}
		if err := e.Sleep(100 * time.Millisecond); err != nil {
			return err
		}
	}
}

// inject runs fault, then waits for the monitor to report check.
func (e *Env) inject(p *harness.Proc, check string, fault func() error) error {
	m, err := p.Metrics(e.Ctx)
	if err != nil {
		return err
	}
	before := violationsOf(m, check)
	e.Mark()
	t0 := time.Now()
	if err := fault(); err != nil {
		return fmt.Errorf("inject %s: %w", check, err)
	}
	return e.waitDetected(p, check, before, t0)
}

func monitorFaults(e *Env) error {
	if err := e.Boot(Setup{}); err != nil {
		return err
	}
	// Every event committed more than the monitor's clock slack after the
	// stream's first message (capture's first heartbeat), so that the
	// monitor expects each one on the stream (seed 2 deleted an event of
	// the first 5 s, which the monitor rightly counts as possibly aged out).
	if err := e.Sleep(monitor.FeedSlack + time.Second); err != nil {
		return err
	}
	// Small enough that every round reads it all: the detection bound is
	// then deterministic (docs/operations.md says what sampling gives).
	if _, err := e.StartLoad(4*time.Second, 100).Wait(); err != nil {
		return err
	}
	if err := e.Settle(2 * time.Minute); err != nil {
		return err
	}
	for _, a := range e.Live() {
		if err := a.Stop(30 * time.Second); err != nil {
			return fmt.Errorf("stop %s: %w", a.Name, err)
		}
	}
	cat, err := catalog.Load(e.Ctx, e.Store)
	if err != nil {
		return err
	}
	var live []catalog.SegmentRef
	for _, s := range cat.Segments() {
		if s.Events > 0 {
			live = append(live, s)
		}
	}
	if len(live) < 2 {
		return fmt.Errorf("the archive holds %d live segments; the scenario needs 2", len(live))
	}
	e.Note("segments=%d", len(live))
	mon, err := e.StartMonitor("monitor", "--segments", "1000", "--sample", "100000")
	if err != nil {
		return err
	}
	// A second round, and nothing found yet: the checks agree on a healthy archive.
	if err := e.waitMetricAtLeast(mon, "tidemark_monitor_rounds_total", 2, 3*monitorInterval); err != nil {
		return err
	}
	m, err := mon.Metrics(e.Ctx)
	if err != nil {
		return err
	}
	if v := violationsOf(m, ""); v != 0 {
		return violation("monitor", "%v violations on the healthy archive (false alarm)", v)
	}
	if m["tidemark_monitor_feed_compared_total"] == 0 || m["tidemark_monitor_events_compared_total"] == 0 || m["tidemark_monitor_feed_expired_total"] != 0 {
		return fmt.Errorf("the monitor compared %v events with the source and %v with the feed (%v counted as aged out): want every event compared with both",
			m["tidemark_monitor_events_compared_total"], m["tidemark_monitor_feed_compared_total"], m["tidemark_monitor_feed_expired_total"])
	}

	nc, err := nats.Connect(e.H.NATSURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	stream, err := js.Stream(e.Ctx, "TIDEMARK")
	if err != nil {
		return err
	}
	// (a) a message deleted from JetStream
	if err := e.inject(mon, "feed-missing", func() error {
		info, err := stream.Info(e.Ctx)
		if err != nil {
			return err
		}
		mid := info.State.FirstSeq + uint64(e.Rand.Int64N(int64(info.State.LastSeq-info.State.FirstSeq+1)))
		msg, err := stream.GetMsg(e.Ctx, mid, jetstream.WithGetMsgSubject("tidemark.events.>"))
		if err != nil {
			return err
		}
		e.Logf("deleting message %d (%s)", msg.Sequence, msg.Subject)
		return stream.DeleteMsg(e.Ctx, msg.Sequence)
	}); err != nil {
		return err
	}
	// (b) an archived event's row changed with the triggers off
	if err := e.inject(mon, "source-changed", func() error {
		return e.pgExec(`SET session_replication_role = replica`,
			`UPDATE eventcore_events SET metadata = '{"tampered": true}'::jsonb WHERE event_id = (SELECT event_id FROM eventcore_events ORDER BY random() LIMIT 1)`)
	}); err != nil {
		return err
	}
	i := e.Rand.IntN(len(live))
	deleted, flipped := live[i], live[(i+1)%len(live)]
	// (c) a deleted segment
	if err := e.inject(mon, "segment-missing", func() error {
		e.Logf("deleting segment %s", deleted.Key)
		return e.Store.Delete(e.Ctx, deleted.Key)
	}); err != nil {
		return err
	}
	// (d) a flipped byte in another segment
	if err := e.inject(mon, "segment-corrupt", func() error {
		e.Logf("flipping a byte of segment %s", flipped.Key)
		return flipByte(e.Ctx, e.Store, flipped.Key, e.Rand.Int64N(flipped.Size))
	}); err != nil {
		return err
	}
	// (e) the slot confirmed past the watermark, forced on a stopped capture
	if err := e.Capture.Stop(30 * time.Second); err != nil {
		return err
	}
	e.Capture = nil
	if _, err := e.StartLoad(time.Second, 100).Wait(); err != nil {
		return err
	}
	e.slot.stop() // I6 is what is being broken on purpose here
	e.slot = nil
	if err := e.inject(mon, "slot", func() error {
		return e.pgExec(`SELECT pg_replication_slot_advance('tidemark', pg_current_wal_lsn())`)
	}); err != nil {
		return err
	}
	m, err = mon.Metrics(e.Ctx)
	if err != nil {
		return err
	}
	e.Note("rounds=%v", m["tidemark_monitor_rounds_total"])
	if err := e.countEvents(); err != nil {
		return err
	}
	e.NoteOnce(fmt.Sprintf("deadline=%s", 2*monitorInterval+monitorSlack))
	return nil
}

// flipByte inverts one byte of an object in place.
func flipByte(ctx context.Context, st objstore.Store, key string, at int64) error {
	rc, _, err := st.Get(ctx, key)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return err
	}
	b[at] ^= 0xff
	return st.Put(ctx, key, bytes.NewReader(b), int64(len(b)), objstore.PutOptions{})
}

func monitorSteady(e *Env) error {
	rate := float64(5000)
	if s := envRate(); s > 0 {
		rate = s
	}
	// nats-server as its own process, as in production and the bench: the
	// embedded one runs inside this race-built test process, several
	// times slower, and held the workload to half the rate.
	if err := e.Boot(Setup{NATS: "process"}); err != nil {
		return err
	}
	mon, err := e.StartMonitor("monitor")
	if err != nil {
		return err
	}
	const d = 10 * time.Minute
	// Sixteen writers on 10,000 streams, as the bench's steady phase: each
	// commit waits for its own round trip, so the rate needs that many in
	// flight.
	st, err := e.RunLoadProgram(d, rate, 16, 10_000)
	if err != nil {
		return err
	}
	took := time.Duration(st.DurationSeconds * float64(time.Second))
	// One more round after the workload, over what it wrote last.
	m, err := mon.Metrics(e.Ctx)
	if err != nil {
		return err
	}
	if err := e.waitMetricAtLeast(mon, "tidemark_monitor_rounds_total", m["tidemark_monitor_rounds_total"]+1, 3*monitorInterval); err != nil {
		return err
	}
	if m, err = mon.Metrics(e.Ctx); err != nil {
		return err
	}
	e.Note("rate=%.0f/s achieved=%.0f/s (%d events) over %s rounds=%v round_errors=%v compared=%v feed_compared=%v feed_expired=%v violations=%v",
		rate, st.EventsPerSecond, st.Events, took.Round(time.Second), m["tidemark_monitor_rounds_total"], m["tidemark_monitor_round_errors_total"],
		m["tidemark_monitor_events_compared_total"], m["tidemark_monitor_feed_compared_total"], m["tidemark_monitor_feed_expired_total"], violationsOf(m, ""))
	if err := e.countEvents(); err != nil {
		return err
	}
	// The claim is "no false alarm at this rate": a workload that fell
	// well short of it proves a lighter claim, so it fails the scenario.
	if st.EventsPerSecond < 0.9*rate {
		return fmt.Errorf("the workload reached %.0f events/s of the %.0f asked for: the run does not show the monitor at that rate (see loadgen.log)", st.EventsPerSecond, rate)
	}
	if v := violationsOf(m, ""); v != 0 {
		return violation("monitor", "%v false alarms in a steady run (see monitor.log: \"integrity violation\")", v)
	}
	// A round waits the interval after the previous one ends, and a round
	// under this load takes about as long again: a quarter of d/interval
	// rounds is the floor.
	if m["tidemark_monitor_rounds_total"] < float64(d/monitorInterval)/4 || m["tidemark_monitor_feed_compared_total"] == 0 {
		return fmt.Errorf("the monitor ran %v rounds and compared %v events with the feed in %s: too few to show anything",
			m["tidemark_monitor_rounds_total"], m["tidemark_monitor_feed_compared_total"], took.Round(time.Second))
	}
	return nil
}

// envRate is TIDEMARK_CHAOS_RATE (0 when unset or not a number).
func envRate() float64 {
	var r float64
	fmt.Sscan(strings.TrimSpace(os.Getenv("TIDEMARK_CHAOS_RATE")), &r)
	return r
}
