package testrig

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one child server process whose output goes to a log file.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}

	mu      sync.Mutex
	waitErr error
}

// startProcess starts cmd with stdout and stderr appended to logPath. The
// child gets deathSig when this process dies, so a crashed test leaves no
// servers behind.
func startProcess(name, logPath string, cmd *exec.Cmd, deathSig syscall.Signal) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	cmd.Stdout = f
	cmd.Stderr = f
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = deathSig
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// pid returns the process id.
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitErr returns how the process ended (nil while running or on exit 0).
func (p *process) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// stop sends each signal in turn, waiting up to timeout after each for the
// process to exit, and finally kills it. Stopping an exited process is a
// no-op; needing SIGKILL (when it was not asked for) is reported as an
// error.
func (p *process) stop(timeout time.Duration, sigs ...syscall.Signal) error {
	for _, sig := range sigs {
		if p.exited() {
			return nil
		}
		if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("signal %s (pid %d): %w", p.name, p.pid(), err)
		}
		select {
		case <-p.done:
			return nil
		case <-time.After(timeout):
		}
	}
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
		return fmt.Errorf("stop %s (pid %d): did not exit within %s after %v; killed", p.name, p.pid(), timeout, sigs)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("stop %s (pid %d): still running after SIGKILL", p.name, p.pid())
	}
}

// startupError describes a server that failed to start, with its log tail.
func startupError(name, logPath string, err error) error {
	tail := logTail(logPath, 4096)
	if tail == "" {
		return fmt.Errorf("start %s: %w (log %s is empty)", name, err, logPath)
	}
	return fmt.Errorf("start %s: %w\n--- %s (tail) ---\n%s", name, err, logPath, tail)
}

// logTail returns the last max bytes of a log file ("" if unreadable).
func logTail(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := st.Size() - max
	if off < 0 {
		off = 0
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ""
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return ""
	}
	return strings.TrimRight(string(b), "\n")
}

// freePort returns a currently unused TCP port on 127.0.0.1.
func freePort() (int, error) {
	ports, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// freePorts returns n distinct unused TCP ports on 127.0.0.1, holding all
// of them open at once so none repeats.
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
