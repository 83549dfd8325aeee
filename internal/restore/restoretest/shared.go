package restoretest

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// Shared is one PostgreSQL cluster and one Fixture on it for a whole test
// binary, each started or built on first use and removed by Close, which
// TestMain runs after the tests (testkit.Main): os.Exit skips test
// cleanups.
type Shared struct {
	// Events is the size of the fixture's workload (Build's events).
	Events int64
	// PG is the cluster, for tests that need databases of their own.
	PG testrig.SharedPostgres

	once sync.Once
	fix  *Fixture
	err  error
}

// Fixture returns the fixture, building it on first use; it fails tb when
// it cannot be built. Tests must not modify it (CopyDir gives a private
// copy of the archive).
func (s *Shared) Fixture(tb testing.TB) *Fixture {
	tb.Helper()
	pg := s.PG.Get(tb)
	s.once.Do(func() { s.fix, s.err = Build(context.Background(), pg.CreateDatabase, s.Events) })
	if s.err != nil {
		tb.Fatalf("build fixture: %v", s.err)
	}
	return s.fix
}

// Close removes the fixture's archive and stops the cluster.
func (s *Shared) Close() error {
	var err error
	if s.fix != nil {
		err = os.RemoveAll(s.fix.Dir)
	}
	return errors.Join(err, s.PG.Close())
}
