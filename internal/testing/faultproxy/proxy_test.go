package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startEcho starts a line echo server and returns its address.
func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func newProxy(t *testing.T, opts Options) *Proxy {
	t.Helper()
	p, err := New(startEcho(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes a line and reads the echo within timeout.
func roundTrip(c net.Conn, line string, timeout time.Duration) (string, error) {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return got, err
	}
	return got[:len(got)-1], nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{Pass, Delay, Drop, Blackhole, Reset} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", m.String(), got, err, m)
		}
	}
	if _, err := ParseMode("explode"); err == nil {
		t.Error("ParseMode(explode): want an error")
	}
}

func TestProxy_Pass(t *testing.T) {
	p := newProxy(t, Options{})
	c := dial(t, p)
	for _, line := range []string{"hello", "world"} {
		got, err := roundTrip(c, line, 5*time.Second)
		if err != nil || got != line {
			t.Fatalf("round trip %q = %q, %v", line, got, err)
		}
	}
	if s := p.Stats(); s.Accepted != 1 || s.Active != 1 || s.Bytes == 0 {
		t.Errorf("stats = %+v; want 1 accepted, 1 active, some bytes", s)
	}
}

func TestProxy_Delay(t *testing.T) {
	p := newProxy(t, Options{})
	p.Set(Fault{Mode: Delay, Latency: 150 * time.Millisecond})
	c := dial(t, p)
	start := time.Now()
	got, err := roundTrip(c, "slow", 5*time.Second)
	if err != nil || got != "slow" {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	// Both directions are delayed: the round trip cannot be faster than
	// twice the latency (a lower bound, so this cannot flake).
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Errorf("round trip took %v; want >= 300ms", el)
	}
}

func TestProxy_Drop(t *testing.T) {
	p := newProxy(t, Options{})
	old := dial(t, p)
	if _, err := roundTrip(old, "before", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.SetMode(Drop)
	if _, err := roundTrip(old, "after", 5*time.Second); err == nil || isTimeout(err) {
		t.Errorf("existing connection after drop: err = %v; want closed", err)
	}
	fresh := dial(t, p)
	if _, err := roundTrip(fresh, "new", 5*time.Second); err == nil || isTimeout(err) {
		t.Errorf("new connection during drop: err = %v; want closed", err)
	}
	p.SetMode(Pass)
	healed := dial(t, p)
	if got, err := roundTrip(healed, "healed", 5*time.Second); err != nil || got != "healed" {
		t.Errorf("after heal: %q, %v", got, err)
	}
}

func TestProxy_Reset(t *testing.T) {
	p := newProxy(t, Options{})
	old := dial(t, p)
	if _, err := roundTrip(old, "before", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.SetMode(Reset)
	_, err := roundTrip(old, "after", 5*time.Second)
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Errorf("existing connection after reset: err = %v; want ECONNRESET", err)
	}
	// The RST may arrive before connect returns, or on the first read.
	fresh, err := net.Dial("tcp", p.Addr())
	if err == nil {
		defer fresh.Close()
		_, err = roundTrip(fresh, "new", 5*time.Second)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Errorf("new connection during reset: err = %v; want ECONNRESET", err)
	}
}

func TestProxy_Blackhole(t *testing.T) {
	p := newProxy(t, Options{})
	old := dial(t, p)
	if _, err := roundTrip(old, "before", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.SetMode(Blackhole)
	if _, err := roundTrip(old, "frozen", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("existing connection in blackhole: err = %v; want a timeout", err)
	}
	fresh := dial(t, p)
	if _, err := roundTrip(fresh, "void", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("new connection in blackhole: err = %v; want a timeout", err)
	}

	p.SetMode(Pass)
	// The frozen connection resumes: its held line is echoed now.
	old.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := bufio.NewReader(old).ReadString('\n')
	if err != nil || got != "frozen\n" {
		t.Errorf("existing connection after heal: %q, %v; want the held line", got, err)
	}
	// A connection born in the blackhole stays dead.
	if _, err := roundTrip(fresh, "still", 300*time.Millisecond); !isTimeout(err) {
		t.Errorf("blackholed connection after heal: err = %v; want a timeout", err)
	}
}

func TestProxy_MaxConns(t *testing.T) {
	p := newProxy(t, Options{MaxConns: 1})
	first := dial(t, p)
	if _, err := roundTrip(first, "one", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	second := dial(t, p)
	if _, err := roundTrip(second, "two", 5*time.Second); err == nil || isTimeout(err) {
		t.Errorf("connection over the limit: err = %v; want closed", err)
	}
	if s := p.Stats(); s.Refused != 1 {
		t.Errorf("refused = %d; want 1", s.Refused)
	}
}

func TestProxy_Close(t *testing.T) {
	p, err := New(startEcho(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	if _, err := roundTrip(c, "x", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.SetMode(Blackhole)
	stuck := dial(t, p)
	_, _ = io.WriteString(stuck, "void\n")
	if err := p.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if s := p.Stats(); s.Active != 0 {
		t.Errorf("active after close = %d; want 0", s.Active)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("read after close: err = %v; want closed", err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("dial after close succeeded")
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("dial after close timed out; want refused")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func TestProxy_UnreachableUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p, err := New(addr, Options{DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err == nil { // the RST may also arrive before connect returns
		defer c.Close()
		_, err = roundTrip(c, "x", 5*time.Second)
	}
	if err == nil || isTimeout(err) {
		t.Errorf("round trip to a dead upstream: err = %v; want closed", err)
	}
}
