package deploytest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// programPrefixes are the environment prefixes of the programs' flags.
var programPrefixes = map[string]string{
	"capture":  "TIDEMARK_CAPTURE_",
	"archiver": "TIDEMARK_ARCHIVER_",
	"restorer": "TIDEMARK_RESTORER_",
}

// standardEnv matches variables read by libraries and the runtime rather
// than by Tidemark's flags: libpq-style PG* (pgx), the AWS SDK's AWS_*, and
// the Go runtime's.
var standardEnv = regexp.MustCompile(`^(PG[A-Z]+|AWS_[A-Z_]+|GOMEMLIMIT|GOMAXPROCS|GODEBUG|TZ)$`)

// programStrings returns every constant string expression in the non-test
// source of cmd/<program> and internal/cli (flag names, environment names
// and aliases are among them), failing if the program does not exist.
func programStrings(tb testing.TB, program string) map[string]bool {
	tb.Helper()
	out := map[string]bool{}
	for _, dir := range []string{filepath.Join("cmd", program), filepath.Join("internal", "cli")} {
		abs := filepath.Join(repoRoot(tb), dir)
		entries, err := os.ReadDir(abs)
		if err != nil {
			tb.Fatalf("read %s: %v (the deployment runs this program)", dir, err)
		}
		fset := token.NewFileSet()
		var files []*ast.File
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(abs, e.Name()), nil, parser.SkipObjectResolution)
			if err != nil {
				tb.Logf("skip %s: %v", e.Name(), err)
				continue
			}
			files = append(files, f)
		}
		consts := packageStringConsts(files)
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				if e, ok := n.(ast.Expr); ok {
					if s, ok := stringValue(e, consts); ok {
						out[s] = true
					}
				}
				return true
			})
		}
	}
	return out
}

// envCheck checks that a program reads every variable of its configuration.
type envCheck struct {
	tb      testing.TB
	strings map[string]map[string]bool // program → constant strings
}

func (c *envCheck) check(where, program, name string) {
	c.tb.Helper()
	if standardEnv.MatchString(name) {
		return
	}
	s, ok := c.strings[program]
	if !ok {
		s = programStrings(c.tb, program)
		c.strings[program] = s
	}
	if flag, ok := strings.CutPrefix(name, programPrefixes[program]); ok {
		flag = strings.ReplaceAll(strings.ToLower(flag), "_", "-")
		if !s[flag] {
			c.tb.Errorf("%s: %s sets --%s, which %s does not have", where, name, flag, program)
		}
		return
	}
	if !s[name] {
		c.tb.Errorf("%s: %s is not read by %s (not one of its flags' variables, aliases or environment names)", where, name, program)
	}
}

// programOf returns the program a command line runs.
func programOf(argv []string) string {
	if len(argv) == 0 {
		return ""
	}
	p := filepath.Base(argv[0])
	if _, ok := programPrefixes[p]; ok {
		return p
	}
	return ""
}

func TestConfig_ProgramsReadIt(t *testing.T) {
	c := &envCheck{tb: t, strings: map[string]map[string]bool{}}
	checked := 0
	// Kubernetes: the base, the overlay, and the restore template.
	for _, dir := range []string{deployPath(t, "kubernetes", "base"), deployPath(t, "kubernetes", "overlays", "example")} {
		tree := loadKustomization(t, dir)
		for _, o := range tree.objects {
			pod := o.pod()
			if pod == nil {
				continue
			}
			for _, ctr := range pod.Spec.Containers {
				prog := programOf(ctr.Command)
				if prog == "" {
					continue
				}
				for name := range tree.env(t, &ctr) {
					c.check(rel(t, dir)+" "+o.id(), prog, name)
					checked++
				}
			}
		}
	}
	for _, o := range yamlDocs[object](t, deployPath(t, "kubernetes", "jobs", "restore-job.yaml")) {
		for _, ctr := range o.pod().Spec.Containers {
			for _, e := range ctr.Env {
				c.check("restore-job.yaml", programOf(ctr.Command), e.Name)
				checked++
			}
		}
	}
	// docker-compose.
	for name, svc := range loadCompose(t).Services {
		argv := append(append([]string{}, svc.Entrypoint...), svc.Command...)
		prog := programOf(argv)
		if prog == "" {
			continue
		}
		for k := range svc.Environment {
			c.check("docker-compose.yml "+name, prog, k)
			checked++
		}
	}
	// systemd: each unit's EnvironmentFile example and Environment= lines.
	for _, u := range systemdServices(t) {
		prog := programOf(strings.Fields(u.get("Service", "ExecStart")))
		if prog == "" {
			t.Errorf("%s: ExecStart runs no Tidemark program", u.name)
			continue
		}
		for _, ef := range u.all("Service", "EnvironmentFile") {
			example := deployPath(t, "systemd", filepath.Base(ef)+".example")
			keys, _ := readEnvFile(t, example)
			for _, k := range keys {
				c.check(rel(t, example), prog, k)
				checked++
			}
		}
		for _, e := range u.all("Service", "Environment") {
			k, _, _ := strings.Cut(e, "=")
			c.check(u.name, prog, k)
			checked++
		}
	}
	if checked < 30 {
		t.Errorf("checked only %d variables", checked)
	}
}
