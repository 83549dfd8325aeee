package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// machine describes where the run happened.
type machine struct {
	cores    int
	memGiB   float64
	cpu      string
	kernel   string
	goVer    string
	pgVer    string
	hostname string
}

func readMachine() machine {
	m := machine{cores: runtime.NumCPU(), goVer: runtime.Version()}
	m.hostname, _ = os.Hostname()
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
				m.memGiB = kb / (1 << 20)
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command(testrig.DefaultPGBinDir+"/postgres", "--version").Output(); err == nil {
		m.pgVer = strings.TrimSpace(string(out))
	}
	return m
}

func (m machine) String() string {
	return fmt.Sprintf("%d cores (nproc), %.1f GiB memory, %s, Linux %s, %s, %s", m.cores, m.memGiB, m.cpu, m.kernel, m.goVer, m.pgVer)
}

// commandLine reconstructs how bench was invoked: the make target when run
// by make, the BENCH_* environment and the flags.
func commandLine() string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, envPrefix) {
			env = append(env, kv)
		}
	}
	cmd := "go run ./cmd/bench"
	if os.Getenv("MAKELEVEL") != "" {
		cmd = "make bench"
	}
	parts := append(env, cmd)
	return strings.Join(append(parts, os.Args[1:]...), " ")
}
