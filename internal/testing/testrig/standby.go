package testrig

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// StartStandby starts a streaming standby of primary, for failover tests:
// a base backup (pg_basebackup -R, with a physical slot on the primary so
// it keeps the WAL the standby still needs), asynchronous streaming
// replication over loopback, the primary's server settings. It is stopped
// when the test ends; promote it with Promote.
func StartStandby(tb testing.TB, primary *Postgres) *Postgres {
	tb.Helper()
	s, err := StartStandbyProcess(context.Background(), tb.TempDir(), primary)
	if err != nil {
		tb.Fatalf("testrig: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("testrig: %v", err)
		}
	})
	return s
}

// standbyCounter names each standby's physical slot on the primary.
var standbyCounter atomic.Int64

// StartStandbyProcess is StartStandby for callers without a testing.TB
// (chaos scenarios): the standby lives under dir and the caller stops it.
func StartStandbyProcess(ctx context.Context, dir string, primary *Postgres) (*Postgres, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve standby dir: %w", err)
	}
	s := &Postgres{
		Dir:     dir,
		DataDir: filepath.Join(dir, "data"),
		LogPath: filepath.Join(dir, "postgres.log"),
		binDir:  primary.binDir,
		conf:    primary.conf,
	}
	if err := s.prepareDirs(); err != nil {
		return nil, err
	}
	slot := fmt.Sprintf("tidemark_rig_standby_%d_%d", primary.Port, standbyCounter.Add(1))
	logPath := filepath.Join(dir, "basebackup.log")
	cmd := exec.CommandContext(ctx, filepath.Join(s.binDir, "pg_basebackup"),
		"-D", s.DataDir, "-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port), "-U", "postgres",
		"-R", "-X", "stream", "-C", "-S", slot, "-c", "fast", "--no-sync")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	proc, err := testkit.Start("pg_basebackup", cmd, logPath)
	if err != nil {
		return nil, err
	}
	<-proc.Done()
	if _, err := proc.Exited(); err != nil {
		return nil, startupError("pg_basebackup", logPath, err)
	}
	if s.Port, err = testkit.FreePort(); err != nil {
		return nil, err
	}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// InRecovery reports whether the server is a standby (pg_is_in_recovery).
func (p *Postgres) InRecovery(ctx context.Context) (bool, error) {
	conn, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return false, fmt.Errorf("connect postgres on port %d: %w", p.Port, err)
	}
	defer conn.Close(ctx)
	var rec bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec); err != nil {
		return false, fmt.Errorf("read pg_is_in_recovery: %w", err)
	}
	return rec, nil
}

// Promote turns a standby into a primary (pg_promote, waiting until it
// accepts writes) and returns its new timeline.
func (p *Postgres) Promote(ctx context.Context) (int, error) {
	conn, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return 0, fmt.Errorf("promote: connect postgres on port %d: %w", p.Port, err)
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_promote(wait => true, wait_seconds => 60)").Scan(&ok); err != nil {
		return 0, fmt.Errorf("promote: %w", err)
	}
	if !ok {
		return 0, fmt.Errorf("promote: the standby on port %d did not finish promotion within 60 s (log %s)", p.Port, p.LogPath)
	}
	return p.Timeline(ctx)
}

// Timeline returns the server's current timeline, as IDENTIFY_SYSTEM
// reports it (pg_control_checkpoint lags until the next checkpoint).
func (p *Postgres) Timeline(ctx context.Context) (int, error) {
	conn, err := pgconn.Connect(ctx, p.URL("postgres")+"&replication=database")
	if err != nil {
		return 0, fmt.Errorf("timeline: connect postgres on port %d: %w", p.Port, err)
	}
	defer conn.Close(ctx)
	res, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return 0, fmt.Errorf("timeline: identify system: %w", err)
	}
	return int(res.Timeline), nil
}

// WaitReplayed waits until the standby has replayed the primary's WAL up to
// the primary's current insert position (read once, at the call).
func (p *Postgres) WaitReplayed(ctx context.Context, primary *Postgres) error {
	pc, err := pgx.Connect(ctx, primary.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect primary: %w", err)
	}
	var target string
	err = pc.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&target)
	pc.Close(ctx)
	if err != nil {
		return fmt.Errorf("read primary WAL position: %w", err)
	}
	sc, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect standby: %w", err)
	}
	defer sc.Close(ctx)
	for {
		var done bool
		if err := sc.QueryRow(ctx, "SELECT COALESCE(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)", target).Scan(&done); err != nil {
			return fmt.Errorf("read standby replay position: %w", err)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("standby on port %d has not replayed up to %s: %w", p.Port, target, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// MultiHostURL returns a connection URL for database db listing every
// server, with target_session_attrs=read-write: libpq-style clients try the
// hosts in order and keep the first that accepts writes — the primary,
// whichever server that is after a failover.
func MultiHostURL(db string, servers ...*Postgres) string {
	hosts := make([]string, len(servers))
	for i, s := range servers {
		hosts[i] = "127.0.0.1:" + strconv.Itoa(s.Port)
	}
	return "postgres://postgres@" + strings.Join(hosts, ",") + "/" + db + "?sslmode=disable&target_session_attrs=read-write"
}
