package deploytest

import (
	"slices"
	"testing"
)

// promqlKeywords are PromQL words that are never metric names: aggregation
// and set operators and the modifiers of vector matching and grouping.
var promqlKeywords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
	"and": true, "or": true, "unless": true, "atan2": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "offset": true, "start": true, "end": true, "inf": true, "nan": true,
}

// labelListKeywords are followed by a parenthesised list of label names.
var labelListKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// promqlMetricNames returns the metric names a PromQL expression selects, in
// order of appearance, without duplicates. It is a lexer, not a parser: it
// skips strings, label matchers ({…}), range and subquery durations ([…]),
// label lists after by/without/on/ignoring/group_left/group_right, numbers,
// Grafana variables ($x, ${x}), function names (an identifier followed by
// "(") and keywords; every other identifier is a metric name.
func promqlMetricNames(expr string) []string {
	var names []string
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || (c|0x20) >= 'a' && (c|0x20) <= 'z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\t' || expr[i] == '\n' || expr[i] == '\r') {
			i++
		}
		return i
	}
	// skipTo returns the index after the first close at or after i, skipping strings.
	skipTo := func(i int, close byte) int {
		for i < len(expr) && expr[i] != close {
			if q := expr[i]; q == '"' || q == '\'' || q == '`' {
				for i++; i < len(expr) && expr[i] != q; i++ {
					if expr[i] == '\\' && q != '`' {
						i++
					}
				}
			}
			i++
		}
		return i + 1
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipTo(i+1, c)
		case c == '{':
			i = skipTo(i+1, '}')
		case c == '[':
			i = skipTo(i+1, ']')
		case c == '#':
			i = skipTo(i+1, '\n')
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				i = skipTo(i+1, '}')
				continue
			}
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			start := i
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
			word := expr[start:i]
			next := skipSpace(i)
			switch {
			case labelListKeywords[word]:
				if next < len(expr) && expr[next] == '(' {
					i = skipTo(next+1, ')')
				}
			case promqlKeywords[word]:
			case next < len(expr) && expr[next] == '(':
				// a function call
			default:
				if !slices.Contains(names, word) {
					names = append(names, word)
				}
			}
		default:
			i++
		}
	}
	return names
}

func TestPromqlMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up{job="tidemark-capture"} == 0 or absent(up{job="tidemark-capture"})`, []string{"up"}},
		{`sum by (table, op) (increase(tidemark_capture_tamper_events_total[15m])) > 0`, []string{"tidemark_capture_tamper_events_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket[$__rate_interval])))`, []string{"x_seconds_bucket"}},
		{`sum(rate(a_total[5m])) by (operation) / on (instance) group_left (pod) b`, []string{"a_total", "b"}},
		{`max(a and on (instance, job) b == 1) > 20 * 1024^3`, []string{"a", "b"}},
		{`a unless a offset 15m`, []string{"a"}},
		{`time() - max(kube_cronjob_status_last_successful_time{cronjob="tidemark-verify"}) > 26 * 3600`, []string{"kube_cronjob_status_last_successful_time"}},
		{`sum(increase(a_total[${__range}])) or vector(0)`, []string{"a_total"}},
		{`count_values("v", b) + c{l=~"x{1,2}"} + 1e3 + 0x1F + inf`, []string{"b", "c"}},
		{`deriv(p[15m:1m]) > 0 and on () max (q) > bool 1`, []string{"p", "q"}},
		{`rate(ns:rule:sum[1m])`, []string{"ns:rule:sum"}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			if got := promqlMetricNames(tt.expr); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
