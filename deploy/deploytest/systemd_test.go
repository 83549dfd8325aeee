package deploytest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// unitFile is a parsed systemd unit: section → key → values in order.
type unitFile struct {
	name     string
	sections map[string]map[string][]string
}

func (u unitFile) all(section, key string) []string { return u.sections[section][key] }

// get returns the last value of key (systemd's rule for single-valued keys).
func (u unitFile) get(section, key string) string {
	v := u.sections[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

func parseUnit(tb testing.TB, path string) unitFile {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	u := unitFile{name: filepath.Base(path), sections: map[string]map[string][]string{}}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u.sections[section] == nil {
				u.sections[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				tb.Errorf("%s:%d: not KEY=VALUE in a section: %q", u.name, n, line)
				continue
			}
			u.sections[section][k] = append(u.sections[section][k], v)
		}
	}
	return u
}

func systemdServices(tb testing.TB) []unitFile {
	tb.Helper()
	var out []unitFile
	for _, n := range []string{"tidemark-capture.service", "tidemark-archiver.service", "tidemark-verify.service", "tidemark-drill.service", "tidemark-monitor.service", "tidemark-copier.service"} {
		out = append(out, parseUnit(tb, deployPath(tb, "systemd", n)))
	}
	return out
}

func TestSystemd_Hardening(t *testing.T) {
	for _, u := range systemdServices(t) {
		t.Run(u.name, func(t *testing.T) {
			want := map[string]string{
				"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes",
				"CapabilityBoundingSet": "", "AmbientCapabilities": "", "PrivateDevices": "yes",
				"ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
				"RestrictSUIDSGID": "yes", "LockPersonality": "yes", "RestrictNamespaces": "yes",
				"SystemCallArchitectures": "native", "UMask": "0077",
			}
			for k, v := range want {
				if vals := u.all("Service", k); len(vals) == 0 || u.get("Service", k) != v {
					t.Errorf("%s=%q, want %q", k, u.get("Service", k), v)
				}
			}
			if u.get("Service", "DynamicUser") != "yes" && u.get("Service", "User") == "" {
				t.Error("runs as root: set DynamicUser=yes or a dedicated User=")
			}
			if u.get("Service", "RestrictAddressFamilies") == "" || len(u.all("Service", "SystemCallFilter")) == 0 {
				t.Error("no RestrictAddressFamilies or SystemCallFilter")
			}
			efs := u.all("Service", "EnvironmentFile")
			if len(efs) == 0 {
				t.Fatal("no EnvironmentFile for the configuration and secrets")
			}
			for _, ef := range efs {
				if !strings.HasPrefix(ef, "/etc/tidemark/") || !strings.HasSuffix(ef, ".env") {
					t.Errorf("EnvironmentFile=%s, want /etc/tidemark/*.env", ef)
				}
				if _, err := os.Stat(deployPath(t, "systemd", filepath.Base(ef)+".example")); err != nil {
					t.Errorf("no example for %s: %v", ef, err)
				}
			}
			for _, e := range u.all("Service", "Environment") {
				k, v, _ := strings.Cut(e, "=")
				if secretName.MatchString(k) && !(strings.HasSuffix(k, "_FILE") && strings.HasPrefix(v, "%d/")) {
					t.Errorf("Environment=%s: a secret in the unit file; use the EnvironmentFile or LoadCredential", k)
				}
			}
			if exec := strings.Fields(u.get("Service", "ExecStart")); len(exec) == 0 || !strings.HasPrefix(exec[0], "/usr/local/bin/") {
				t.Errorf("ExecStart=%q", u.get("Service", "ExecStart"))
			}
		})
	}
}

func TestSystemd_EnvExamplesHoldNoSecrets(t *testing.T) {
	matches, err := filepath.Glob(deployPath(t, "systemd", "*.env.example"))
	if err != nil || len(matches) < 3 {
		t.Fatalf("env examples: %v %v", matches, err)
	}
	for _, p := range matches {
		keys, values := readEnvFile(t, p)
		for _, k := range keys {
			if secretName.MatchString(k) && values[k] != "" {
				t.Errorf("%s: %s has a value; secret placeholders stay empty", rel(t, p), k)
			}
			if urlWithPassword.MatchString(values[k]) {
				t.Errorf("%s: %s holds a URL with a password", rel(t, p), k)
			}
		}
	}
}

func TestSystemd_VerifyAndDrillTimers(t *testing.T) {
	for _, name := range []string{"verify", "drill"} {
		t.Run(name, func(t *testing.T) { checkTimer(t, name) })
	}
}

// checkTimer checks tidemark-<name>.timer and the oneshot service it starts:
// restorer <name>, with the textfile report after every run.
func checkTimer(t *testing.T, name string) {
	timer := parseUnit(t, deployPath(t, "systemd", "tidemark-"+name+".timer"))
	if timer.get("Timer", "OnCalendar") == "" || timer.get("Timer", "Persistent") != "true" {
		t.Errorf("timer: OnCalendar=%q Persistent=%q", timer.get("Timer", "OnCalendar"), timer.get("Timer", "Persistent"))
	}
	if timer.get("Timer", "Unit") != "tidemark-"+name+".service" || timer.get("Install", "WantedBy") != "timers.target" {
		t.Errorf("the timer does not start tidemark-%s.service or is not installable", name)
	}
	svc := parseUnit(t, deployPath(t, "systemd", "tidemark-"+name+".service"))
	if svc.get("Service", "Type") != "oneshot" {
		t.Errorf("Type=%q, want oneshot", svc.get("Service", "Type"))
	}
	if f := strings.Fields(svc.get("Service", "ExecStart")); len(f) < 2 || filepath.Base(f[0]) != "restorer" || f[1] != name {
		t.Errorf("ExecStart=%q, want restorer %s", svc.get("Service", "ExecStart"), name)
	}
	post := strings.TrimPrefix(svc.get("Service", "ExecStopPost"), "+")
	if filepath.Base(post) != name+"-report" {
		t.Errorf("ExecStopPost=%q, want the textfile report (tidemark-%s-report installed as %s-report)", post, name, name)
	}
}

// TestVerifyReport_Textfile runs the ExecStopPost script the way systemd
// does and parses what it writes as node_exporter's textfile collector would.
func TestVerifyReport_Textfile(t *testing.T) {
	for _, tc := range []struct{ name, file, metric string }{
		{"verify", "tidemark_verify", "tidemark_verify"},
		{"drill", "tidemark_drill", "tidemark_drill_job"},
	} {
		t.Run(tc.name, func(t *testing.T) { checkReport(t, "tidemark-"+tc.name+"-report", tc.file, tc.metric) })
	}
}

// checkReport runs one report script for files file.prom and
// file_success.prom holding metric_… gauges.
func checkReport(t *testing.T, scriptName, file, metric string) {
	script := deployPath(t, "systemd", scriptName)
	dir := filepath.Join(t.TempDir(), "textfile")
	run := func(result, status string) {
		t.Helper()
		cmd := exec.Command("/bin/sh", script)
		cmd.Env = append(os.Environ(), "TIDEMARK_TEXTFILE_DIR="+dir, "SERVICE_RESULT="+result, "EXIT_STATUS="+status)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", result, status, err, out)
		}
	}
	read := func(name string) map[string]float64 {
		t.Helper()
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out := map[string]float64{}
		for n, fam := range fams {
			if len(fam.Metric) != 1 || fam.Metric[0].Gauge == nil {
				t.Fatalf("%s: %s is not one gauge", name, n)
			}
			out[n] = fam.Metric[0].Gauge.GetValue()
		}
		return out
	}
	before := float64(time.Now().Unix())

	run("success", "0")
	res := read(file + ".prom")
	if res[metric+"_last_exit_code"] != 0 || res[metric+"_last_run_timestamp_seconds"] < before {
		t.Errorf("after success: %v", res)
	}
	ok := read(file + "_success.prom")[metric+"_last_success_timestamp_seconds"]
	if ok < before {
		t.Errorf("success timestamp %v < %v", ok, before)
	}

	run("exit-code", "3")
	if got := read(file + ".prom")[metric+"_last_exit_code"]; got != 3 {
		t.Errorf("after a failed verification: exit code %v, want 3", got)
	}
	if got := read(file + "_success.prom")[metric+"_last_success_timestamp_seconds"]; got != ok {
		t.Errorf("a failure moved the success timestamp: %v → %v", ok, got)
	}

	run("signal", "KILL")
	if got := read(file + ".prom")[metric+"_last_exit_code"]; got == 0 {
		t.Error("a killed run reports exit code 0")
	}
	run("timeout", "0")
	if got := read(file + ".prom")[metric+"_last_exit_code"]; got == 0 {
		t.Errorf("a timed-out run reports exit code %s", strconv.FormatFloat(got, 'f', -1, 64))
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}
