package deploytest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// repoRoot returns the module root (the directory holding go.mod).
func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatalf("no go.mod above the test directory")
		}
		dir = parent
	}
}

// deployPath joins elems under <root>/deploy.
func deployPath(tb testing.TB, elems ...string) string {
	tb.Helper()
	return filepath.Join(append([]string{repoRoot(tb), "deploy"}, elems...)...)
}

// rel returns path relative to the repository root, for messages.
func rel(tb testing.TB, path string) string {
	tb.Helper()
	r, err := filepath.Rel(repoRoot(tb), path)
	if err != nil {
		return path
	}
	return r
}

// manifestFiles lists every YAML and JSON file under deploy/.
func manifestFiles(tb testing.TB) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(deployPath(tb), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml", ".json":
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("walk deploy: %v", err)
	}
	return out
}

// yamlDocs decodes every non-empty document of a (multi-document) YAML file
// into a T, failing the test on a read or parse error.
func yamlDocs[T any](tb testing.TB, path string) []T {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read %s: %v", rel(tb, path), err)
	}
	docs, err := decodeYAMLDocs[T](data)
	if err != nil {
		tb.Fatalf("parse %s: %v", rel(tb, path), err)
	}
	return docs
}

// decodeYAMLDocs decodes each non-empty document of data.
func decodeYAMLDocs[T any](data []byte) ([]T, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []T
	for i := 0; ; i++ {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(node.Content) == 0 || (node.Content[0].Kind == yaml.ScalarNode && node.Content[0].Tag == "!!null") {
			continue
		}
		var v T
		if err := node.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

// readEnvFile parses KEY=VALUE lines, skipping blanks and # comments; keys
// keep their order.
func readEnvFile(tb testing.TB, path string) (keys []string, values map[string]string) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatalf("open %s: %v", rel(tb, path), err)
	}
	defer f.Close()
	values = map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			tb.Errorf("%s:%d: not KEY=VALUE: %q", rel(tb, path), n, line)
			continue
		}
		k = strings.TrimSpace(k)
		if _, dup := values[k]; dup {
			tb.Errorf("%s:%d: %s set twice", rel(tb, path), n, k)
		}
		keys = append(keys, k)
		values[k] = v
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("read %s: %v", rel(tb, path), err)
	}
	return keys, values
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
