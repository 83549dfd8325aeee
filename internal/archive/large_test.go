package archive

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/archive/archivetest"
	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// largeTxnWatch polls the catalog while a large transaction at pos of n
// events is archived. It fails the test if the watermark reaches pos
// while the catalog lists fewer than n of its events, and records the
// most of its events seen listed below the watermark.
type largeTxnWatch struct {
	t     *testing.T
	store objstore.Store
	pos   event.Position
	n     int

	mu      sync.Mutex
	partial int    // most events of pos listed while the watermark was below it
	bad     string // a violation
	stop    chan struct{}
	done    chan struct{}
}

func watchLargeTxn(t *testing.T, store objstore.Store, pos event.Position, n int) *largeTxnWatch {
	w := &largeTxnWatch{t: t, store: store, pos: pos, n: n, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			w.check()
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return w
}

// check loads the catalog once.
func (w *largeTxnWatch) check() (wm event.Position, listed int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cat, err := catalog.Load(ctx, w.store)
	if err != nil {
		return 0, 0
	}
	for _, ref := range cat.Segments() {
		if ref.FirstEndLSN == w.pos && ref.LastEndLSN == w.pos {
			listed += ref.Events
		}
	}
	wm = cat.Watermark().LSN
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case wm >= w.pos && listed != w.n && w.bad == "":
		w.bad = fmt.Sprintf("watermark %s passed the transaction with %d of its %d events listed", wm, listed, w.n)
	case wm < w.pos:
		w.partial = max(w.partial, listed)
	}
	return wm, listed
}

// finish stops polling and fails the test on a violation; it returns the
// most events seen durable while the watermark was below the transaction.
func (w *largeTxnWatch) finish() int {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.bad != "" {
		w.t.Fatal(w.bad)
	}
	return w.partial
}

func TestArchiver_Run_StreamsLargeTransaction(t *testing.T) {
	// A transaction larger than the segment size and than MaxAckPending:
	// it is streamed into segments whose catalog entries keep the
	// watermark below it, its messages are acknowledged as its segments
	// become durable (else JetStream would stop delivering), and it is
	// archived once, whole, before anything after it.
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, testStream)
	store := fileStore(t)
	cfg := testConfig("a1")
	cfg.SegmentMaxBytes = 64 << 10
	cfg.MaxAckPending = 5000
	r := start(t, f, store, nil, cfg)
	before := workload(f, 10)
	f.Publish(t, false, before...)
	archivetest.WaitWatermark(t, store, last(before), 20*time.Second)

	const n = 20000
	watch := watchLargeTxn(t, store, f.NextPos(), n)
	pos, ids := f.PublishLargeTxn(t, n)
	if pos != watch.pos {
		t.Fatalf("transaction at %s, watched %s", pos, watch.pos)
	}
	after := append(workload(f, 10), f.HeartbeatItem())
	f.Publish(t, false, after...)
	archivetest.WaitWatermark(t, store, last(after), 60*time.Second)
	partial := watch.finish()
	if partial < n/4 {
		t.Fatalf("at most %d of %d events were durable before the transaction was complete, want mid-transaction flushes", partial, n)
	}
	arch := archivetest.Load(t, store, nil)
	want := append(archivetest.EventIDs(before...), ids...)
	arch.Check(t, append(want, archivetest.EventIDs(after...)...))
	parts := 0
	for _, ref := range arch.Catalog.Segments() {
		if ref.FirstEndLSN == pos {
			parts++
		}
	}
	if parts < 3 {
		t.Fatalf("the transaction is in %d segments, want several", parts)
	}
	checkVerify(t, store)
	testkit.WaitFor(t, 10*time.Second, "consumer ack pending 0", func() bool {
		st := r.Status()
		return st.ConsumerAckPending == 0 && st.ConsumerPending == 0
	})
	t.Logf("%d events of one transaction in %d segments; %d were durable before it was complete", n, parts, partial)
}

func fileStoreAt(t *testing.T, dir string) objstore.Store {
	t.Helper()
	s, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkVerify fails the test when catalog.Verify reports a failure.
func checkVerify(t *testing.T, store objstore.Store) {
	t.Helper()
	rep, err := catalog.Verify(context.Background(), store, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range rep.Findings {
		// The synthetic feed's stream versions are not contiguous (the
		// "stream" check); everything else must hold.
		if fd.Severity == catalog.Failure && fd.Check != "stream" {
			t.Errorf("verify: %s", fd)
		}
	}
}

// peakRSS returns p's peak resident set size so far (0 once it has exited).
func peakRSS(p *testkit.Proc) int64 {
	rss, _ := testkit.PeakRSS(p.PID())
	return rss
}

// largeTxnPeakRSS bounds the archiver process's peak RSS while it archives
// the 100000-event transaction of TestArchiverProcess_LargeTransactionCrash.
// Assembling it in memory took about 14 KB per event (4.3 GB of RSS for
// 300000 such events); streamed, it takes under 100 MiB whatever its size.
const largeTxnPeakRSS = 250 << 20

func TestArchiverProcess_LargeTransactionCrash(t *testing.T) {
	// The built archiver is killed (-9) in the middle of a 100000-event
	// transaction, after part of it is durable; the next one must archive
	// the rest, none of it twice, within bounded memory.
	nats := testrig.StartNATS(t)
	f := archivetest.NewFeed(t, nats.URL, testStream)
	dir := t.TempDir()
	store := fileStoreAt(t, dir)
	bin := testrig.BuildBinary(t, "./cmd/archiver")
	run := func(holder string) *testkit.Proc {
		return testkit.StartT(t, holder, exec.Command(bin, "run", "--nats-url", nats.URL, "--store", dir, "--holder", holder, "--http", "",
			"--flush-interval", "200ms", "--lease-ttl", "2s", "--segment-max-bytes", "524288",
			"--max-ack-pending", "20000", "--log-level", "info"))
	}
	before := workload(f, 5)
	f.Publish(t, false, before...)
	const n = 100000
	pos, ids := f.PublishLargeTxn(t, n)
	after := append(workload(f, 5), f.HeartbeatItem())
	f.Publish(t, false, after...)

	first := run("first")
	watch := watchLargeTxn(t, store, pos, n)
	var peak1 int64
	testkit.WaitFor(t, 120*time.Second, "part of the transaction durable", func() bool {
		peak1 = max(peak1, peakRSS(first))
		_, listed := watch.check()
		return listed >= n/3
	})
	peak1 = max(peak1, peakRSS(first))
	first.Kill()
	wm, listed := watch.check()
	if wm >= pos || listed >= n {
		t.Fatalf("killed too late: watermark %s, %d of %d events listed", wm, listed, n)
	}

	second := run("second")
	var peak2 int64
	testkit.WaitFor(t, 120*time.Second, fmt.Sprintf("the watermark to reach %s", last(after)), func() bool {
		peak2 = max(peak2, peakRSS(second))
		w, _ := watch.check()
		return w >= last(after)
	})
	peak2 = max(peak2, peakRSS(second))
	watch.finish()
	arch := archivetest.Load(t, store, nil)
	want := append(archivetest.EventIDs(before...), ids...)
	arch.Check(t, append(want, archivetest.EventIDs(after...)...))
	checkVerify(t, store)
	t.Logf("%d-event transaction: killed with %d events durable; peak RSS %d MiB before the kill, %d MiB after the restart",
		n, listed, peak1>>20, peak2>>20)
	if peak1 > largeTxnPeakRSS || peak2 > largeTxnPeakRSS {
		t.Fatalf("peak RSS %d / %d MiB, want at most %d MiB", peak1>>20, peak2>>20, largeTxnPeakRSS>>20)
	}
}
