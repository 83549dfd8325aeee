package cdc

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// sourceDelaySamples returns the source-delay histogram's count and sum.
func sourceDelaySamples(t *testing.T) (uint64, float64) {
	t.Helper()
	var m dto.Metric
	if err := metricSourceDelay.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// TestCapture_SourceDelay checks that the source's share of the latency is
// what the walsender's send time says: a transaction committed while
// capture was down waited for it, one committed while it streams did not.
func TestCapture_SourceDelay(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config()
	stop, _ := e.run(cfg)
	e.waitStreaming()
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	const backlogWait = 1500 * time.Millisecond
	e.exec("INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data) VALUES (gen_random_uuid(), 'delay-1', 'Fill', '{}')")
	time.Sleep(backlogWait)
	n0, sum0 := sourceDelaySamples(t)
	e.run(cfg)
	e.waitAllCaptured(cfg.Stream, 30*time.Second)
	n1, sum1 := sourceDelaySamples(t)
	if n1 != n0+1 {
		t.Fatalf("source delay observed %d times for one transaction", n1-n0)
	}
	if d := sum1 - sum0; d < backlogWait.Seconds() || d > 30 {
		t.Fatalf("source delay of a transaction committed %s before capture started = %.3fs", backlogWait, d)
	}

	e.waitStreaming()
	e.exec("INSERT INTO eventcore_events (event_id, stream_id, event_type, event_data) VALUES (gen_random_uuid(), 'delay-2', 'Fill', '{}')")
	e.waitAllCaptured(cfg.Stream, 30*time.Second)
	n2, sum2 := sourceDelaySamples(t)
	if n2 != n1+1 {
		t.Fatalf("source delay observed %d times for one live transaction", n2-n1)
	}
	if d := sum2 - sum1; d < 0 || d >= backlogWait.Seconds() {
		t.Fatalf("source delay of a transaction committed while streaming = %.3fs", d)
	}
}
