package chaos

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/testing/s3fault"
	"github.com/tidemark/tidemark/internal/testing/testkit"
)

func init() {
	register(Scenario{
		Name: "secret-canary",
		Injects: "a unique PostgreSQL password (a role with scram-sha-256 authentication, used in capture's and the restorer's URLs) and the S3 server's unique secret key, " +
			"through kill -9 of capture, an S3 500 storm, a wrong password, an unreachable server and a wrong S3 secret",
		Checks: "no secret in any program log, error output, /metrics scrape or status output (capture status, archiver status, restorer list and verify, human and --json); I1-I6",
		Run:    secretCanary,
	})
}

// secret returns a random token with a recognisable prefix.
func secret(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func secretCanary(e *Env) error {
	password, wrongPassword, wrongS3 := secret("pgcanary"), secret("pgwrong"), secret("s3wrong")
	var canaryURL string
	var proxy *s3fault.Proxy
	err := e.Boot(Setup{Store: "s3", BeforeStart: func(e *Env) error {
		if err := e.pgExec(fmt.Sprintf("CREATE ROLE canary LOGIN SUPERUSER REPLICATION PASSWORD '%s'", password)); err != nil {
			return err
		}
		if err := requirePassword(e, "canary"); err != nil {
			return err
		}
		canaryURL = fmt.Sprintf("postgres://canary:%s@127.0.0.1:%d/source?sslmode=disable", password, e.H.PG.Port)
		e.setup.CaptureVia.PGURL = canaryURL
		p, url, err := e.s3Proxy()
		proxy = p
		e.setup.ArchiverVia.StoreURL = url
		return err
	}})
	if err != nil {
		return err
	}
	secrets := map[string]string{"pg password": password, "wrong pg password": wrongPassword,
		"s3 secret key": e.H.S3.SecretKey, "wrong s3 secret key": wrongS3}
	var outputs []string // status outputs and scrapes, checked with the logs
	e.StartLoad(16*time.Second, 0)
	if err := e.Sleep(3 * time.Second); err != nil {
		return err
	}
	e.Mark()
	e.Capture.Kill()
	if _, err := e.StartCapture(); err != nil {
		return err
	}
	proxy.SetRules(s3fault.ErrorStorm(http.StatusInternalServerError, 1, 0))
	err = e.Sleep(4 * time.Second)
	proxy.Clear()
	if err != nil {
		return err
	}

	// Failures with secrets in their inputs.
	wrongURL := strings.Replace(canaryURL, password, wrongPassword, 1)
	deadURL := strings.Replace(canaryURL, fmt.Sprintf(":%d/", e.H.PG.Port), fmt.Sprintf(":%d/", closedPort()), 1)
	for i, args := range [][]string{
		{"status", "--pg", canaryURL, "--nats-url", e.H.NATSURL},
		{"status", "--json", "--pg", canaryURL, "--nats-url", e.H.NATSURL},
		{"status", "--pg", wrongURL, "--nats-url", e.H.NATSURL},
		{"status", "--pg", deadURL, "--nats-url", e.H.NATSURL},
		{"setup", "--dry-run", "--pg", wrongURL, "--nats-url", e.H.NATSURL},
	} {
		res, err := e.H.RunProgram(e.Ctx, "capture", fmt.Sprintf("canary-capture-%d", i), nil, args...)
		if err != nil {
			return err
		}
		outputs = append(outputs, string(res.Stdout))
	}
	for i, args := range [][]string{
		{"status", "--store", e.H.StoreURL, "--nats-url", e.H.NATSURL},
		{"status", "--json", "--store", e.H.StoreURL, "--nats-url", e.H.NATSURL},
	} {
		res, err := e.H.RunProgram(e.Ctx, "archiver", fmt.Sprintf("canary-archiver-%d", i), nil, args...)
		if err != nil {
			return err
		}
		outputs = append(outputs, string(res.Stdout))
	}
	wrongEnv := []string{"AWS_SECRET_ACCESS_KEY=" + wrongS3}
	for i, run := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"list", "--store", e.H.StoreURL}},
		{nil, []string{"list", "--json", "--store", e.H.StoreURL}},
		{wrongEnv, []string{"list", "--json", "--store", e.H.StoreURL}},
		{wrongEnv, []string{"verify", "--store", e.H.StoreURL}},
		{nil, []string{"restore", "--store", e.H.StoreURL, "--target", wrongURL, "--to", "latest", "--json"}},
	} {
		res, err := e.H.RunProgram(e.Ctx, "restorer", fmt.Sprintf("canary-restorer-%d", i), run.env, run.args...)
		if err != nil {
			return err
		}
		outputs = append(outputs, string(res.Stdout))
	}
	for _, p := range append(e.Live(), e.Capture) {
		if b, err := scrape(p.HTTPAddr); err == nil {
			outputs = append(outputs, b)
		} else {
			return err
		}
	}
	vs := asViolations(e.Finish(CheckOptions{}))
	// Restores with the password in the target URL, to be grepped too.
	if out, _, err := e.restoreToURL("canary-restore", canaryURL); err != nil {
		return err
	} else if out.ExitCode != 0 {
		vs = append(vs, violation("I3", "restore into the canary role's database exited %d: %s", out.ExitCode, errText(out)))
	} else {
		outputs = append(outputs, out.Stdout)
	}
	files := e.programLogs()
	leaks := findSecrets(secrets, files, outputs)
	e.Note("canary_files=%d canary_outputs=%d", len(files), len(outputs))
	if len(leaks) > 0 {
		vs = append(vs, violation("I5", "secrets leaked: %s", strings.Join(leaks, "; ")))
	}
	return joinViolations(vs)
}

// restoreToURL restores "latest" into a new database reached through base
// (a URL whose database is replaced).
func (e *Env) restoreToURL(logName, base string) (*restoreOutput, string, error) {
	url, err := e.newTarget(e.Ctx)
	if err != nil {
		return nil, "", err
	}
	db := url[strings.LastIndexByte(url, '/')+1 : strings.IndexByte(url, '?')]
	target := strings.Replace(base, "/source?", "/"+db+"?", 1)
	out, err := e.runRestorer(e.Ctx, logName, "restore", "--store", e.H.StoreURL, "--target", target, "--to", "latest")
	return out, target, err
}

// requirePassword makes the server demand scram-sha-256 for role on
// loopback (before the rig's trust rule) and reloads it.
func requirePassword(e *Env, role string) error {
	hba := filepath.Join(e.H.PG.DataDir, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		return err
	}
	rules := fmt.Sprintf("host all %[1]s 127.0.0.1/32 scram-sha-256\nhost replication %[1]s 127.0.0.1/32 scram-sha-256\n", role)
	if err := os.WriteFile(hba, append([]byte(rules), old...), 0o600); err != nil {
		return err
	}
	return e.pgExec("SELECT pg_reload_conf()")
}

// programLogs lists the logs of Tidemark's programs (not the servers').
func (e *Env) programLogs() []string {
	var out []string
	for _, f := range e.logFiles() {
		if filepath.Dir(f) == filepath.Clean(e.Dir) {
			out = append(out, f)
		}
	}
	return out
}

// findSecrets greps files and outputs for every secret.
func findSecrets(secrets map[string]string, files, outputs []string) []string {
	var leaks []string
	for name, s := range secrets {
		for _, f := range files {
			if logContains(f, s) {
				leaks = append(leaks, fmt.Sprintf("%s in %s", name, filepath.Base(f)))
			}
		}
		for i, o := range outputs {
			if strings.Contains(o, s) {
				leaks = append(leaks, fmt.Sprintf("%s in output %d", name, i))
			}
		}
	}
	return leaks
}

// scrape returns a program's /metrics text.
func scrape(addr string) (string, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String(), nil
}

// closedPort returns a loopback port nothing listens on.
func closedPort() int {
	port, err := testkit.FreePort()
	if err != nil {
		return 1
	}
	return port
}
