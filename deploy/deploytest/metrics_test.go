package deploytest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// externalMetric is a metric some other exporter provides.
type externalMetric struct {
	source string
	labels []string // beyond the target labels
}

// externalMetrics are metrics the dashboard and alerts may query although no
// Tidemark program exports them, with who does.
var externalMetrics = map[string]externalMetric{
	"up": {source: "Prometheus: the health of every scrape target"},
	// The verify CronJob on Kubernetes (deploy/kubernetes/base/verify-cronjob.yaml).
	"kube_job_failed":                          {source: "kube-state-metrics", labels: []string{"job_name", "condition", "reason"}},
	"kube_cronjob_status_last_successful_time": {source: "kube-state-metrics", labels: []string{"cronjob"}},
	// The verify timer on VMs: node_exporter's textfile collector reads what
	// deploy/systemd/tidemark-verify-report writes (TestVerifyReport_Textfile
	// runs it and checks these names).
	"tidemark_verify_last_exit_code":                 {source: textfileScript},
	"tidemark_verify_last_success_timestamp_seconds": {source: textfileScript},
	// The drill timer on VMs: deploy/systemd/tidemark-drill-report.
	"tidemark_drill_job_last_exit_code":                 {source: drillTextfileScript},
	"tidemark_drill_job_last_success_timestamp_seconds": {source: drillTextfileScript},
}

// targetLabels are attached to every scraped series by Prometheus and the
// scrape configurations (scrape-kubernetes.yaml adds namespace and pod).
var targetLabels = []string{"job", "instance", "namespace", "pod"}

const (
	textfileScript      = "deploy/systemd/tidemark-verify-report"
	drillTextfileScript = "deploy/systemd/tidemark-drill-report"
)

// exportDirs are the source trees of the programs.
var exportDirs = []string{"internal", "cmd"}

// promExpr is a PromQL expression and where it comes from.
type promExpr struct {
	where  string
	expr   string
	legend string // Grafana legend format, if any
}

// alertRules is the Prometheus rule file.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadAlerts(tb testing.TB) alertRules {
	tb.Helper()
	docs := yamlDocs[alertRules](tb, deployPath(tb, "prometheus", "alerts.yaml"))
	if len(docs) != 1 || len(docs[0].Groups) == 0 {
		tb.Fatal("deploy/prometheus/alerts.yaml: want one document with groups")
	}
	return docs[0]
}

func alertExprs(tb testing.TB) []promExpr {
	tb.Helper()
	var out []promExpr
	for _, g := range loadAlerts(tb).Groups {
		for _, r := range g.Rules {
			out = append(out, promExpr{where: "alerts.yaml " + g.Name + "/" + r.Alert + r.Record, expr: r.Expr})
		}
	}
	return out
}

// dashboard is the subset of the Grafana dashboard JSON the checks read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []struct {
		Expr         string          `json:"expr"`
		LegendFormat string          `json:"legendFormat"`
		Datasource   json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // collapsed rows
}

func loadDashboard(tb testing.TB) dashboard {
	tb.Helper()
	data, err := os.ReadFile(deployPath(tb, "grafana", "dashboard.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		tb.Fatalf("parse deploy/grafana/dashboard.json: %v", err)
	}
	return d
}

// allPanels flattens rows.
func (d dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func dashboardExprs(tb testing.TB) []promExpr {
	tb.Helper()
	var out []promExpr
	for _, p := range loadDashboard(tb).allPanels() {
		for _, tg := range p.Targets {
			out = append(out, promExpr{where: "dashboard.json panel " + p.Title, expr: tg.Expr, legend: tg.LegendFormat})
		}
	}
	return out
}

// TestReferencedMetrics_Exported is the contract between the programs and
// their monitoring: every metric the dashboard and the alert rules query is
// declared in the programs' source, or is an explicitly listed external one.
func TestReferencedMetrics_Exported(t *testing.T) {
	src := collectMetrics(t, exportDirs...)
	t.Logf("the programs declare %d metrics", len(src.metrics))
	for _, set := range []struct {
		name  string
		exprs []promExpr
	}{{"alerts", alertExprs(t)}, {"dashboard", dashboardExprs(t)}} {
		t.Run(set.name, func(t *testing.T) {
			if len(set.exprs) == 0 {
				t.Fatal("no expressions")
			}
			missing := map[string][]string{}
			for _, e := range set.exprs {
				names := promqlMetricNames(e.expr)
				if strings.TrimSpace(e.expr) == "" || len(names) == 0 {
					t.Errorf("%s: no metric in %q", e.where, e.expr)
				}
				for _, n := range names {
					if _, ok := externalMetrics[n]; ok {
						continue
					}
					if _, ok := src.lookup(n); !ok && !slices.Contains(missing[n], e.where) {
						missing[n] = append(missing[n], e.where)
					}
				}
			}
			for _, e := range set.exprs {
				checkLabels(t, src, e)
			}
			for _, n := range sortedKeys(missing) {
				t.Errorf("%s is not exported by any program (no prometheus.*Opts or NewDesc declares it under internal/ or cmd/); used by %s",
					n, strings.Join(missing[n], "; "))
			}
			if len(missing) > 0 && len(src.unresolved) > 0 {
				t.Logf("metric declarations whose names are not constant (not counted): %s", strings.Join(src.unresolved, ", "))
			}
		})
	}
}

// checkLabels checks that every label an expression (or its legend) uses is
// a target label, a histogram's le, or a label of one of the metrics it
// queries. Expressions on a metric whose labels are not literal in the
// source are not checked.
func checkLabels(t *testing.T, src sourceMetrics, e promExpr) {
	t.Helper()
	allowed := slices.Clone(targetLabels)
	for _, n := range promqlMetricNames(e.expr) {
		if ext, ok := externalMetrics[n]; ok {
			allowed = append(allowed, ext.labels...)
			continue
		}
		m, ok := src.lookup(n)
		if !ok {
			continue // reported as not exported
		}
		if !m.labelsKnown {
			return
		}
		allowed = append(allowed, m.labels...)
		if m.kind == "histogram" && strings.HasSuffix(n, "_bucket") {
			allowed = append(allowed, "le")
		}
	}
	for _, l := range append(promqlLabelNames(e.expr), legendLabels(e.legend)...) {
		if !slices.Contains(allowed, l) {
			t.Errorf("%s: label %q is on none of the queried metrics (allowed: %s) in %q", e.where, l, strings.Join(allowed, ", "), e.expr)
		}
	}
}

// TestExternalMetrics_Listed keeps the allow-list honest: an external name
// must not shadow a program metric, and textfile metrics must really be
// written by the script that claims them.
func TestExternalMetrics_Listed(t *testing.T) {
	src := collectMetrics(t, exportDirs...)
	scripts := map[string]string{}
	for _, path := range []string{textfileScript, drillTextfileScript} {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), path))
		if err != nil {
			t.Fatal(err)
		}
		scripts[path] = string(b)
	}
	for name, ext := range externalMetrics {
		if m, ok := src.metrics[name]; ok {
			t.Errorf("%s is listed as external (%s) but declared at %s", name, ext.source, m.pos)
		}
		if script, ok := scripts[ext.source]; ok && !strings.Contains(script, "\n"+name+" ") {
			t.Errorf("%s is claimed by %s, which does not write it", name, ext.source)
		}
	}
}

var requiredAlerts = []string{
	"CaptureLagHigh", "SlotRetainedWALHigh", "CaptureDown", "ArchiveStale", "UploadErrors",
	"ConsumerPendingGrowing", "VerifyFailed", "TamperEvent", "ChainHolePersisting", "NoArchiverLeader",
	"DrillFailed", "DrillStale", "DrillRTOAboveObjective",
	"IntegrityViolation", "SlotAheadOfWatermark", "MonitorNotRunning",
}

// headingRE finds Markdown headings.
var headingRE = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*#*\s*$`)

// githubAnchor is the anchor GitHub gives a heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func operationsAnchors(tb testing.TB) map[string]bool {
	tb.Helper()
	data, err := os.ReadFile(repoRoot(tb) + "/docs/operations.md")
	if err != nil {
		tb.Fatalf("read docs/operations.md: %v", err)
	}
	anchors := map[string]bool{}
	for _, m := range headingRE.FindAllStringSubmatch(string(data), -1) {
		anchors[githubAnchor(m[1])] = true
	}
	return anchors
}

func TestAlerts_Rules(t *testing.T) {
	rules := loadAlerts(t)
	anchors := operationsAnchors(t)
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a rule without alert name", g.Name)
				continue
			}
			seen[r.Alert] = true
			where := g.Name + "/" + r.Alert
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", where, sev)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no %s annotation", where, a)
				}
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", where, r.For, err)
				}
			}
			runbook := r.Annotations["runbook_url"]
			doc, anchor, _ := strings.Cut(runbook, "#")
			if !strings.HasSuffix(doc, "docs/operations.md") || anchor != strings.ToLower(r.Alert) {
				t.Errorf("%s: runbook_url %q, want …docs/operations.md#%s", where, runbook, strings.ToLower(r.Alert))
			} else if !anchors[anchor] {
				t.Errorf("%s: docs/operations.md has no section %q", where, anchor)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses in %q", where, r.Expr)
			}
		}
	}
	for _, name := range requiredAlerts {
		if !seen[name] {
			t.Errorf("alert %s is missing", name)
		}
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "TamperEvent" && (r.For != "" || r.Labels["severity"] != "critical") {
				t.Errorf("TamperEvent: for %q severity %q: any increase must page at once", r.For, r.Labels["severity"])
			}
		}
	}
}

func TestDashboard_Panels(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("no uid or title")
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDS = true
		}
	}
	if !hasDS {
		t.Error("no datasource template variable: the dashboard would be bound to one Prometheus")
	}
	ids := map[int]bool{}
	for _, p := range d.allPanels() {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if !strings.Contains(string(p.Datasource), "${datasource}") {
			t.Errorf("panel %q: datasource %s, want ${datasource}", p.Title, p.Datasource)
		}
	}
	// What an operator must see, by metric (the list).
	used := map[string]bool{}
	for _, e := range dashboardExprs(t) {
		for _, n := range promqlMetricNames(e.expr) {
			used[n] = true
		}
	}
	for _, n := range []string{
		"tidemark_capture_lag_seconds",             // capture lag
		"tidemark_capture_slot_retained_wal_bytes", // slot retained WAL
		"up",                                // capture disconnected
		"tidemark_capture_heartbeats_total", // capture disconnected
		"tidemark_archiver_last_archived_commit_timestamp_seconds", // archive staleness
		"tidemark_archiver_upload_errors_total",                    // upload errors
		"tidemark_archiver_consumer_pending",                       // consumer pending growing
		"tidemark_capture_events_published_total",                  // events/s
		"tidemark_archiver_watermark_lag_seconds",                  // RPO
		"tidemark_capture_tamper_events_total",                     // tamper events
		"kube_cronjob_status_last_successful_time",                 // verify
		"tidemark_drill_rto_seconds",                               // drills: RTO
		"tidemark_drill_last_success_timestamp_seconds",            // drills: stale
		"tidemark_drill_failures_total",                            // drills: failed steps
		"tidemark_monitor_violations_total",                        // integrity monitor
		"tidemark_monitor_slot_ahead_bytes",                        // slot vs watermark
	} {
		if !used[n] {
			t.Errorf("no panel queries %s", n)
		}
	}
}
