package bench

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the kernel's USER_HZ: /proc times are in 1/100 s on Linux.
const clockTick = 10 * time.Millisecond

// procCPU returns the CPU time (user + system) pid has used, and its
// parent's pid; ok is false when the process is gone.
func procCPU(pid int) (cpu time.Duration, ppid int, ok bool) {
	cpu, _, ppid, ok = procTimes(pid)
	return cpu, ppid, ok
}

// procTimes returns pid's own CPU time, the CPU time of its children that
// exited and were waited for, and its parent's pid.
func procTimes(pid int) (cpu, reaped time.Duration, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	// The command name may hold spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	var t [4]int64 // utime, stime, cutime, cstime
	for j := range t {
		t[j], _ = strconv.ParseInt(f[11+j], 10, 64)
	}
	return time.Duration(t[0]+t[1]) * clockTick, time.Duration(t[2]+t[3]) * clockTick, ppid, true
}

// treeCPU returns the CPU time of pid and of its children, live or
// exited (a postmaster and its backends, walsenders and workers: the
// postmaster waits for each, so an exited one's time is in its cutime).
func treeCPU(pid int) time.Duration {
	own, reaped, _, ok := procTimes(pid)
	if !ok {
		return 0
	}
	total := own + reaped
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if cpu, ppid, ok := procCPU(child); ok && ppid == pid {
			total += cpu
		}
	}
	return total
}

// machineBusy returns the CPU time all processes on the machine used
// (every core's non-idle time in /proc/stat), and the number of cores.
func machineBusy() (time.Duration, int) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	var busy int64
	cores := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			cores++
			continue
		}
		for j, v := range f[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			if j == 3 || j == 4 { // idle, iowait
				continue
			}
			busy += n
		}
	}
	return time.Duration(busy) * clockTick, cores
}

// CPUUse is how much CPU each party used during one phase of a run.
type CPUUse struct {
	// Phase names the phase ("capture drain").
	Phase string
	// Wall is the phase's duration.
	Wall time.Duration
	// By maps a party ("capture", "nats-server", "postgres", "bench",
	// "pg_recvlogical", …) to the CPU time it used.
	By map[string]time.Duration
	// Machine is the CPU time every process on the machine used; Cores
	// the machine's cores. Machine − the parties above is other load.
	Machine time.Duration
	Cores   int
}

// party is a process (tree) whose CPU time is accounted.
type party struct {
	pid  int
	tree bool // include its children (a postmaster's backends)
}

func (p party) cpu() time.Duration {
	if p.tree {
		return treeCPU(p.pid)
	}
	cpu, _, _ := procCPU(p.pid)
	return cpu
}

// cpuMeter measures the CPU time of parties over one phase. Parties are
// listed again at the end, so a process started during the phase counts
// from zero.
type cpuMeter struct {
	parties func() map[string]party
	start   time.Time
	before  map[string]time.Duration
	machine time.Duration
}

func newCPUMeter(parties func() map[string]party) *cpuMeter {
	m := &cpuMeter{parties: parties, start: time.Now(), before: map[string]time.Duration{}}
	for name, p := range parties() {
		m.before[name] = p.cpu()
	}
	m.machine, _ = machineBusy()
	return m
}

// stop returns the use since newCPUMeter; extra adds parties measured
// otherwise (a child that exited: its rusage).
func (m *cpuMeter) stop(phase string, extra map[string]time.Duration) CPUUse {
	u := CPUUse{Phase: phase, Wall: time.Since(m.start), By: map[string]time.Duration{}}
	for name, p := range m.parties() {
		if d := p.cpu() - m.before[name]; d > 0 {
			u.By[name] = d
		}
	}
	for name, d := range extra {
		u.By[name] += d
	}
	busy, cores := machineBusy()
	u.Machine, u.Cores = busy-m.machine, cores
	return u
}

// selfPID is this process, the "bench" party (the loaders, probes and
// baselines that run in-process).
var selfPID = os.Getpid()
