package cdc

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/testing/loadgen"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// hugeRSSBound is the peak resident memory (VmHWM) the capture process may
// reach while capturing the huge transaction.
const hugeRSSBound = 300 << 20

// TestCaptureProcess_HugeTransaction captures one transaction of
// TIDEMARK_HUGE_ROWS rows (default 1,000,000) with the capture binary and
// checks that every row reaches the stream as one transaction while the
// process's peak RSS stays under hugeRSSBound: rows beyond --max-txn-memory
// are spilled to disk, and publishing is windowed.
func TestCaptureProcess_HugeTransaction(t *testing.T) {
	t.Parallel() // a separate process: no shared in-process metrics
	rows := envInt("TIDEMARK_HUGE_ROWS", 1_000_000)
	bin := testrig.BuildBinary(t, "./cmd/capture")
	e := newEnv(t, nil)
	// A real nats-server process: the embedded one would run under the race
	// detector and take minutes for a million messages.
	node, err := testrig.StartNATSProcess(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Stop() })
	nc := connectJS(t, node.URL)

	p := startCaptureProc(t, bin, "run", "--pg", e.pgURL, "--nats-url", node.URL, "--slot", e.slot, "--http", "",
		"--confirm-on", "jetstream", "--max-txn-memory", "64MiB", "--heartbeat-interval", "2s")
	// "streaming started" comes after START_REPLICATION; an active slot alone
	// could still be CREATE_REPLICATION_SLOT, and a transaction committed
	// then would reach the stream as snapshot rows.
	testkit.WaitFor(t, 30*time.Second, "capture streaming", func() bool { return strings.Contains(p.Output(), "streaming started") })

	start := time.Now()
	ctx := context.Background()
	if err := loadgen.HugeTransaction(ctx, e.pgURL, rows, true); err != nil {
		t.Fatal(err)
	}
	committed := time.Since(start)
	s, err := nc.Stream(ctx, "TIDEMARK")
	if err != nil {
		t.Fatal(err)
	}
	subj := feed.Subjects{Prefix: "tidemark"}
	var events uint64
	deadline := time.Now().Add(10 * time.Minute)
	for {
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj.Events()))
		if err != nil {
			t.Fatal(err)
		}
		events = 0
		for _, n := range info.State.Subjects {
			events += n
		}
		if events >= uint64(rows) || time.Now().After(deadline) {
			break
		}
		if exited, _ := p.Exited(); exited {
			t.Fatalf("capture exited:\n%s", p.LogTail(30))
		}
		time.Sleep(time.Second)
	}
	captured := time.Since(start)
	hwm, err := testkit.PeakRSS(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Signal(syscall.SIGTERM)
	if code := p.ExitCode(t, 60*time.Second); code != 0 {
		t.Fatalf("capture exited %d:\n%s", code, p.LogTail(30))
	}
	if events != uint64(rows) {
		t.Fatalf("%d of %d events in the stream", events, rows)
	}
	last, err := s.GetLastMsgForSubject(ctx, subj.Events())
	if err != nil {
		t.Fatal(err)
	}
	if env, err := feed.DecodeEnvelope(&nats.Msg{Subject: last.Subject, Header: last.Header}); err != nil || env.Index != rows-1 || env.Count != rows {
		t.Errorf("last event is %d of %d (%v)", env.Index, env.Count, err)
	}
	if !strings.Contains(p.Output(), "large transaction spilled to disk") {
		t.Error("the transaction was not spilled")
	}
	t.Logf("%d rows: committed after %s, all in the stream after %s; capture peak RSS %d MiB (bound %d MiB)",
		rows, committed.Round(time.Second), captured.Round(time.Second), hwm>>20, hugeRSSBound>>20)
	if hwm > hugeRSSBound {
		t.Fatalf("capture peak RSS %d MiB exceeds %d MiB", hwm>>20, hugeRSSBound>>20)
	}
}

func connectJS(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
