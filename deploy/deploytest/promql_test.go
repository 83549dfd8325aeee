package deploytest

import (
	"regexp"
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
// order of appearance, without duplicates.
func promqlMetricNames(expr string) []string {
	names, _ := lexPromQL(expr)
	return names
}

// promqlLabelNames returns the label names an expression uses in matchers
// ({label="…"}) and in by/without/on/ignoring/group_left/group_right lists.
func promqlLabelNames(expr string) []string {
	_, labels := lexPromQL(expr)
	return labels
}

// lexPromQL returns the metric and label names of a PromQL expression. It
// is a lexer, not a parser: it skips strings, range and subquery durations
// ([…]), numbers, Grafana variables ($x, ${x}), function names (an
// identifier followed by "(") and keywords; identifiers in label matchers
// and label lists are labels, every other identifier is a metric name.
func lexPromQL(expr string) (names, labels []string) {
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || (c|0x20) >= 'a' && (c|0x20) <= 'z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\t' || expr[i] == '\n' || expr[i] == '\r') {
			i++
		}
		return i
	}
	// skipString returns the index after the string that starts at i.
	skipString := func(i int) int {
		q := expr[i]
		for i++; i < len(expr) && expr[i] != q; i++ {
			if expr[i] == '\\' && q != '`' {
				i++
			}
		}
		return i + 1
	}
	// skipTo returns the index after the first close at or after i, skipping strings.
	skipTo := func(i int, close byte) int {
		for i < len(expr) && expr[i] != close {
			if q := expr[i]; q == '"' || q == '\'' || q == '`' {
				i = skipString(i)
				continue
			}
			i++
		}
		return i + 1
	}
	addUnique := func(list *[]string, w string) {
		if !slices.Contains(*list, w) {
			*list = append(*list, w)
		}
	}
	// identsUntil collects the identifiers up to close (a label list or
	// matchers), skipping strings; in matchers only the names before an
	// operator count.
	identsUntil := func(i int, close byte, matchers bool) int {
		for i < len(expr) && expr[i] != close {
			c := expr[i]
			switch {
			case c == '"' || c == '\'' || c == '`':
				i = skipString(i)
			case isIdentStart(c):
				start := i
				for i < len(expr) && isIdent(expr[i]) {
					i++
				}
				next := skipSpace(i)
				if !matchers || next < len(expr) && (expr[next] == '=' || expr[next] == '!') {
					addUnique(&labels, expr[start:i])
				}
			default:
				i++
			}
		}
		return i + 1
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(i)
		case c == '{':
			i = identsUntil(i+1, '}', true)
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
					i = identsUntil(next+1, ')', false)
				}
			case promqlKeywords[word]:
			case next < len(expr) && expr[next] == '(':
				// a function call
			default:
				addUnique(&names, word)
			}
		default:
			i++
		}
	}
	return names, labels
}

// legendLabels returns the labels a Grafana legend format uses ({{label}}).
func legendLabels(format string) []string {
	var out []string
	for _, m := range legendRE.FindAllStringSubmatch(format, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

var legendRE = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

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

func TestPromqlLabelNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up{job="tidemark-capture", instance!~"a{1,2}"} == 0`, []string{"job", "instance"}},
		{`sum by (table, op) (increase(x[15m])) > 0`, []string{"table", "op"}},
		{`sum(rate(a[5m])) without(le) / on (instance) group_left (pod) b{c="by (x)"}`, []string{"le", "instance", "pod", "c"}},
		{`histogram_quantile(0.5, sum by (le, operation) (rate(x_bucket[$__rate_interval])))`, []string{"le", "operation"}},
		{`max(a)`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			if got := promqlLabelNames(tt.expr); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if got := legendLabels("{{table}} {{ op }} p99 {{table}}"); !slices.Equal(got, []string{"table", "op"}) {
		t.Errorf("legendLabels = %q", got)
	}
}
