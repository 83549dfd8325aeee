package deploytest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const promPkg = "github.com/prometheus/client_golang/prometheus"

// exportedMetric is a metric a program declares.
type exportedMetric struct {
	name string
	kind string // counter, gauge, histogram, summary, untyped, desc
	pos  string // file:line
	// labels are the variable labels (of a *Vec or a Desc); labelsKnown is
	// false when they, or const labels, are not literal.
	labels      []string
	labelsKnown bool
}

// sourceMetrics is what collectMetrics found.
type sourceMetrics struct {
	metrics map[string]exportedMetric
	// unresolved lists declarations whose name is not a constant expression.
	unresolved []string
}

var optsKinds = map[string]string{
	"CounterOpts": "counter", "GaugeOpts": "gauge", "HistogramOpts": "histogram",
	"SummaryOpts": "summary", "UntypedOpts": "untyped", "Opts": "untyped",
}

// collectMetrics parses every non-test .go file under dirs (relative to the
// repository root) and collects the metric names declared with
// prometheus.{Counter,Gauge,Histogram,Summary,Untyped}Opts composite literals
// (Namespace, Subsystem and Name joined as prometheus.BuildFQName does) and
// prometheus.NewDesc calls. Names may be string literals, package-level
// string constants or concatenations of both.
func collectMetrics(tb testing.TB, dirs ...string) sourceMetrics {
	tb.Helper()
	root := repoRoot(tb)
	byDir := map[string][]string{}
	for _, d := range dirs {
		err := filepath.WalkDir(filepath.Join(root, d), func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			if e.IsDir() && (e.Name() == "testdata" || strings.HasPrefix(e.Name(), ".")) {
				return filepath.SkipDir
			}
			if !e.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
				byDir[filepath.Dir(path)] = append(byDir[filepath.Dir(path)], path)
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("walk %s: %v", d, err)
		}
	}
	out := sourceMetrics{metrics: map[string]exportedMetric{}}
	for _, files := range byDir {
		fset := token.NewFileSet()
		var parsed []*ast.File
		for _, f := range files {
			af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
			if err != nil {
				// Another helper's file mid-edit: it cannot build either.
				tb.Logf("skip %s: %v", rel(tb, f), err)
				continue
			}
			parsed = append(parsed, af)
		}
		consts := packageStringConsts(parsed)
		for _, af := range parsed {
			collectFileMetrics(tb, fset, af, consts, &out)
		}
	}
	return out
}

// packageStringConsts returns the package-level string constants whose
// values are constant string expressions.
func packageStringConsts(files []*ast.File) map[string]string {
	specs := map[string]ast.Expr{}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						specs[n.Name] = vs.Values[i]
					}
				}
			}
		}
	}
	consts := map[string]string{}
	// Constants may refer to each other: resolve until nothing changes.
	for changed := true; changed; {
		changed = false
		for name, e := range specs {
			if _, done := consts[name]; done {
				continue
			}
			if v, ok := stringValue(e, consts); ok {
				consts[name] = v
				changed = true
			}
		}
	}
	return consts
}

// stringValue evaluates a constant string expression.
func stringValue(e ast.Expr, consts map[string]string) (string, bool) {
	switch x := e.(type) {
	case *ast.BasicLit:
		if x.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(x.Value)
		return s, err == nil
	case *ast.Ident:
		s, ok := consts[x.Name]
		return s, ok
	case *ast.ParenExpr:
		return stringValue(x.X, consts)
	case *ast.BinaryExpr:
		if x.Op != token.ADD {
			return "", false
		}
		a, ok1 := stringValue(x.X, consts)
		b, ok2 := stringValue(x.Y, consts)
		return a + b, ok1 && ok2
	}
	return "", false
}

// fqName joins namespace, subsystem and name like prometheus.BuildFQName.
func fqName(namespace, subsystem, name string) string {
	if name == "" {
		return ""
	}
	var parts []string
	for _, p := range []string{namespace, subsystem, name} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "_")
}

func collectFileMetrics(tb testing.TB, fset *token.FileSet, f *ast.File, consts map[string]string, out *sourceMetrics) {
	prom := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == promPkg {
			prom = "prometheus"
			if imp.Name != nil {
				prom = imp.Name.Name
			}
		}
	}
	if prom == "" {
		return
	}
	pos := func(n ast.Node) string {
		p := fset.Position(n.Pos())
		return rel(tb, p.Filename) + ":" + strconv.Itoa(p.Line)
	}
	promSel := func(e ast.Expr) string { // "CounterOpts" for prometheus.CounterOpts
		if sel, ok := e.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == prom {
				return sel.Sel.Name
			}
		}
		return ""
	}
	// vecLabels holds the label names of Opts literals passed to New*Vec
	// calls (nil: not literal); the call is visited before its arguments.
	vecLabels := map[*ast.CompositeLit][]string{}
	vecUnknown := map[*ast.CompositeLit]bool{}
	stringList := func(e ast.Expr) ([]string, bool) {
		if id, ok := e.(*ast.Ident); ok && id.Name == "nil" {
			return nil, true
		}
		lit, ok := e.(*ast.CompositeLit)
		if !ok {
			return nil, false
		}
		var out []string
		for _, el := range lit.Elts {
			v, ok := stringValue(el, consts)
			if !ok {
				return nil, false
			}
			out = append(out, v)
		}
		return out, true
	}
	add := func(name, kind string, n ast.Node, labels []string, known bool) {
		if name == "" {
			out.unresolved = append(out.unresolved, pos(n))
			return
		}
		out.metrics[name] = exportedMetric{name: name, kind: kind, pos: pos(n), labels: labels, labelsKnown: known}
	}
	opts := func(lit *ast.CompositeLit, kind string) {
		fields := map[string]string{}
		resolved := true
		for _, el := range lit.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			key, ok := kv.Key.(*ast.Ident)
			if ok && key.Name == "ConstLabels" {
				vecUnknown[lit] = true
			}
			if !ok || (key.Name != "Name" && key.Name != "Namespace" && key.Name != "Subsystem") {
				continue
			}
			v, ok := stringValue(kv.Value, consts)
			if !ok {
				resolved = false
			}
			fields[key.Name] = v
		}
		name := fqName(fields["Namespace"], fields["Subsystem"], fields["Name"])
		if !resolved {
			name = ""
		}
		add(name, kind, lit, vecLabels[lit], !vecUnknown[lit])
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.CompositeLit:
			// prometheus.CounterVecOpts{CounterOpts: …, VariableLabels: …}
			if strings.HasSuffix(promSel(x.Type), "VecOpts") {
				for _, el := range x.Elts {
					if kv, ok := el.(*ast.KeyValueExpr); ok {
						if lit, ok := kv.Value.(*ast.CompositeLit); ok {
							vecUnknown[lit] = true
						}
					}
				}
			}
			if kind, ok := optsKinds[promSel(x.Type)]; ok {
				opts(x, kind)
				return true
			}
			// []prometheus.GaugeOpts{{Name: …}, …}: element types elided.
			if at, ok := x.Type.(*ast.ArrayType); ok {
				if kind, ok := optsKinds[promSel(at.Elt)]; ok {
					for _, el := range x.Elts {
						if lit, ok := el.(*ast.CompositeLit); ok && lit.Type == nil {
							opts(lit, kind)
						}
					}
				}
			}
		case *ast.CallExpr:
			if sel, ok := x.Fun.(*ast.SelectorExpr); ok && strings.HasSuffix(sel.Sel.Name, "Vec") && len(x.Args) == 2 {
				if lit, ok := x.Args[0].(*ast.CompositeLit); ok {
					if labels, ok := stringList(x.Args[1]); ok {
						vecLabels[lit] = labels
					} else {
						vecUnknown[lit] = true
					}
				}
			}
			if promSel(x.Fun) == "NewDesc" && len(x.Args) > 0 {
				name, ok := stringValue(x.Args[0], consts)
				if call, isCall := x.Args[0].(*ast.CallExpr); isCall && promSel(call.Fun) == "BuildFQName" && len(call.Args) == 3 {
					ns, ok1 := stringValue(call.Args[0], consts)
					sub, ok2 := stringValue(call.Args[1], consts)
					nm, ok3 := stringValue(call.Args[2], consts)
					name, ok = fqName(ns, sub, nm), ok1 && ok2 && ok3
				}
				if !ok {
					name = ""
				}
				var labels []string
				known := len(x.Args) == 4
				if known {
					labels, known = stringList(x.Args[2])
					if id, isIdent := x.Args[3].(*ast.Ident); !isIdent || id.Name != "nil" {
						known = false
					}
				}
				add(name, "desc", x, labels, known)
			}
		}
		return true
	})
}

// lookup reports whether a series name is exported: the metric itself, or a
// histogram's _bucket/_sum/_count series or a summary's _sum/_count.
func (s sourceMetrics) lookup(series string) (exportedMetric, bool) {
	if m, ok := s.metrics[series]; ok {
		return m, true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(series, suf)
		if !ok {
			continue
		}
		m, ok := s.metrics[base]
		if ok && (m.kind == "histogram" || m.kind == "summary" && suf != "_bucket") {
			return m, true
		}
	}
	return exportedMetric{}, false
}

func TestCollectMetrics_Source(t *testing.T) {
	dir := t.TempDir()
	src := `package m

import (
	p "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

const ns = "tidemark"
const sub = ns + "_x"
const label = "table"

var (
	a = promauto.NewCounter(p.CounterOpts{Name: "tidemark_a_total"})
	b = promauto.NewHistogramVec(p.HistogramOpts{Namespace: ns, Subsystem: "x", Name: "b_seconds"}, []string{"op", label})
	c = p.NewDesc(p.BuildFQName(ns, "x", "c_bytes"), "help", nil, nil)
	d = p.NewDesc(sub+"_d", "help", []string{"z"}, p.Labels{"k": "v"})
	h = promauto.NewCounterVec(p.CounterOpts{Name: "tidemark_h_total"}, labelNames)
	e = []p.GaugeOpts{{Name: "tidemark_e"}, {Namespace: ns, Name: "f"}}
	g = promauto.NewGauge(p.GaugeOpts{Name: name()})
)
`
	mod := filepath.Join(dir, "internal", "m")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "m.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "m_test.go"), []byte("package m\nvar _ = p.CounterOpts{Name: \"test_only\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	got := collectMetrics(t, "internal")
	want := map[string]string{
		"tidemark_a_total": "counter", "tidemark_x_b_seconds": "histogram", "tidemark_x_c_bytes": "desc",
		"tidemark_x_d": "desc", "tidemark_e": "gauge", "tidemark_f": "gauge", "tidemark_h_total": "counter",
	}
	for name, kind := range want {
		if m, ok := got.metrics[name]; !ok || m.kind != kind {
			t.Errorf("%s: got %+v, want kind %s", name, m, kind)
		}
	}
	if len(got.metrics) != len(want) {
		t.Errorf("got %d metrics %v, want %d", len(got.metrics), sortedKeys(got.metrics), len(want))
	}
	for name, want := range map[string]string{
		"tidemark_a_total": "known []", "tidemark_x_b_seconds": "known [op table]", "tidemark_x_c_bytes": "known []",
		"tidemark_x_d": "unknown", "tidemark_h_total": "unknown",
	} {
		m := got.metrics[name]
		desc := "unknown"
		if m.labelsKnown {
			desc = fmt.Sprintf("known %v", m.labels)
		}
		if desc != want {
			t.Errorf("%s labels: %s, want %s", name, desc, want)
		}
	}
	if len(got.unresolved) != 1 {
		t.Errorf("unresolved = %v, want the Name: name() declaration", got.unresolved)
	}
	for series, ok := range map[string]bool{
		"tidemark_x_b_seconds_bucket": true, "tidemark_x_b_seconds_count": true,
		"tidemark_a_total_count": false, "tidemark_x_c_bytes_sum": false, "tidemark_nope": false,
	} {
		if _, found := got.lookup(series); found != ok {
			t.Errorf("lookup(%s) = %v, want %v", series, found, ok)
		}
	}
}
