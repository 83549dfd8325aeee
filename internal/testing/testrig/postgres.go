package testrig

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// DefaultPGBinDir is where the PostgreSQL 15 server binaries are looked
// for; the TIDEMARK_PG_BIN environment variable or WithBinDir overrides it.
const DefaultPGBinDir = "/usr/lib/postgresql/15/bin"

// pgStartTimeout bounds how long a starting server may take to accept
// connections.
const pgStartTimeout = 90 * time.Second

// PGOption adjusts how StartPostgres configures the cluster.
type PGOption func(*pgOptions)

type pgOptions struct {
	binDir string
	conf   map[string]string
}

// WithConf sets a server configuration parameter (passed as -c key=value),
// overriding the rig's default for it.
func WithConf(key, value string) PGOption {
	return func(o *pgOptions) { o.conf[key] = value }
}

// WithBinDir uses the PostgreSQL server binaries in dir.
func WithBinDir(dir string) PGOption {
	return func(o *pgOptions) { o.binDir = dir }
}

// defaultPGConf is the rig's server configuration: logical decoding on,
// commit timestamps tracked, fsync off for speed (commits still survive a
// server crash such as StopImmediate, just not an OS crash).
func defaultPGConf() map[string]string {
	return map[string]string{
		"wal_level":                           "logical",
		"track_commit_timestamp":              "on",
		"max_replication_slots":               "20",
		"max_wal_senders":                     "20",
		"max_connections":                     "200",
		"listen_addresses":                    "127.0.0.1",
		"fsync":                               "off",
		"shared_buffers":                      "64MB",
		"log_min_messages":                    "warning",
		"logging_collector":                   "off",
		"wal_sender_timeout":                  "60s",
		"max_wal_size":                        "1GB",
		"datestyle":                           "iso, mdy",
		"timezone":                            "UTC",
		"idle_in_transaction_session_timeout": "0",
	}
}

// Postgres is one PostgreSQL cluster run by the rig.
type Postgres struct {
	// Port is the TCP port on 127.0.0.1 the server listens on.
	Port int
	// DataDir is the cluster's data directory.
	DataDir string
	// Dir is the rig directory holding the data directory, socket and logs.
	Dir string
	// LogPath is the server log file.
	LogPath string

	binDir string
	conf   map[string]string
	cred   *syscall.Credential

	mu   sync.Mutex
	proc *testkit.Proc
}

// StartPostgres initialises and starts a PostgreSQL 15 cluster in a test
// temporary directory and stops it when the test ends. It fails the test
// when the server cannot start.
func StartPostgres(tb testing.TB, opts ...PGOption) *Postgres {
	tb.Helper()
	p, err := StartPostgresProcess(context.Background(), tb.TempDir(), opts...)
	if err != nil {
		tb.Fatalf("testrig: %v", err)
	}
	tb.Cleanup(func() {
		if err := p.Stop(); err != nil {
			tb.Errorf("testrig: %v", err)
		}
	})
	return p
}

// StartPostgresProcess initialises a cluster under dir (created if needed)
// and starts it; the caller stops it with Stop. When running as root the
// server runs as the postgres system user.
func StartPostgresProcess(ctx context.Context, dir string, opts ...PGOption) (*Postgres, error) {
	o := pgOptions{binDir: DefaultPGBinDir, conf: defaultPGConf()}
	if env := os.Getenv("TIDEMARK_PG_BIN"); env != "" {
		o.binDir = env
	}
	for _, opt := range opts {
		opt(&o)
	}
	for _, b := range []string{"initdb", "postgres"} {
		if !isExecutable(filepath.Join(o.binDir, b)) {
			return nil, fmt.Errorf("postgres 15 not found at %s (no %s); run `make test`, which installs postgresql-15", o.binDir, b)
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve postgres dir: %w", err)
	}
	p := &Postgres{
		Dir:     dir,
		DataDir: filepath.Join(dir, "data"),
		LogPath: filepath.Join(dir, "postgres.log"),
		binDir:  o.binDir,
		conf:    o.conf,
	}
	if err := p.prepareDirs(); err != nil {
		return nil, err
	}
	if err := p.initdb(ctx); err != nil {
		return nil, err
	}
	port, err := testkit.FreePort()
	if err != nil {
		return nil, err
	}
	p.Port = port
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// prepareDirs creates the data and socket directories, owned by the
// postgres user when running as root.
func (p *Postgres) prepareDirs() error {
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return fmt.Errorf("create postgres dir: %w", err)
	}
	for _, d := range []string{p.DataDir, p.socketDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create postgres dir: %w", err)
		}
	}
	if os.Geteuid() != 0 {
		return nil
	}
	cred, err := postgresCredential()
	if err != nil {
		return err
	}
	p.cred = cred
	if err := makeTraversable(p.Dir); err != nil {
		return err
	}
	for _, d := range []string{p.DataDir, p.socketDir()} {
		if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("chown %s to postgres: %w", d, err)
		}
	}
	return nil
}

func (p *Postgres) socketDir() string { return filepath.Join(p.Dir, "sock") }

// socketSetting is unix_socket_directories: the rig's socket directory, or
// none when its path is too long for a Unix socket (deeply nested test
// temporary directories); clients always use TCP anyway.
func (p *Postgres) socketSetting() string {
	const maxSocketPath = 100 // sun_path is 108 bytes including ".s.PGSQL.NNNNN"
	if len(p.socketDir())+len("/.s.PGSQL.65535") > maxSocketPath {
		return ""
	}
	return p.socketDir()
}

// initdb creates the cluster: superuser postgres, trust authentication.
func (p *Postgres) initdb(ctx context.Context) error {
	logPath := filepath.Join(p.Dir, "initdb.log")
	cmd := exec.CommandContext(ctx, filepath.Join(p.binDir, "initdb"),
		"-D", p.DataDir, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
		"--locale=C", "--no-sync")
	cmd.Dir = p.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	proc, err := testkit.Start("initdb", cmd, logPath)
	if err != nil {
		return err
	}
	<-proc.Done()
	if _, err := proc.Exited(); err != nil {
		return startupError("initdb", logPath, err)
	}
	return nil
}

// Start starts the server again after StopImmediate or Stop, on the same
// port and data directory, and waits until it accepts connections.
func (p *Postgres) Start() error {
	return p.start(context.Background())
}

func (p *Postgres) start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if running(p.proc) {
		return fmt.Errorf("start postgres: already running (pid %d)", p.proc.PID())
	}
	args := []string{"-D", p.DataDir, "-c", "port=" + strconv.Itoa(p.Port),
		"-c", "unix_socket_directories=" + p.socketSetting()}
	for _, k := range slices.Sorted(maps.Keys(p.conf)) {
		args = append(args, "-c", k+"="+p.conf[k])
	}
	cmd := exec.Command(filepath.Join(p.binDir, "postgres"), args...)
	cmd.Dir = p.Dir
	// SIGQUIT when this process dies: an immediate shutdown that takes the
	// server's children with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Pdeathsig: syscall.SIGQUIT}
	proc, err := testkit.Start("postgres", cmd, p.LogPath)
	if err != nil {
		return err
	}
	p.proc = proc
	if err := p.waitReady(ctx, proc); err != nil {
		_ = proc.Stop(10*time.Second, syscall.SIGQUIT)
		return startupError("postgres", p.LogPath, err)
	}
	return nil
}

// waitReady polls until the server accepts a connection.
func (p *Postgres) waitReady(ctx context.Context, proc *testkit.Proc) error {
	ctx, cancel := context.WithTimeout(ctx, pgStartTimeout)
	defer cancel()
	var lastErr error
	for {
		if exited, err := proc.Exited(); exited {
			return fmt.Errorf("postgres exited: %v", err)
		}
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, p.URL("postgres"))
		ccancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready on port %d: %w (last: %v)", p.Port, ctx.Err(), lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// URL returns a connection URL for database db as the superuser postgres.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// PID returns the postmaster's process id (0 when never started).
func (p *Postgres) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return 0
	}
	return p.proc.PID()
}

// Stop shuts the server down (fast shutdown, SIGINT; immediate shutdown if
// that takes over 20 s, e.g. a logical replication client that never
// confirms) and waits for it to exit. Stopping a stopped server is a no-op.
func (p *Postgres) Stop() error {
	return p.stopWith(syscall.SIGINT, syscall.SIGQUIT)
}

// StopImmediate shuts the server down without a checkpoint (SIGQUIT), like
// a crash: the next Start runs crash recovery.
func (p *Postgres) StopImmediate() error {
	return p.stopWith(syscall.SIGQUIT)
}

func (p *Postgres) stopWith(sigs ...syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return nil
	}
	if err := p.proc.Stop(20*time.Second, sigs...); err != nil {
		return fmt.Errorf("stop postgres: %w", err)
	}
	return nil
}

var dbCounter atomic.Int64

// NewDatabase creates a fresh, uniquely named database and returns its URL.
func (p *Postgres) NewDatabase(tb testing.TB) string {
	tb.Helper()
	url, err := p.CreateDatabase(context.Background())
	if err != nil {
		tb.Fatalf("testrig: %v", err)
	}
	return url
}

// Connect opens a connection to the database at url, closed when the test
// ends; it fails tb when it cannot connect.
func Connect(tb testing.TB, url string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		tb.Fatalf("testrig: connect: %v", err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// NewEventCoreDatabase creates a fresh database with EventCore's schema
// applied (a capture source or a restore target) and returns its URL.
func (p *Postgres) NewEventCoreDatabase(tb testing.TB) string {
	tb.Helper()
	url := p.NewDatabase(tb)
	if err := eventcore.ApplyURL(context.Background(), url); err != nil {
		tb.Fatalf("testrig: %v", err)
	}
	return url
}

// CreateDatabase creates a fresh, uniquely named database and returns its
// URL.
func (p *Postgres) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("tm_%d_%d", os.Getpid(), dbCounter.Add(1))
	conn, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("connect postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return p.URL(name), nil
}

// SystemIdentifier returns the cluster's system identifier (pg_control).
func (p *Postgres) SystemIdentifier(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		tb.Fatalf("testrig: connect postgres: %v", err)
	}
	defer conn.Close(ctx)
	var id string
	if err := conn.QueryRow(ctx, "SELECT system_identifier::text FROM pg_control_system()").Scan(&id); err != nil {
		tb.Fatalf("testrig: read system identifier: %v", err)
	}
	return id
}

// postgresCredential returns the uid/gid of the postgres system user.
func postgresCredential() (*syscall.Credential, error) {
	u, err := lookupUser("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root and %w; postgres refuses to run as root", err)
	}
	return &syscall.Credential{Uid: u.uid, Gid: u.gid}, nil
}

// makeTraversable makes dir world-readable and gives every ancestor that
// lacks it the search bit others need to reach it (t.TempDir directories
// are 0700). Only the search bit is added; nothing becomes listable.
func makeTraversable(dir string) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	for d := filepath.Dir(dir); d != filepath.Dir(d); d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		if st.Mode().Perm()&0o001 != 0 {
			continue
		}
		if err := os.Chmod(d, st.Mode().Perm()|0o111); err != nil {
			return fmt.Errorf("chmod %s: %w", d, err)
		}
	}
	return nil
}

var errNoUser = errors.New("user not found")
