package testrig

import (
	"context"
	"os"
	"sync"
	"testing"
)

// SharedPostgres is one PostgreSQL cluster for a whole test binary, for
// the tests that need no special server settings (each takes its own
// database): started on first use in a temporary directory, stopped and
// removed by Close, which TestMain runs after the tests (testkit.Main):
// os.Exit skips test cleanups. The zero value is ready to use.
type SharedPostgres struct {
	once sync.Once
	pg   *Postgres
	dir  string
	err  error
}

// Get returns the cluster, starting it on first use; it fails tb when the
// cluster cannot start.
func (s *SharedPostgres) Get(tb testing.TB) *Postgres {
	tb.Helper()
	s.once.Do(func() {
		if s.dir, s.err = os.MkdirTemp("", "tidemark-shared-pg-"); s.err == nil {
			s.pg, s.err = StartPostgresProcess(context.Background(), s.dir)
		}
	})
	if s.err != nil {
		tb.Fatalf("start shared postgres: %v", s.err)
	}
	return s.pg
}

// Close stops the cluster, if it was started, and removes its directory.
func (s *SharedPostgres) Close() error {
	var err error
	if s.pg != nil {
		err = s.pg.Stop()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
	return err
}
