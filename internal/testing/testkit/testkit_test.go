package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProc_ExitCode(t *testing.T) {
	p := StartT(t, "sh", exec.Command("sh", "-c", "echo one; echo two >&2; exit 3"))
	if code := p.ExitCode(t, 10*time.Second); code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
	if out := p.Output(); out != "one\ntwo\n" {
		t.Fatalf("output %q", out)
	}
}

func TestProc_LogFile(t *testing.T) {
	log := filepath.Join(t.TempDir(), "sleep.log")
	p, err := Start("sleep", exec.Command("sh", "-c", "echo started; exec sleep 60"), log)
	if err != nil {
		t.Fatal(err)
	}
	WaitFor(t, 10*time.Second, "started in the log", func() bool { return strings.Contains(p.Output(), "started") })
	if exited, _ := p.Exited(); exited {
		t.Fatal("exited early")
	}
	if err := p.Stop(5*time.Second, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.ExitCode(t, time.Second); code != -1 {
		t.Fatalf("exit code %d after SIGTERM, want -1", code)
	}
	if b, _ := os.ReadFile(log); string(b) != "started\n" || p.LogTail(1) != "started" {
		t.Fatalf("log %q, tail %q", b, p.LogTail(1))
	}
}

func TestTail(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb", 5, "a\nb"},
		{"", 3, ""},
	} {
		if got := Tail(tc.in, tc.n); got != tc.want {
			t.Errorf("Tail(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestFreePorts(t *testing.T) {
	ports, err := FreePorts(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v", ports)
		}
		seen[p] = true
	}
	if addr := FreeAddrT(t); !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("FreeAddrT = %q", addr)
	}
}

func TestPeakRSS(t *testing.T) {
	rss, err := PeakRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Fatalf("PeakRSS(self) = %d, %v", rss, err)
	}
	if _, err := PeakRSS(-1); err == nil {
		t.Fatal("PeakRSS(-1) succeeded")
	}
}
