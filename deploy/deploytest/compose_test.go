package deploytest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// composeFile is the subset of docker-compose.yml the checks read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	Profiles    []string          `yaml:"profiles"`
}

func loadCompose(tb testing.TB) composeFile {
	tb.Helper()
	docs := yamlDocs[composeFile](tb, deployPath(tb, "docker-compose.yml"))
	if len(docs) != 1 {
		tb.Fatalf("docker-compose.yml: want one document, got %d", len(docs))
	}
	return docs[0]
}

func TestCompose_Services(t *testing.T) {
	c := loadCompose(t)
	dir := deployPath(t)
	for _, name := range []string{"postgres", "nats", "s3", "capture", "archiver-a", "archiver-b", "restorer", "prometheus", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("no service %s", name)
		}
	}
	pg := strings.Join(c.Services["postgres"].Command, " ")
	for _, want := range []string{"wal_level=logical", "track_commit_timestamp=on"} {
		if !strings.Contains(pg, want) {
			t.Errorf("postgres command %q lacks %s", pg, want)
		}
	}
	if !strings.HasPrefix(c.Services["postgres"].Image, "postgres:15") {
		t.Errorf("postgres image %q, want postgres:15", c.Services["postgres"].Image)
	}
	checkComposeNATS(t, c.Services["nats"])
	if !strings.HasPrefix(c.Services["s3"].Image, "versity/versitygw") {
		t.Errorf("s3 image %q, want versity/versitygw", c.Services["s3"].Image)
	}
	for name, svc := range c.Services {
		if svc.Build != nil {
			df := filepath.Join(dir, svc.Build.Context, svc.Build.Dockerfile)
			if _, err := os.Stat(df); err != nil {
				t.Errorf("%s: Dockerfile %s: %v", name, rel(t, df), err)
			}
		}
		for _, v := range svc.Volumes {
			src, _, ok := strings.Cut(v, ":")
			if ok && (strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../")) {
				if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
					t.Errorf("%s: bind mount source %s does not exist", name, src)
				}
			} else if ok && !strings.HasPrefix(src, "/") {
				if _, declared := c.Volumes[src]; !declared {
					t.Errorf("%s: named volume %s is not declared", name, src)
				}
			}
		}
		for _, p := range svc.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s: port %s is published on every interface; bind it to 127.0.0.1", name, p)
			}
		}
	}
	for _, name := range []string{"archiver-a", "archiver-b"} {
		if got := c.Services[name].Command; !slices.Equal(got, []string{"/usr/local/bin/archiver", "run"}) {
			t.Errorf("%s: command %q, want archiver run", name, got)
		}
	}
}

// checkComposeNATS parses the configuration the nats service runs with, using
// nats-server's own parser: JetStream must be on.
func checkComposeNATS(t *testing.T, svc composeService) {
	t.Helper()
	i := slices.Index(svc.Command, "--config")
	if i < 0 || i+1 >= len(svc.Command) {
		t.Fatalf("nats command %q has no --config", svc.Command)
	}
	var conf string
	for _, v := range svc.Volumes {
		src, rest, _ := strings.Cut(v, ":")
		if dst, _, _ := strings.Cut(rest, ":"); dst == svc.Command[i+1] {
			conf = deployPath(t, src)
		}
	}
	if conf == "" {
		t.Fatalf("nats: %s is not mounted", svc.Command[i+1])
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats: %v", err)
	}
	if !opts.JetStream || opts.HTTPPort == 0 {
		t.Errorf("nats: JetStream %v, monitoring port %d: want JetStream and /healthz", opts.JetStream, opts.HTTPPort)
	}
}

// TestPrometheus_ScrapesCompose checks that prometheus.yml scrapes capture
// and both archivers where docker-compose.yml makes them listen, under the
// job names the alert rules use.
func TestPrometheus_ScrapesCompose(t *testing.T) {
	type promConfig struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	cfg := yamlDocs[promConfig](t, deployPath(t, "prometheus", "prometheus.yml"))[0]
	targets := map[string][]string{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, s := range sc.StaticConfigs {
			targets[sc.JobName] = append(targets[sc.JobName], s.Targets...)
		}
	}
	c := loadCompose(t)
	for job, services := range map[string][]string{
		"tidemark-capture":  {"capture"},
		"tidemark-archiver": {"archiver-a", "archiver-b"},
	} {
		if !strings.Contains(loadAlertsText(t), `job="`+job+`"`) {
			t.Errorf("alerts.yaml does not use job %q", job)
		}
		for _, s := range services {
			env := c.Services[s].Environment
			addr := env["TIDEMARK_CAPTURE_HTTP"] + env["TIDEMARK_ARCHIVER_HTTP"]
			_, port, ok := strings.Cut(addr, ":")
			if !ok || !strings.HasPrefix(addr, "0.0.0.0:") {
				t.Errorf("%s: --http %q, want 0.0.0.0:PORT inside the container", s, addr)
				continue
			}
			if !slices.Contains(targets[job], s+":"+port) {
				t.Errorf("prometheus.yml job %s does not scrape %s:%s (targets %q)", job, s, port, targets[job])
			}
		}
	}
	if !slices.Contains(cfg.RuleFiles, "/etc/prometheus/alerts.yaml") {
		t.Errorf("rule_files %q do not load alerts.yaml", cfg.RuleFiles)
	}
	mounted := strings.Join(c.Services["prometheus"].Volumes, " ")
	if !strings.Contains(mounted, "./prometheus/alerts.yaml:/etc/prometheus/alerts.yaml") {
		t.Error("compose does not mount alerts.yaml where prometheus.yml loads it")
	}
}

func loadAlertsText(tb testing.TB) string {
	tb.Helper()
	data, err := os.ReadFile(deployPath(tb, "prometheus", "alerts.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	return string(data)
}

// TestDockerfile_BuildsThePrograms checks that the image holds every program
// the manifests run, and that each is a real main package.
func TestDockerfile_BuildsThePrograms(t *testing.T) {
	data, err := os.ReadFile(deployPath(t, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, prog := range []string{"capture", "archiver", "restorer"} {
		if !strings.Contains(df, "./cmd/"+prog) || !strings.Contains(df, "/out/"+prog) {
			t.Errorf("the Dockerfile does not build and copy %s", prog)
		}
		if _, err := os.Stat(filepath.Join(repoRoot(t), "cmd", prog, "main.go")); err != nil {
			t.Errorf("cmd/%s/main.go: %v", prog, err)
		}
	}
	if !strings.Contains(df, "nonroot") && !strings.Contains(df, "USER ") {
		t.Error("the runtime image runs as root")
	}
}
