package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// ProcResult is how a finished child process ran, from the OS.
type ProcResult struct {
	// Wall is the time from start to exit.
	Wall time.Duration
	// MaxRSS is the peak resident set size in bytes (getrusage ru_maxrss,
	// the figure /usr/bin/time -v prints as "Maximum resident set size").
	MaxRSS int64
	// CPU is the user plus system time it used.
	CPU time.Duration
	// Stdout is what the process wrote to standard output.
	Stdout []byte
}

// runProcess runs a program to completion, its stderr appended to logPath,
// and returns its wall time and peak RSS.
func runProcess(ctx context.Context, logPath string, env []string, name string, args ...string) (ProcResult, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return ProcResult{}, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &out, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	err = cmd.Run()
	res := ProcResult{Wall: time.Since(start), Stdout: out.Bytes()}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.MaxRSS = ru.Maxrss * 1024 // kilobytes on Linux
		}
		res.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return res, fmt.Errorf("run %s: %w (log %s)", name, err, logPath)
	}
	return res, nil
}
