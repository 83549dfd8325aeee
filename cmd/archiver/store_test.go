package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// TestCatalogRebuild_StoreFailures checks that a missing bucket and
// missing credentials end `archiver catalog rebuild` with their exit code,
// one error line without the SDK's account, and the backend's hint.
func TestCatalogRebuild_StoreFailures(t *testing.T) {
	bin := testrig.BuildBinary(t, "./cmd/archiver")
	srv := testrig.StartS3(t)
	bucket := srv.NewBucket(t)
	dir := t.TempDir()
	// every source of the SDK's default chain off; instance metadata too,
	// so the chain fails at once and offline
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	env = append(env, "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE="+dir+"/config", "AWS_SHARED_CREDENTIALS_FILE="+dir+"/credentials")
	for _, tc := range []struct {
		name  string
		env   []string
		store string
		code  int
		want  []string
	}{
		{"no credentials", env, srv.StoreURL(bucket, "a"), cli.ExitCredentials,
			[]string{"no credentials: none in the environment", "Try: set AWS_ACCESS_KEY_ID"}},
		{"missing bucket", append(env, srv.Env()...), srv.StoreURL("no-such-bucket", "a"), cli.ExitOutOfWindow,
			[]string{"bucket not found: no-such-bucket", "Try: check the bucket name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, "catalog", "rebuild", "--dry-run", "--store", tc.store)
			cmd.Env = tc.env
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
				t.Fatalf("exit %v, want %d; output:\n%s", err, tc.code, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "error: ") {
				t.Fatalf("want an error line and a Try: line:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Fatalf("output lacks %q:\n%s", w, out)
				}
			}
			for _, nw := range []string{"RequestID", "operation error", "IMDS", srv.SecretKey} {
				if strings.Contains(string(out), nw) {
					t.Fatalf("output shows %q:\n%s", nw, out)
				}
			}
			t.Logf("exit %d: %s", tc.code, strings.TrimSpace(string(out)))
		})
	}
}
