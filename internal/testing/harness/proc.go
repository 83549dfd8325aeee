package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// Proc is one Tidemark program running as a child process, its output in
// LogPath.
type Proc struct {
	*testkit.Proc
	// HTTPAddr is the ops server address (/livez, /readyz, /metrics).
	HTTPAddr string
}

func startProc(name, bin string, args, env []string, logPath string) (*Proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := testkit.Start(name, cmd, logPath)
	if err != nil {
		return nil, err
	}
	return &Proc{Proc: p}, nil
}

// Stop sends SIGTERM and waits up to timeout before killing it; it returns
// the process's exit error, if any.
func (p *Proc) Stop(timeout time.Duration) error {
	_ = p.Proc.Stop(timeout, syscall.SIGTERM)
	_, err := p.Exited()
	return err
}

// WaitReady polls /readyz until it answers 200, the process exits, or ctx ends.
func (p *Proc) WaitReady(ctx context.Context) error {
	for {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("%s exited before ready (%v):\n%s", p.Name, err, p.LogTail(20))
		}
		resp, err := http.Get("http://" + p.HTTPAddr + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w\n%s", p.Name, ctx.Err(), p.LogTail(20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Metrics scrapes /metrics and returns every sample, keyed by the metric
// name plus its label set as printed ("name" or `name{op="x"}`).
func (p *Proc) Metrics(ctx context.Context) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.HTTPAddr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", p.Name, err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// Metric returns one sample from a scrape, or an error when absent.
func (p *Proc) Metric(ctx context.Context, name string) (float64, error) {
	m, err := p.Metrics(ctx)
	if err != nil {
		return 0, err
	}
	v, ok := m[name]
	if !ok {
		return 0, errors.New("metric " + name + " not exported by " + p.Name)
	}
	return v, nil
}
