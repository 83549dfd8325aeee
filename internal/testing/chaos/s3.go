package chaos

import (
	"net/http"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/testing/s3fault"
)

func init() {
	register(
		Scenario{
			Name:    "s3-error-storm",
			Injects: "the S3 server answers half of the archiver's requests with 500 or 503 for 6-10 s, twice, under load",
			Checks:  "I1-I6",
			Short:   true,
			Run: func(e *Env) error {
				return s3Storm(e, func(e *Env) []s3fault.Rule {
					status := http.StatusInternalServerError
					if e.Rand.IntN(2) == 1 {
						status = http.StatusServiceUnavailable
					}
					return []s3fault.Rule{s3fault.ErrorStorm(status, 0.5, 0)}
				}, [2]time.Duration{6 * time.Second, 10 * time.Second})
			},
		},
		Scenario{
			Name:    "s3-total-outage",
			Injects: "every S3 request of the archiver fails with 503 for 12-16 s under load (longer than the SDK's retries), then the server comes back",
			Checks:  "I1-I6",
			Run: func(e *Env) error {
				return s3Storm(e, func(*Env) []s3fault.Rule {
					return []s3fault.Rule{s3fault.ErrorStorm(http.StatusServiceUnavailable, 1, 0)}
				}, [2]time.Duration{12 * time.Second, 16 * time.Second})
			},
		},
		Scenario{
			Name:    "s3-slow",
			Injects: "every S3 request of the archiver takes 1.5 s longer for 6-10 s, twice, under load",
			Checks:  "I1-I6",
			Run: func(e *Env) error {
				return s3Storm(e, func(*Env) []s3fault.Rule {
					return []s3fault.Rule{s3fault.SlowResponses(1500 * time.Millisecond)}
				}, [2]time.Duration{6 * time.Second, 10 * time.Second})
			},
		},
		Scenario{
			Name:    "s3-lost-put-ack",
			Injects: "segment and catalog PUTs succeed on the S3 server while the archiver is told 500 (3 segments, 3 catalog entries), under load",
			Checks:  "I1-I6",
			Run: func(e *Env) error {
				return s3Storm(e, func(*Env) []s3fault.Rule {
					return []s3fault.Rule{s3fault.LostPutAcks("/segments/", 3), s3fault.LostPutAcks("/catalog/entries/", 3)}
				}, [2]time.Duration{6 * time.Second, 8 * time.Second})
			},
		},
		Scenario{
			Name:    "s3-truncated-restore",
			Injects: "during the checked restores, segment GET bodies are cut in half (probability 0.3, 6 in all), so the restorer reads short objects",
			Checks:  "I1-I6; a restore that fails must name the object and leave whole transactions only (I4), and its rerun resumes to the oracle's content",
			Run:     s3TruncatedRestore,
		},
	)
}

// s3Proxy starts an S3 fault proxy in front of the rig's server and
// returns it with the store URL that goes through it.
func (e *Env) s3Proxy() (*s3fault.Proxy, string, error) {
	p, err := s3fault.New(e.H.S3.Endpoint, e.Seed)
	if err != nil {
		return nil, "", err
	}
	e.Defer(func() { p.Close() })
	return p, strings.Replace(e.H.StoreURL, e.H.S3.Endpoint, p.URL(), 1), nil
}

// s3Storm routes the archiver through an S3 fault proxy and applies the
// rules twice at seeded instants under load.
func s3Storm(e *Env, rules func(*Env) []s3fault.Rule, hold [2]time.Duration) error {
	var proxy *s3fault.Proxy
	err := e.Boot(Setup{Store: "s3", BeforeStart: func(e *Env) error {
		p, url, err := e.s3Proxy()
		proxy = p
		e.setup.ArchiverVia.StoreURL = url
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
		proxy.SetRules(rules(e)...)
		err := e.Sleep(e.Between(hold[0], hold[1]))
		proxy.Clear()
		if err != nil {
			return err
		}
	}
	st := proxy.Stats()
	e.Note("s3_requests=%d failed=%d slowed=%d lost_acks=%d", st.Requests, st.Hits[s3fault.Fail], st.Hits[s3fault.Slow], st.Hits[s3fault.LoseResponse])
	return e.Finish(CheckOptions{})
}

// s3TruncatedRestore archives normally, then restores through a proxy that
// truncates segment GETs: each restore either succeeds and matches the
// oracle, or fails cleanly and succeeds when run again.
func s3TruncatedRestore(e *Env) error {
	if err := e.Boot(Setup{Store: "s3"}); err != nil {
		return err
	}
	proxy, url, err := e.s3Proxy()
	if err != nil {
		return err
	}
	e.StartLoad(10*time.Second, 0)
	if err := e.Settle(2 * time.Minute); err != nil {
		return err
	}
	proxy.SetRules(s3fault.Rule{Action: s3fault.Truncate, Method: http.MethodGet, PathContains: "/segments/", Probability: 0.3, Count: 6})
	err = e.Finish(CheckOptions{RestoreStoreURL: url, RestoreArgs: []string{"--parallel", "2"}, RetryRestores: 8})
	st := proxy.Stats()
	e.Note("truncated=%d", st.Hits[s3fault.Truncate])
	return err
}
