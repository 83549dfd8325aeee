package harness

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// Via overrides what a program connects to and adds to its environment;
// empty fields mean the rig's own servers.
type Via struct {
	// PGURL replaces the source URL (e.g. a fault proxy's, or another role's).
	PGURL string
	// NATSURL replaces the NATS URL(s).
	NATSURL string
	// StoreURL replaces the archive URL (e.g. through an S3 fault proxy).
	StoreURL string
	// Env is appended to the harness's environment.
	Env []string
}

func (v Via) or(val, def string) string {
	if val != "" {
		return val
	}
	return def
}

// CaptureVia starts `capture run` connecting as v says; extra flags are
// appended.
func (h *Harness) CaptureVia(ctx context.Context, name string, v Via, extra ...string) (*Proc, error) {
	args := []string{"run", "--pg", v.or(v.PGURL, h.SourceURL), "--nats-url", v.or(v.NATSURL, h.NATSURL)}
	return h.startServing(ctx, "capture", name, v.Env, args, extra)
}

// ArchiverVia starts `archiver run` connecting as v says; extra flags are
// appended.
func (h *Harness) ArchiverVia(ctx context.Context, name string, v Via, extra ...string) (*Proc, error) {
	args := []string{"run", "--store", v.or(v.StoreURL, h.StoreURL), "--nats-url", v.or(v.NATSURL, h.NATSURL)}
	return h.startServing(ctx, "archiver", name, v.Env, args, extra)
}

// startServing starts a long-running program with an ops server.
func (h *Harness) startServing(ctx context.Context, program, name string, env, args, extra []string) (*Proc, error) {
	addr, err := testkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	args = append(append(args, "--http", addr), extra...)
	p, err := h.StartProgram(ctx, program, name, env, args...)
	if err != nil {
		return nil, err
	}
	p.HTTPAddr = addr
	return p, nil
}

// StartProgram starts any Tidemark program (capture, archiver, restorer)
// with args as a child process logging to Dir/<name>.log, with the
// harness's environment plus env. Close stops it if it is still running.
func (h *Harness) StartProgram(ctx context.Context, program, name string, env []string, args ...string) (*Proc, error) {
	bin, err := h.Binary(ctx, program)
	if err != nil {
		return nil, err
	}
	p, err := startProc(name, bin, args, append(h.Env(), env...), filepath.Join(h.Opts.Dir, name+".log"))
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	return p, nil
}

// Result is how a program run to completion ended.
type Result struct {
	// Stdout is its standard output.
	Stdout []byte
	// ExitCode is its exit status (-1 when it did not exit normally).
	ExitCode int
	// LogPath holds its standard error.
	LogPath string
}

// RunProgram runs a Tidemark program to completion with the harness's
// environment plus env, appending its standard error to Dir/<logName>.log.
// A non-zero exit is reported in Result.ExitCode, not as an error; the
// error is for programs that could not be run at all.
func (h *Harness) RunProgram(ctx context.Context, program, logName string, env []string, args ...string) (Result, error) {
	res := Result{LogPath: filepath.Join(h.Opts.Dir, logName+".log")}
	bin, err := h.Binary(ctx, program)
	if err != nil {
		return res, err
	}
	logf, err := os.OpenFile(res.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return res, err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append(os.Environ(), h.env...), env...)
	cmd.Stderr = logf
	res.Stdout, err = cmd.Output()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	default:
		return res, err
	}
	return res, nil
}
