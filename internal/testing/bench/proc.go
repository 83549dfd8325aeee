package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// ProcResult is how a finished child process ran, from the OS.
type ProcResult struct {
	// Wall is the time from start to exit.
	Wall time.Duration
	// MaxRSS is the peak resident set size in bytes: the largest VmHWM
	// read from /proc/PID/status while it ran (sampled every 20 ms; VmHWM
	// only rises, so the last sample misses at most the final 20 ms). Not
	// getrusage's ru_maxrss, which Linux carries across fork and exec: a
	// child forked while the bench process held 180 MiB reported 180 MiB
	// whatever it used itself.
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
	if err = cmd.Start(); err != nil {
		return ProcResult{}, fmt.Errorf("run %s: %w", name, err)
	}
	peak := sampleHWM(cmd.Process.Pid)
	err = cmd.Wait()
	res := ProcResult{Wall: time.Since(start), Stdout: out.Bytes(), MaxRSS: peak()}
	if cmd.ProcessState != nil {
		res.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return res, fmt.Errorf("run %s: %w (log %s)", name, err, logPath)
	}
	return res, nil
}

// sampleHWM reads pid's VmHWM every 20 ms until the returned func is
// called, which returns the largest value read.
func sampleHWM(pid int) func() int64 {
	done := make(chan struct{})
	max := make(chan int64, 1)
	go func() {
		var peak int64
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := testkit.PeakRSS(pid); err == nil && v > peak {
				peak = v
			}
			select {
			case <-done:
				max <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 { close(done); return <-max }
}
