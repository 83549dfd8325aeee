package testrig

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
)

// SharedPostgres is one PostgreSQL cluster for a whole test binary, for
// the tests that need no special server settings (each takes its own
// database): started on first use in a temporary directory, stopped and
// removed by Main (or Close after m.Run: os.Exit skips test cleanups).
// The zero value is ready to use.
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

// Main is a package's TestMain: it runs the tests, stops the cluster and
// exits with the tests' status.
func (s *SharedPostgres) Main(m *testing.M) {
	code := m.Run()
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "testrig:", err)
	}
	os.Exit(code)
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
