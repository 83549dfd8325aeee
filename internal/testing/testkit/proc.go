package testkit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a child process whose stdout and stderr go to a log: a file, or
// memory.
type Proc struct {
	// Name labels the process in errors and logs ("capture", "postgres").
	Name string
	// LogPath is the file its output is appended to; "" when it is kept in
	// memory.
	LogPath string

	cmd  *exec.Cmd
	mem  *Buffer
	done chan struct{}

	mu  sync.Mutex
	err error
}

// Start starts cmd, which the caller has given its arguments, environment
// and process attributes, with stdout and stderr appended to logPath, or
// kept in memory when logPath is "". Unless cmd.SysProcAttr names a
// Pdeathsig, the child gets SIGKILL when this process dies, so a crashed
// test leaves nothing running.
func Start(name string, cmd *exec.Cmd, logPath string) (*Proc, error) {
	p := &Proc{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	closeLog := func() {}
	if logPath == "" {
		p.mem = &Buffer{}
		cmd.Stdout, cmd.Stderr = p.mem, p.mem
	} else {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open %s log: %w", name, err)
		}
		cmd.Stdout, cmd.Stderr = f, f
		closeLog = func() { f.Close() }
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if cmd.SysProcAttr.Pdeathsig == 0 {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		closeLog()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		err := cmd.Wait()
		closeLog()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// StartT is Start for a test, with the output in memory: it fails tb when
// the process cannot start, and kills the process at cleanup, logging the
// last lines of its output if the test failed.
func StartT(tb testing.TB, name string, cmd *exec.Cmd) *Proc {
	tb.Helper()
	p, err := Start(name, cmd, "")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		p.Kill()
		if tb.Failed() {
			tb.Logf("last lines of %s %v:\n%s", name, cmd.Args[1:], p.LogTail(40))
		}
	})
	return p
}

// PID returns the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and how: the error is
// nil for exit status 0, an *exec.ExitError otherwise.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.err
	default:
		return false, nil
	}
}

// Signal sends sig (SIGSTOP, SIGCONT, SIGTERM, …) without waiting.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL and waits for the process to exit.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends each signal in turn, waiting up to timeout after each for the
// process to exit, and finally kills it. Stopping an exited process does
// nothing; needing SIGKILL when sigs did not ask for it is an error.
func (p *Proc) Stop(timeout time.Duration, sigs ...syscall.Signal) error {
	for _, sig := range sigs {
		if exited, _ := p.Exited(); exited {
			return nil
		}
		if err := p.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("signal %s (pid %d): %w", p.Name, p.PID(), err)
		}
		select {
		case <-p.done:
			return nil
		case <-time.After(timeout):
		}
	}
	if exited, _ := p.Exited(); exited {
		return nil
	}
	_ = p.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
		return fmt.Errorf("stop %s (pid %d): did not exit within %s after %v; killed", p.Name, p.PID(), timeout, sigs)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("stop %s (pid %d): still running after SIGKILL", p.Name, p.PID())
	}
}

// ExitCode waits up to timeout for the process to exit and returns its
// exit status, -1 when a signal ended it. It fails tb, with the last lines
// of the output, when the process is still running at timeout.
func (p *Proc) ExitCode(tb testing.TB, timeout time.Duration) int {
	tb.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		tb.Fatalf("%s did not exit within %s; last lines:\n%s", p.Name, timeout, p.LogTail(40))
	}
	_, err := p.Exited()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		tb.Fatalf("wait for %s: %v", p.Name, err)
	}
	return 0
}

// Output returns everything the process has written so far ("" when its
// log file cannot be read).
func (p *Proc) Output() string {
	if p.mem != nil {
		return p.mem.String()
	}
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// LogTail returns the last n lines of the process's output.
func (p *Proc) LogTail(n int) string { return Tail(p.Output(), n) }
