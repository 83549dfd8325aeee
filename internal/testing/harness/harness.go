package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/s3"
	"github.com/tidemark/tidemark/internal/objstore/storeurl"
	"github.com/tidemark/tidemark/internal/testing/eventcore"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// Options choose what Start brings up.
type Options struct {
	// Dir holds every server's data and every process's log.
	Dir string
	// Store is "file" (a local directory, the embedded default) or "s3"
	// (the rig's versitygw server).
	Store string
	// EncryptionKeys, when set, is passed to the archiver and restorer as
	// TIDEMARK_ENCRYPTION_KEYS (age identities, one per line).
	EncryptionKeys string
	// PGOptions adjust the source server (testrig.WithConf).
	PGOptions []testrig.PGOption
	// NATS is "embedded" (default: a server inside this process),
	// "process" (one real nats-server process, which can be killed),
	// "stock" (the same as "process": every server of the rig runs with
	// the server's default limits) or
	// "cluster" (three nats-server processes; streams get 3 replicas only
	// if capture is told --replicas 3).
	NATS string
	// Failpoints builds the programs with testrig.FailpointsTag, so the
	// archiver honours TIDEMARK_ARCHIVER_CRASH_AT (the chaos suite); by
	// default they are built as in production, without failpoints.
	Failpoints bool
}

// Harness is a running rig plus the programs started on it.
type Harness struct {
	Opts Options
	PG   *testrig.Postgres
	NATS *testrig.NATS
	S3   *testrig.S3
	// NATSNode and NATSCluster are set when Options.NATS is "process" or
	// "cluster"; NATSURL is the client URL(s) of whichever NATS runs.
	NATSNode    *testrig.NATSNode
	NATSCluster *testrig.NATSCluster
	NATSURL     string
	SourceURL   string
	StoreURL    string

	env   []string
	mu    sync.Mutex
	procs []*Proc
	bins  map[string]string
}

// Start brings up PostgreSQL 15 (logical replication, EventCore schema in
// database "source"), NATS with JetStream and the object store.
func Start(ctx context.Context, opts Options) (h *Harness, err error) {
	if opts.Dir == "" {
		return nil, errors.New("harness: Options.Dir is required")
	}
	if opts.Store == "" {
		opts.Store = "file"
	}
	h = &Harness{Opts: opts, bins: map[string]string{}}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	if h.PG, err = testrig.StartPostgresProcess(ctx, filepath.Join(opts.Dir, "pg"), opts.PGOptions...); err != nil {
		return nil, err
	}
	admin, err := pgx.Connect(ctx, h.PG.URL("postgres"))
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE source")
	admin.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("create source database: %w", err)
	}
	h.SourceURL = h.PG.URL("source")
	src, err := pgx.Connect(ctx, h.SourceURL)
	if err != nil {
		return nil, fmt.Errorf("connect to source: %w", err)
	}
	err = eventcore.Apply(ctx, src)
	src.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply eventcore schema: %w", err)
	}
	if err = h.startNATS(ctx); err != nil {
		return nil, err
	}
	switch opts.Store {
	case "file":
		h.StoreURL = "file://" + filepath.Join(opts.Dir, "archive")
	case "s3":
		if h.S3, err = testrig.StartS3Process(ctx, filepath.Join(opts.Dir, "s3")); err != nil {
			return nil, err
		}
		if err = h.S3.CreateBucket(ctx, "tidemark"); err != nil {
			return nil, err
		}
		h.StoreURL = h.S3.StoreURL("tidemark", "archive")
		h.env = append(h.env, h.S3.Env()...)
	default:
		return nil, fmt.Errorf("harness: unknown store %q (want file or s3)", opts.Store)
	}
	if opts.EncryptionKeys != "" {
		h.env = append(h.env, "TIDEMARK_ENCRYPTION_KEYS="+opts.EncryptionKeys)
	}
	return h, nil
}

// Binary returns the path of a Tidemark program, building it if needed
// (with failpoints when Options.Failpoints is set).
func (h *Harness) Binary(ctx context.Context, name string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p, ok := h.bins[name]; ok {
		return p, nil
	}
	var tags []string
	if h.Opts.Failpoints {
		tags = append(tags, testrig.FailpointsTag)
	}
	p, err := testrig.BuildPackage(ctx, "./cmd/"+name, tags...)
	if err != nil {
		return "", err
	}
	h.bins[name] = p
	return p, nil
}

// Capture starts `capture run` against the rig; extra flags are appended.
func (h *Harness) Capture(ctx context.Context, name string, extra ...string) (*Proc, error) {
	args := []string{"run", "--pg", h.SourceURL, "--nats-url", h.NATSURL}
	return h.start(ctx, "capture", name, args, extra)
}

// Archiver starts `archiver run` against the rig; extra flags are appended.
func (h *Harness) Archiver(ctx context.Context, name string, extra ...string) (*Proc, error) {
	args := []string{"run", "--store", h.StoreURL, "--nats-url", h.NATSURL}
	return h.start(ctx, "archiver", name, args, extra)
}

func (h *Harness) start(ctx context.Context, program, name string, args, extra []string) (*Proc, error) {
	bin, err := h.Binary(ctx, program)
	if err != nil {
		return nil, err
	}
	addr, err := testkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	args = append(append(args, "--http", addr), extra...)
	p, err := startProc(name, bin, args, h.env, filepath.Join(h.Opts.Dir, name+".log"))
	if err != nil {
		return nil, err
	}
	p.HTTPAddr = addr
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	return p, nil
}

// Restorer runs the restorer to completion with args and returns its
// standard output; stderr goes to the named log.
func (h *Harness) Restorer(ctx context.Context, logName string, args ...string) ([]byte, error) {
	bin, err := h.Binary(ctx, "restorer")
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(h.Opts.Dir, logName+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), h.env...)
	cmd.Stderr = logf
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("restorer %s: %w (see %s)", args[0], err, logf.Name())
	}
	return out, nil
}

// Env returns the extra environment the programs run with (store
// credentials, keys): for callers that run programs themselves.
func (h *Harness) Env() []string { return append([]string(nil), h.env...) }

// Close stops every program (SIGTERM, then SIGKILL) and every server.
func (h *Harness) Close() {
	h.mu.Lock()
	procs := h.procs
	h.procs = nil
	h.mu.Unlock()
	for _, p := range procs {
		_ = p.Stop(10 * time.Second)
	}
	if h.S3 != nil {
		_ = h.S3.Stop()
	}
	h.stopNATS()
	if h.PG != nil {
		_ = h.PG.Stop()
	}
}

// OpenStore opens the archive's object store from this process, with the
// rig's credentials when the store is S3.
func (h *Harness) OpenStore(ctx context.Context) (objstore.Store, error) {
	var opts storeurl.Options
	if h.S3 != nil {
		opts.S3 = s3.Options{AccessKey: h.S3.AccessKey, SecretKey: h.S3.SecretKey, Region: h.S3.Region}
	}
	return storeurl.OpenWith(ctx, h.StoreURL, opts)
}
