package deploytest

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestMetricsDoc_MatchesCode keeps docs/metrics.md true to the code: every
// metric the programs declare is documented, and nothing else is.
func TestMetricsDoc_MatchesCode(t *testing.T) {
	exported := collectMetrics(t, "internal", "cmd")
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`(tidemark_[a-z0-9_]+)`").FindAllSubmatch(doc, -1) {
		documented[string(m[1])] = true
	}
	for name := range exported.metrics {
		if !documented[name] {
			t.Errorf("metric %s is declared in the code but not documented in docs/metrics.md", name)
		}
	}
	for name := range documented {
		if _, ok := exported.lookup(name); !ok {
			t.Errorf("docs/metrics.md documents %s, which no program declares", name)
		}
	}
	if len(exported.metrics) == 0 {
		t.Fatal("no metrics found in the code")
	}
}
