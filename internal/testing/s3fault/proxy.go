package s3fault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Proxy is a fault-injecting reverse proxy for one S3 endpoint. It is safe
// for concurrent use.
type Proxy struct {
	upstream *url.URL
	srv      *http.Server
	ln       net.Listener
	rp       *httputil.ReverseProxy
	done     chan struct{}

	mu    sync.Mutex
	rules []*ruleState
	rng   *rand.Rand
	stats Stats
	tiers *tierState
}

type ruleState struct {
	Rule
	left int // hits left when Count > 0
}

// Stats counts requests and injected faults.
type Stats struct {
	// Requests counts every request received.
	Requests int64
	// Hits counts injected faults by action.
	Hits map[Action]int64
}

type ctxKey struct{}

// New starts a proxy on a free 127.0.0.1 port forwarding to upstream
// ("http://127.0.0.1:PORT"); seed makes probabilistic rules reproducible
// for a given request order.
func New(upstream string, seed uint64) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("parse upstream %q: want http://host:port", upstream)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for s3 proxy: %w", err)
	}
	p := &Proxy{
		upstream: u,
		ln:       ln,
		done:     make(chan struct{}),
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		stats:    Stats{Hits: map[Action]int64{}},
	}
	p.rp = &httputil.ReverseProxy{
		// Rewrite keeps the Host the client signed (the proxy's address)
		// and every end-to-end header; only the dial target changes.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = u.Scheme
			pr.Out.URL.Host = u.Host
			pr.Out.Host = pr.In.Host
		},
		ModifyResponse: p.modifyResponse,
		ErrorLog:       log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			writeS3Error(w, http.StatusBadGateway, "upstream: "+err.Error())
		},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// URL returns the proxy's endpoint ("http://127.0.0.1:PORT"): give it to
// the client instead of the server's.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// SetRules replaces the rules.
func (p *Proxy) SetRules(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = p.rules[:0]
	for _, r := range rules {
		p.rules = append(p.rules, &ruleState{Rule: r, left: r.Count})
	}
}

// Clear removes every rule: requests pass untouched.
func (p *Proxy) Clear() { p.SetRules() }

// Stats returns a copy of the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Requests: p.stats.Requests, Hits: map[Action]int64{}}
	for k, v := range p.stats.Hits {
		s.Hits[k] = v
	}
	return s
}

// Close stops the proxy, closing open connections.
func (p *Proxy) Close() error {
	err := p.srv.Close()
	<-p.done
	return err
}

// pick returns the rule that hits r, if any, and counts the hit.
func (p *Proxy) pick(r *http.Request) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Requests++
	for _, rs := range p.rules {
		if rs.Count > 0 && rs.left <= 0 || !rs.matches(r) {
			continue
		}
		if rs.Probability > 0 && rs.Probability < 1 && p.rng.Float64() >= rs.Probability {
			continue
		}
		if rs.Count > 0 {
			rs.left--
		}
		if rs.Action == Fail || rs.Action == Slow { // the others count once the upstream succeeded
			p.stats.Hits[rs.Action]++
		}
		rule := rs.Rule
		return &rule
	}
	return nil
}

func (p *Proxy) count(a Action) {
	p.mu.Lock()
	p.stats.Hits[a]++
	p.mu.Unlock()
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	if p.serveTiers(w, r) {
		return
	}
	rule := p.pick(r)
	if rule == nil {
		p.rp.ServeHTTP(w, r)
		return
	}
	switch rule.Action {
	case Fail:
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
		writeS3Error(w, rule.status(), "injected fault")
		return
	case Slow:
		t := time.NewTimer(rule.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, rule)))
}

// modifyResponse applies Truncate and LoseResponse to a successful
// upstream response.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	rule, _ := resp.Request.Context().Value(ctxKey{}).(*Rule)
	if rule == nil || resp.StatusCode/100 != 2 {
		return nil
	}
	switch rule.Action {
	case Truncate:
		keep := rule.TruncateAt
		if keep <= 0 {
			keep = resp.ContentLength / 2
		}
		if resp.ContentLength >= 0 && keep >= resp.ContentLength {
			return nil
		}
		p.count(Truncate)
		resp.Body = &truncated{rc: resp.Body, left: keep}
	case LoseResponse:
		p.count(LoseResponse)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		body := s3ErrorBody(rule.status(), "injected fault after the upstream succeeded")
		resp.StatusCode = rule.status()
		resp.Status = strconv.Itoa(rule.status()) + " " + http.StatusText(rule.status())
		resp.Header = http.Header{"Content-Type": {"application/xml"}}
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		resp.Body = io.NopCloser(stringsReader(body))
	}
	return nil
}

// truncated passes left bytes, then fails, which makes the reverse proxy
// abort the response mid-body.
type truncated struct {
	rc   io.ReadCloser
	left int64
}

var errTruncated = errors.New("s3fault: body truncated")

func (t *truncated) Read(b []byte) (int, error) {
	if t.left <= 0 {
		return 0, errTruncated
	}
	if int64(len(b)) > t.left {
		b = b[:t.left]
	}
	n, err := t.rc.Read(b)
	t.left -= int64(n)
	return n, err
}

func (t *truncated) Close() error { return t.rc.Close() }
