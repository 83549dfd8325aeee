package restore

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/restore/restoretest"
	"github.com/tidemark/tidemark/internal/segment"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// The package's tests share one PostgreSQL cluster and one fixture,
// started and built on first use and removed by TestMain.
var shared = restoretest.Shared{Events: 6000}

func TestMain(m *testing.M) { testkit.Main(m, shared.Close) }

// farFuture is an instant after every commit time.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// newEventCoreDB returns a fresh database with EventCore's schema applied.
func newEventCoreDB(tb testing.TB) string {
	tb.Helper()
	return shared.PG.Get(tb).NewEventCoreDatabase(tb)
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

// sharedFixture returns, built once per test binary, a source database
// written by a concurrent loadgen workload plus the hard cases, and a
// plaintext zstd archive of it. Tests must not modify it; copyArchive gives
// a private copy.
func sharedFixture(tb testing.TB) *fixture {
	tb.Helper()
	rf := shared.Fixture(tb)
	return &fixture{sourceURL: rf.SourceURL, dir: rf.Dir, table: rf.Table, txns: rf.Txns,
		times: rf.Times, first: rf.First, last: rf.Last}
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

func copyArchive(tb testing.TB, src string) string { return testkit.CopyDir(tb, src) }

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
