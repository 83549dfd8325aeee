package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestChaos runs the fault-injection scenarios: all of them when
// TIDEMARK_CHAOS=all (make chaos), those named in TIDEMARK_CHAOS_SCENARIO
// (comma-separated) when set, else the short subset (make test). The seed
// is TIDEMARK_CHAOS_SEED (default 1).
func TestChaos(t *testing.T) {
	seed := uint64(1)
	if s := os.Getenv("TIDEMARK_CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("TIDEMARK_CHAOS_SEED=%q: want a non-negative integer", s)
		}
		seed = n
	}
	scenarios, err := Select(os.Getenv("TIDEMARK_CHAOS_SCENARIO"), os.Getenv("TIDEMARK_CHAOS") == "all")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scenarios {
		t.Run(s.Name, func(t *testing.T) { runScenario(t, s, seed) })
	}
}

// runScenario runs one scenario, prints its result line, and fails the
// test when an invariant broke or the scenario could not run.
func runScenario(t *testing.T, s Scenario, seed uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), s.Budget)
	defer cancel()
	e := &Env{
		Name: s.Name,
		Seed: seed,
		Rand: rand.New(rand.NewPCG(seed, hashName(s.Name))),
		Ctx:  ctx,
		Dir:  scenarioDir(t),
		logf: t.Logf,
	}
	start := time.Now()
	err := s.Run(e)
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("budget of %s exceeded: %w", s.Budget, ctx.Err())
	}
	var tails string
	if err != nil {
		tails = e.tails(25)
	}
	e.close()
	line := fmt.Sprintf("scenario=%s seed=%d events=%d", s.Name, seed, e.events)
	var v *Violation
	switch {
	case err == nil:
		line += " result=ok"
	case errors.As(err, &v):
		line += fmt.Sprintf(" result=FAIL invariant=%s detail=%q", v.Invariant, v.Detail)
	default:
		line += fmt.Sprintf(" result=ERROR detail=%q", err.Error())
	}
	if len(e.notes) > 0 {
		line += " notes: " + strings.Join(e.notes, " ")
	}
	fmt.Println(line)
	t.Logf("%s in %s; notes: %v", s.Name, time.Since(start).Round(time.Second), e.notes)
	if err != nil {
		t.Errorf("%s\n%s", line, tails)
	}
}

// scenarioDir is the scenario's working directory: a test temporary
// directory, or with TIDEMARK_CHAOS_KEEP=1 one that survives the run (its
// path is logged) for post-mortems.
func scenarioDir(t *testing.T) string {
	if os.Getenv("TIDEMARK_CHAOS_KEEP") == "" {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("", "tidemark-chaos-"+t.Name()[len("TestChaos/"):]+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("keeping %s", dir)
	return dir
}

// hashName derives a per-scenario stream of the seed's randomness.
func hashName(name string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return h
}
