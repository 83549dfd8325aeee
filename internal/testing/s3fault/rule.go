package s3fault

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Action is what a rule does to a request it hits.
type Action int

const (
	// Fail answers Rule.Status (default 500) without forwarding.
	Fail Action = iota + 1
	// Slow waits Rule.Delay, then forwards.
	Slow
	// Truncate forwards and cuts a successful response's body after
	// Rule.TruncateAt bytes (default: half its length), then drops the
	// connection, so the client sees a short read.
	Truncate
	// LoseResponse forwards; when the server succeeded, the client gets
	// Rule.Status (default 500) instead: the write happened, the client
	// believes it did not.
	LoseResponse
)

// String names the action.
func (a Action) String() string {
	switch a {
	case Fail:
		return "fail"
	case Slow:
		return "slow"
	case Truncate:
		return "truncate"
	case LoseResponse:
		return "lose-response"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Rule selects requests and the fault applied to them. The first rule
// that matches and fires decides a request's fate.
type Rule struct {
	// Action is the fault.
	Action Action
	// Method restricts the rule to one HTTP method ("PUT"); "" matches any.
	Method string
	// PathContains restricts the rule to URL paths containing it
	// ("/segments/"); "" matches any.
	PathContains string
	// Probability is the chance a matching request is hit (0 means 1).
	Probability float64
	// Count retires the rule after this many hits (0: never).
	Count int
	// Status is the code Fail and LoseResponse answer (default 500).
	Status int
	// Delay is how long Slow waits.
	Delay time.Duration
	// TruncateAt is how many body bytes Truncate lets through (0: half).
	TruncateAt int64
}

// matches reports whether r is one of the rule's requests.
func (rl *Rule) matches(r *http.Request) bool {
	if rl.Method != "" && !strings.EqualFold(rl.Method, r.Method) {
		return false
	}
	return rl.PathContains == "" || strings.Contains(r.URL.Path, rl.PathContains)
}

func (rl *Rule) status() int {
	if rl.Status != 0 {
		return rl.Status
	}
	return http.StatusInternalServerError
}

// ErrorStorm fails requests with status (500 or 503) with probability p
// (count 0: until the rules change).
func ErrorStorm(status int, p float64, count int) Rule {
	return Rule{Action: Fail, Status: status, Probability: p, Count: count}
}

// SlowResponses delays every request by d.
func SlowResponses(d time.Duration) Rule {
	return Rule{Action: Slow, Delay: d}
}

// TruncatedGets cuts successful GET bodies in half with probability p.
func TruncatedGets(p float64, count int) Rule {
	return Rule{Action: Truncate, Method: http.MethodGet, Probability: p, Count: count}
}

// LostPutAcks lets count PUTs whose path contains path succeed upstream
// and tells the client 500.
func LostPutAcks(path string, count int) Rule {
	return Rule{Action: LoseResponse, Method: http.MethodPut, PathContains: path, Count: count}
}
