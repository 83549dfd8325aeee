package chaos

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/testing/faultproxy"
)

// link names a connection the network scenarios break.
type link string

const (
	captureToPG    link = "capture-pg"
	captureToNATS  link = "capture-nats"
	archiverToNATS link = "archiver-nats"
)

func init() {
	for _, s := range []struct {
		link  link
		fault faultproxy.Fault
		hold  [2]time.Duration
		what  string
	}{
		{captureToPG, faultproxy.Fault{Mode: faultproxy.Drop}, [2]time.Duration{2 * time.Second, 5 * time.Second}, "every capture↔PostgreSQL connection closed, new ones refused, for 2-5 s, twice"},
		{captureToPG, faultproxy.Fault{Mode: faultproxy.Delay, Latency: 150 * time.Millisecond}, [2]time.Duration{4 * time.Second, 8 * time.Second}, "150 ms added to every chunk between capture and PostgreSQL for 4-8 s, twice"},
		{captureToPG, faultproxy.Fault{Mode: faultproxy.Reset}, [2]time.Duration{time.Second, 3 * time.Second}, "capture↔PostgreSQL connections reset (TCP RST) and new ones reset for 1-3 s, twice"},
		{captureToPG, faultproxy.Fault{Mode: faultproxy.Blackhole}, [2]time.Duration{4 * time.Second, 8 * time.Second}, "capture↔PostgreSQL traffic frozen (blackhole) for 4-8 s, twice"},
		{captureToNATS, faultproxy.Fault{Mode: faultproxy.Blackhole}, [2]time.Duration{4 * time.Second, 8 * time.Second}, "capture↔NATS traffic frozen (blackhole) for 4-8 s, twice"},
		{captureToNATS, faultproxy.Fault{Mode: faultproxy.Reset}, [2]time.Duration{time.Second, 3 * time.Second}, "capture↔NATS connections reset (TCP RST) for 1-3 s, twice"},
		{archiverToNATS, faultproxy.Fault{Mode: faultproxy.Drop}, [2]time.Duration{2 * time.Second, 5 * time.Second}, "archiver↔NATS connections closed and refused for 2-5 s, twice"},
		{archiverToNATS, faultproxy.Fault{Mode: faultproxy.Blackhole}, [2]time.Duration{4 * time.Second, 8 * time.Second}, "archiver↔NATS traffic frozen (blackhole) for 4-8 s, twice"},
	} {
		register(Scenario{
			Name:    fmt.Sprintf("link-%s-%s", s.link, s.fault.Mode),
			Injects: s.what + ", through a TCP fault proxy, under load",
			Checks:  "I1-I6",
			Run: func(e *Env) error {
				return linkFault(e, s.link, s.fault, s.hold)
			},
		})
	}
}

// linkFault routes one link through a fault proxy, applies the fault twice
// at seeded instants under load, and checks everything once it healed.
func linkFault(e *Env, l link, f faultproxy.Fault, hold [2]time.Duration) error {
	var proxy *faultproxy.Proxy
	err := e.Boot(Setup{BeforeStart: func(e *Env) error {
		var err error
		switch l {
		case captureToPG:
			proxy, err = e.proxyTo(fmt.Sprintf("127.0.0.1:%d", e.H.PG.Port))
			if err == nil {
				e.setup.CaptureVia.PGURL = strings.Replace(e.H.SourceURL, fmt.Sprintf("127.0.0.1:%d", e.H.PG.Port), proxy.Addr(), 1)
			}
		case captureToNATS, archiverToNATS:
			proxy, err = e.proxyTo(natsHostPort(e.H.NATSURL))
			if err == nil && l == captureToNATS {
				e.setup.CaptureVia.NATSURL = "nats://" + proxy.Addr()
			} else if err == nil {
				e.setup.ArchiverVia.NATSURL = "nats://" + proxy.Addr()
			}
		}
		return err
	}})
	if err != nil {
		return err
	}
	e.StartLoad(20*time.Second, 0)
	for range 2 {
		if err := e.Sleep(e.Between(2*time.Second, 4*time.Second)); err != nil {
			return err
		}
		e.Mark()
		proxy.Set(f)
		err := e.Sleep(e.Between(hold[0], hold[1]))
		proxy.Set(faultproxy.Fault{Mode: faultproxy.Pass})
		if err != nil {
			return err
		}
	}
	st := proxy.Stats()
	e.Note("proxy_conns=%d refused=%d", st.Accepted, st.Refused)
	return e.Finish(CheckOptions{})
}

// proxyTo starts a TCP fault proxy to addr, closed when the scenario ends.
func (e *Env) proxyTo(addr string) (*faultproxy.Proxy, error) {
	p, err := faultproxy.New(addr, faultproxy.Options{})
	if err != nil {
		return nil, err
	}
	e.Defer(func() { p.Close() })
	return p, nil
}

// natsHostPort returns host:port of the first NATS URL.
func natsHostPort(urls string) string {
	first, _, _ := strings.Cut(urls, ",")
	u, err := url.Parse(first)
	if err != nil {
		return first
	}
	return u.Host
}
