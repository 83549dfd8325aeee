package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxConns bounds the connections a proxy holds at once; more are
// closed on accept so the proxy's goroutines stay bounded.
const DefaultMaxConns = 256

// chunkSize is the largest chunk forwarded (and delayed) at once.
const chunkSize = 32 << 10

// Options tune a proxy; the zero value is fine.
type Options struct {
	// MaxConns bounds concurrent connections (DefaultMaxConns when 0).
	MaxConns int
	// DialTimeout bounds connecting to the upstream (5s when 0).
	DialTimeout time.Duration
}

// Proxy forwards connections accepted on a loopback port to an upstream
// address, applying the current Fault. It is safe for concurrent use.
type Proxy struct {
	upstream string
	opts     Options
	ln       net.Listener

	mu      sync.Mutex
	fault   Fault
	changed chan struct{} // closed and replaced on every Set
	conns   map[*conn]struct{}
	closed  bool

	wg       sync.WaitGroup
	accepted atomic.Int64
	refused  atomic.Int64
	bytes    atomic.Int64
}

// Stats counts what a proxy has seen.
type Stats struct {
	// Accepted counts accepted client connections.
	Accepted int64
	// Refused counts connections closed on accept (fault or MaxConns).
	Refused int64
	// Active is the number of connections currently held.
	Active int
	// Bytes counts bytes forwarded in both directions.
	Bytes int64
}

// New starts a proxy listening on 127.0.0.1 at a free port and forwarding
// to upstream ("host:port") in Pass mode.
func New(upstream string, opts Options) (*Proxy, error) {
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for proxy to %s: %w", upstream, err)
	}
	p := &Proxy{
		upstream: upstream,
		opts:     opts,
		ln:       ln,
		changed:  make(chan struct{}),
		conns:    map[*conn]struct{}{},
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr returns the proxy's listening address ("127.0.0.1:PORT").
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Upstream returns the address the proxy forwards to.
func (p *Proxy) Upstream() string { return p.upstream }

// Fault returns the current fault.
func (p *Proxy) Fault() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault
}

// Set switches the fault. Switching to Drop or Reset ends every existing
// connection at once; switching away from Blackhole unfreezes the
// connections that existed before it.
func (p *Proxy) Set(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
	close(p.changed)
	p.changed = make(chan struct{})
	if f.Mode == Drop || f.Mode == Reset {
		for c := range p.conns {
			c.abort(f.Mode == Reset)
		}
	}
}

// SetMode switches to mode m keeping the current latency.
func (p *Proxy) SetMode(m Mode) {
	f := p.Fault()
	f.Mode = m
	p.Set(f)
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := len(p.conns)
	p.mu.Unlock()
	return Stats{Accepted: p.accepted.Load(), Refused: p.refused.Load(), Active: active, Bytes: p.bytes.Load()}
}

// Close stops accepting, ends every connection and waits for the proxy's
// goroutines to finish.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	err := p.ln.Close()
	for c := range p.conns {
		c.abort(false)
	}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE: back off
			continue
		}
		p.accepted.Add(1)
		p.admit(nc)
	}
}

// admit applies the current fault to a new connection and starts serving
// it when the fault lets it through.
func (p *Proxy) admit(nc net.Conn) {
	p.mu.Lock()
	f := p.fault
	if p.closed || len(p.conns) >= p.opts.MaxConns || f.Mode == Drop || f.Mode == Reset {
		p.mu.Unlock()
		p.refused.Add(1)
		if f.Mode == Reset {
			setLingerZero(nc)
		}
		nc.Close()
		return
	}
	c := &conn{client: nc, done: make(chan struct{}), dead: f.Mode == Blackhole}
	p.conns[c] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()
	go p.serve(c)
}

// serve dials the upstream and pipes both directions until either ends.
func (p *Proxy) serve(c *conn) {
	defer p.wg.Done()
	defer p.forget(c)
	if c.dead {
		_, _ = io.Copy(io.Discard, c.client)
		c.abort(false)
		return
	}
	up, err := net.DialTimeout("tcp", p.upstream, p.opts.DialTimeout)
	if err != nil {
		c.abort(true)
		return
	}
	if !c.attach(up) {
		up.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(c, up, c.client) }()
	go func() { defer wg.Done(); p.pipe(c, c.client, up) }()
	wg.Wait()
}

// pipe copies src to dst chunk by chunk, passing each through the gate;
// it ends the whole connection when either side ends.
func (p *Proxy) pipe(c *conn, dst, src net.Conn) {
	defer c.abort(false)
	buf := make([]byte, chunkSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.gate(c) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			p.bytes.Add(int64(n))
		}
		if err != nil {
			return
		}
	}
}

// gate holds a chunk while the proxy is blackholed, delays it in Delay
// mode, and reports whether it may be forwarded.
func (p *Proxy) gate(c *conn) bool {
	for {
		p.mu.Lock()
		f, changed, closed := p.fault, p.changed, p.closed
		p.mu.Unlock()
		if closed {
			return false
		}
		switch f.Mode {
		case Blackhole:
			select {
			case <-changed:
				continue
			case <-c.done:
				return false
			}
		case Delay:
			t := time.NewTimer(f.Latency)
			select {
			case <-t.C:
				return true
			case <-c.done:
				t.Stop()
				return false
			}
		case Drop, Reset:
			return false
		default:
			return true
		}
	}
}

func (p *Proxy) forget(c *conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// conn is one proxied connection.
type conn struct {
	client net.Conn
	dead   bool // accepted while blackholed: never forwarded

	mu       sync.Mutex
	upstream net.Conn
	aborted  bool
	done     chan struct{}
}

// attach records the upstream connection; false when already aborted.
func (c *conn) attach(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		return false
	}
	c.upstream = up
	return true
}

// abort closes both sides once, with an RST when rst is set.
func (c *conn) abort(rst bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		return
	}
	c.aborted = true
	close(c.done)
	for _, nc := range []net.Conn{c.client, c.upstream} {
		if nc == nil {
			continue
		}
		if rst {
			setLingerZero(nc)
		}
		nc.Close()
	}
}

// setLingerZero makes Close send an RST instead of a FIN.
func setLingerZero(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}
