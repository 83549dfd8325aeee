package restore

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/restore/restoretest"
	"github.com/tidemark/tidemark/internal/segment"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// The package's tests share one PostgreSQL cluster, started on first use
// and stopped by TestMain.
var (
	pgOnce sync.Once
	pgSrv  *testrig.Postgres
	pgErr  error
	pgDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if pgSrv != nil {
		if err := pgSrv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop postgres:", err)
		}
	}
	if pgDir != "" {
		os.RemoveAll(pgDir)
	}
	if fix != nil {
		os.RemoveAll(fix.dir)
	}
	os.Exit(code)
}

// farFuture is an instant after every commit time.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// postgres returns the shared cluster, failing the test when it cannot start.
func postgres(tb testing.TB) *testrig.Postgres {
	tb.Helper()
	pgOnce.Do(func() {
		pgDir, pgErr = os.MkdirTemp("", "tidemark-restore-pg-")
		if pgErr == nil {
			pgSrv, pgErr = testrig.StartPostgresProcess(context.Background(), pgDir)
		}
	})
	if pgErr != nil {
		tb.Fatalf("start postgres: %v", pgErr)
	}
	return pgSrv
}

// newEventCoreDB returns a fresh database with EventCore's schema applied.
func newEventCoreDB(tb testing.TB) string {
	tb.Helper()
	url := postgres(tb).NewDatabase(tb)
	if err := eventcore.ApplyURL(context.Background(), url); err != nil {
		tb.Fatal(err)
	}
	return url
}

// fixture is the shared source database and archive.
type fixture struct {
	sourceURL string
	dir       string
	table     event.Table
	txns      [][]*event.Event
	times     []time.Time
	first     time.Time
	last      time.Time
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

// sharedFixture builds, once per test binary, a source database written by
// a concurrent loadgen workload plus the hard cases, and a plaintext zstd
// archive of it. Tests must not modify it; copyArchive gives a private copy.
func sharedFixture(tb testing.TB) *fixture {
	tb.Helper()
	pg := postgres(tb)
	fixOnce.Do(func() {
		var rf *restoretest.Fixture
		rf, fixErr = restoretest.Build(context.Background(), pg.CreateDatabase, 6000)
		if fixErr == nil {
			fix = &fixture{sourceURL: rf.SourceURL, dir: rf.Dir, table: rf.Table, txns: rf.Txns,
				times: rf.Times, first: rf.First, last: rf.Last}
		}
	})
	if fixErr != nil {
		tb.Fatalf("build fixture: %v", fixErr)
	}
	return fix
}

// archiveOptions shape a synthetic archive.
type archiveOptions struct {
	segmentEvents int
	keyring       *segment.Keyring
	seed          uint64
}

func writeArchive(ctx context.Context, st objstore.Store, t event.Table, txns [][]*event.Event, o archiveOptions) error {
	return restoretest.WriteArchive(ctx, st, t, txns, restoretest.Options{SegmentEvents: o.segmentEvents, Keyring: o.keyring, Seed: o.seed})
}

func copyArchive(tb testing.TB, src string) string { return restoretest.CopyDir(tb, src) }

// openArchive opens the archive in dir.
func openArchive(tb testing.TB, dir string, kr *segment.Keyring) *Archive {
	tb.Helper()
	st, err := file.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	a, err := Open(context.Background(), st, kr)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func restoretestReadDef(ctx context.Context, conn *pgx.Conn) (event.Table, error) {
	return restoretest.ReadTableDef(ctx, conn, "public", eventcore.Table)
}
