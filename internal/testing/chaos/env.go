package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/s3"
	"github.com/tidemark/tidemark/internal/objstore/storeurl"
	"github.com/tidemark/tidemark/internal/testing/harness"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// table is the captured EventCore table.
const table = "public.eventcore_events"

// Env is one scenario's world: the rig, the programs, the workload and
// what the checks need.
type Env struct {
	// Name and Seed identify the run.
	Name string
	Seed uint64
	// Rand is seeded from Seed: every random choice goes through it.
	Rand *rand.Rand
	// Ctx ends when the scenario's budget runs out.
	Ctx context.Context
	// Dir holds every server's data and every program's log.
	Dir string
	// H is the running rig (nil before Boot).
	H *harness.Harness
	// Store is the archive, opened directly (never through a fault proxy).
	Store objstore.Store
	// Capture is the running capture (nil when stopped).
	Capture *harness.Proc
	// Archivers are the archivers started, in start order.
	Archivers []*harness.Proc

	helpers []*harness.Proc // other programs started (gc), for the failure tails

	setup   Setup
	logf    func(format string, args ...any)
	slot    *slotWatch
	marks   []time.Time
	mu      sync.Mutex
	loads   []*Load
	events  int64
	notes   []string
	cleanup []func()
	// afterRig runs after the rig stopped (unmounting filesystems).
	afterRig []func()
	nCap     int
}

// Setup says how Boot brings the pipeline up.
type Setup struct {
	// Store is "file" (default) or "s3".
	Store string
	// NATS is "embedded" (default), "process", "stock" (a process with
	// the server's default limits) or "cluster".
	NATS string
	// PGOptions adjust the source server.
	PGOptions []testrig.PGOption
	// Archivers is how many archivers Boot starts (0 means 1, -1 none).
	Archivers int
	// CaptureVia and ArchiverVia route the programs through fault proxies.
	CaptureVia, ArchiverVia harness.Via
	// CaptureArgs and ArchiverArgs are extra flags.
	CaptureArgs, ArchiverArgs []string
	// BeforeStart runs after the rig is up and before capture starts.
	BeforeStart func(e *Env) error
}

// Note records a fact for the scenario's result line (e.g. "holes=3").
func (e *Env) Note(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.notes = append(e.notes, fmt.Sprintf(format, args...))
}

// NoteOnce records a fact once.
func (e *Env) NoteOnce(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !slices.Contains(e.notes, s) {
		e.notes = append(e.notes, s)
	}
}

// Logf logs progress to the test log.
func (e *Env) Logf(format string, args ...any) { e.logf(format, args...) }

// Mark records the instant a fault was injected; the restore checks
// sample commit times just after every mark.
func (e *Env) Mark() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.marks = append(e.marks, time.Now())
}

// Defer registers f to run when the scenario ends (before the rig stops).
func (e *Env) Defer(f func()) { e.cleanup = append(e.cleanup, f) }

// Boot starts the rig, capture and the archivers and waits until they are
// ready; it starts the slot watcher (I6).
func (e *Env) Boot(s Setup) error {
	switch s.Archivers {
	case 0:
		s.Archivers = 1
	case -1:
		s.Archivers = 0
	}
	e.setup = s
	h, err := harness.Start(e.Ctx, harness.Options{Dir: e.Dir, Store: s.Store, NATS: s.NATS, PGOptions: s.PGOptions,
		Failpoints: true})
	if err != nil {
		return fmt.Errorf("start rig: %w", err)
	}
	e.H = h
	if e.Store, err = e.openStore(); err != nil {
		return err
	}
	if s.BeforeStart != nil {
		if err := s.BeforeStart(e); err != nil {
			return err
		}
	}
	if _, err := e.StartCapture(); err != nil {
		return err
	}
	for range s.Archivers {
		if _, err := e.StartArchiver(); err != nil {
			return err
		}
	}
	e.slot = startSlotWatch(e.Ctx, e.H.PG.URL("source"), e.Store, "tidemark")
	return nil
}

// openStore opens the archive directly, with the rig's credentials.
func (e *Env) openStore() (objstore.Store, error) {
	opts := storeurl.Options{}
	if e.H.S3 != nil {
		opts.S3 = s3.Options{AccessKey: e.H.S3.AccessKey, SecretKey: e.H.S3.SecretKey, MaxAttempts: 3}
	}
	st, err := storeurl.OpenWith(e.Ctx, e.H.StoreURL, opts)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	return st, nil
}

// captureArgs are the flags every capture gets: fast heartbeats and
// status updates so watermarks and the slot move quickly.
func (e *Env) captureArgs() []string {
	return append([]string{"--heartbeat-interval", "1s", "--status-interval", "250ms", "--log-level", "debug"}, e.setup.CaptureArgs...)
}

// StartCapture starts a capture (as Setup says) and waits until it is ready.
func (e *Env) StartCapture() (*harness.Proc, error) {
	p, err := e.StartCaptureNoWait()
	if err != nil {
		return nil, err
	}
	return p, e.waitReady(p, 90*time.Second)
}

// StartCaptureNoWait starts a capture without waiting for it.
func (e *Env) StartCaptureNoWait() (*harness.Proc, error) {
	e.nCap++
	name := fmt.Sprintf("capture-%d", e.nCap)
	p, err := e.H.CaptureVia(e.Ctx, name, e.setup.CaptureVia, e.captureArgs()...)
	if err != nil {
		return nil, err
	}
	e.Capture = p
	return p, nil
}

// StartArchiver starts another archiver and waits until it is ready
// (leading or standing by).
func (e *Env) StartArchiver(extraEnv ...string) (*harness.Proc, error) {
	name := fmt.Sprintf("archiver-%c", 'a'+len(e.Archivers))
	via := e.setup.ArchiverVia
	via.Env = append(append([]string(nil), via.Env...), extraEnv...)
	args := append([]string{"--lease-ttl", "5s", "--hole-grace", "2s", "--log-level", "debug", "--holder", name}, e.setup.ArchiverArgs...)
	p, err := e.H.ArchiverVia(e.Ctx, name, via, args...)
	if err != nil {
		return nil, err
	}
	e.Archivers = append(e.Archivers, p)
	if len(extraEnv) > 0 { // crash hooks may end it before it is ready
		return p, nil
	}
	return p, e.waitReady(p, 90*time.Second)
}

func (e *Env) waitReady(p *harness.Proc, d time.Duration) error {
	ctx, cancel := context.WithTimeout(e.Ctx, d)
	defer cancel()
	if err := p.WaitReady(ctx); err != nil {
		return fmt.Errorf("wait for %s: %w", p.Name, err)
	}
	return nil
}

// Live returns the archivers still running.
func (e *Env) Live() []*harness.Proc {
	var out []*harness.Proc
	for _, a := range e.Archivers {
		if done, _ := a.Exited(); !done {
			out = append(out, a)
		}
	}
	return out
}

// Leader returns the archiver reporting tidemark_archiver_is_leader 1,
// waiting up to d for one.
func (e *Env) Leader(d time.Duration) (*harness.Proc, error) {
	deadline := time.Now().Add(d)
	for {
		for _, a := range e.Live() {
			if v, err := a.Metric(e.Ctx, "tidemark_archiver_is_leader"); err == nil && v == 1 {
				return a, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, errors.New("no archiver reports tidemark_archiver_is_leader 1 within " + d.String())
		}
		if err := e.Sleep(100 * time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// waitMetric waits until p exports metric with value want.
func (e *Env) waitMetric(p *harness.Proc, metric string, want float64, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last float64
	var lastErr error
	for {
		v, err := p.Metric(e.Ctx, metric)
		if err == nil && v == want {
			return nil
		}
		last, lastErr = v, err
		if time.Now().After(deadline) {
			return fmt.Errorf("%s's %s stayed %v (want %v) for %s (last error: %v)", p.Name, metric, last, want, d, lastErr)
		}
		if err := e.Sleep(250 * time.Millisecond); err != nil {
			return err
		}
	}
}

// Sleep waits d or until the budget ends.
func (e *Env) Sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-e.Ctx.Done():
		return e.Ctx.Err()
	case <-t.C:
		return nil
	}
}

// Between returns a random duration in [lo, hi).
func (e *Env) Between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(e.Rand.Int64N(int64(hi-lo)))
}

// tails returns the last lines of every program's log, for failures.
func (e *Env) tails(n int) string {
	var b strings.Builder
	procs := append(append([]*harness.Proc(nil), e.Archivers...), e.helpers...)
	if e.Capture != nil {
		procs = append(procs, e.Capture)
	}
	for _, p := range procs {
		fmt.Fprintf(&b, "--- %s (%s) ---\n%s\n", p.Name, p.LogPath, p.LogTail(n))
	}
	return b.String()
}

// close stops the workload, the watcher, the scenario's cleanups and the rig.
func (e *Env) close() {
	for _, l := range e.loads {
		l.Stop()
	}
	if e.slot != nil {
		e.slot.stop()
	}
	for i := len(e.cleanup) - 1; i >= 0; i-- {
		e.cleanup[i]()
	}
	if e.H != nil {
		e.H.Close()
	}
	for i := len(e.afterRig) - 1; i >= 0; i-- {
		e.afterRig[i]()
	}
}
