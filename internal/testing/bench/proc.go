package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// PeakRSS returns a running process's peak resident set size in bytes
// (VmHWM in /proc/PID/status).
func PeakRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("read peak rss of %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read peak rss of %d: %w", pid, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("read peak rss of %d: no VmHWM", pid)
}
