package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/s3"
	"github.com/tidemark/tidemark/internal/restore/restoretest"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// stateEvents reads how many rows the restore state says are committed
// (-1: none yet) and whether the restore finished.
func stateEvents(ctx context.Context, url string) (int64, bool) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return -1, false
	}
	defer conn.Close(ctx)
	var n int64
	var done bool
	if err := conn.QueryRow(ctx, `SELECT events, finished FROM tidemark_restore_state`).Scan(&n, &done); err != nil {
		return -1, false
	}
	return n, done
}

func TestRestorer_KilledProcessResumes(t *testing.T) {
	f := fixture(t)
	bin := testrig.BuildBinary(t, "./cmd/restorer")
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(21, 22))
	at := f.Times[len(f.Times)*9/10]
	total := int64(0)
	for _, tx := range f.Txns {
		if !tx[0].CommitTime.After(at) {
			total += int64(len(tx))
		}
	}
	for round := 0; round < 3; round++ {
		target := eventCoreDB(t)
		args := []string{"restore", "--store", f.Dir, "--target", target, "--to", at.Format(time.RFC3339Nano),
			"--batch-rows", "150", "--parallel", "2", "--json"}
		// kill -9 once some batches are committed, at a random point
		killAt := 1 + rng.Int64N(total*2/3)
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		killed := false
	poll:
		for {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("round %d: restore failed: %v\n%s", round, err, stderr.String())
				}
				break poll
			case <-time.After(2 * time.Millisecond):
				if n, _ := stateEvents(ctx, target); n >= killAt {
					_ = cmd.Process.Signal(syscall.SIGKILL)
					<-done
					killed = true
					break poll
				}
			}
		}
		got, finished := stateEvents(ctx, target)
		if !killed || finished {
			t.Logf("round %d: the restore finished before the kill", round)
			restoretest.Compare(t, f.SourceURL, target, at)
			continue
		}
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("round %d: re-run: %v\n%s", round, err, out)
		}
		var res struct {
			Type          string
			Resumed       bool  `json:"resumed"`
			Events        int64 `json:"events"`
			EventsThisRun int64 `json:"events_this_run"`
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
			t.Fatal(err)
		}
		if !res.Resumed || res.Events != total || res.EventsThisRun != total-got {
			t.Fatalf("round %d: killed at %d committed rows; re-run %+v, want resumed with %d rows", round, got, res, total)
		}
		t.Logf("round %d: killed after %d of %d rows were committed; the re-run wrote %d", round, got, total, res.EventsThisRun)
		restoretest.Compare(t, f.SourceURL, target, at)
	}
}

func TestRestorer_FromS3(t *testing.T) {
	f := fixture(t)
	ctx := context.Background()
	srv := testrig.StartS3(t)
	bucket := srv.NewBucket(t)
	storeURL := srv.StoreURL(bucket, "archive")
	st, err := s3.Open(ctx, storeURL, s3.Options{AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.Walk(f.Dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(f.Dir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return st.Put(ctx, filepath.ToSlash(rel), bytes.NewReader(b), int64(len(b)), objstore.PutOptions{})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "definitely-not-the-secret")
	t.Setenv("AWS_REGION", srv.Region)
	r := runCmd(t, "list", "--store", storeURL)
	if r.code != 12 || strings.Contains(r.stderr, "definitely-not-the-secret") {
		t.Fatalf("wrong S3 secret: exit %d (want 12)\n%s", r.code, r.stderr)
	}
	t.Log(strings.TrimSpace(r.stderr))
	for _, tc := range []struct {
		name  string
		env   func()
		store string
		code  int
		want  []string // in stderr
	}{
		{"no credentials", func() { noCredentials(t) }, storeURL, cli.ExitCredentials,
			[]string{"no credentials: none in the environment", "Try: set AWS_ACCESS_KEY_ID"}},
		{"missing bucket", func() { srv.SetEnv(t) }, srv.StoreURL("no-such-bucket", "archive"), cli.ExitOutOfWindow,
			[]string{"no archive at s3://no-such-bucket/", "bucket not found: no-such-bucket", "Try: check the bucket name"}},
	} {
		tc.env()
		r = runCmd(t, "list", "--store", tc.store)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != tc.code || len(lines) != 2 {
			t.Fatalf("%s: exit %d (want %d), want an error line and a Try: line:\n%s", tc.name, r.code, tc.code, r.stderr)
		}
		for _, w := range append(tc.want, "error: ") {
			if !strings.Contains(r.stderr, w) {
				t.Fatalf("%s: stderr lacks %q:\n%s", tc.name, w, r.stderr)
			}
		}
		// the SDK's own account (request ids, the credential chain) stays out
		for _, nw := range []string{"RequestID", "operation error", "get identity", "IMDS"} {
			if strings.Contains(r.stderr, nw) {
				t.Fatalf("%s: stderr shows %q:\n%s", tc.name, nw, r.stderr)
			}
		}
		t.Logf("%s: exit %d: %s", tc.name, r.code, strings.TrimSpace(r.stderr))
	}
	srv.SetEnv(t)
	target := eventCoreDB(t)
	r = runCmd(t, "restore", "--store", storeURL, "--target", target, "--to", "latest")
	if r.code != 0 {
		t.Fatalf("restore from S3: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	restoretest.Compare(t, f.SourceURL, target, f.Last)
}

func TestRestorer_InterruptedBySignal(t *testing.T) {
	f := fixture(t)
	bin := testrig.BuildBinary(t, "./cmd/restorer")
	ctx := context.Background()
	target := eventCoreDB(t)
	args := []string{"restore", "--store", f.Dir, "--target", target, "--to", "latest", "--batch-rows", "100", "--parallel", "1"}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if n, _ := stateEvents(ctx, target); n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no batch committed")
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if n, finished := stateEvents(ctx, target); finished {
		t.Logf("the restore finished before the signal (%d rows)", n)
		return
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("after SIGINT: %v (want exit 130)\n%s", err, stderr.String())
	}
	t.Log(strings.TrimSpace(stderr.String()))
	out, err := exec.Command(bin, append(args, "--json")...).Output()
	if err != nil || !strings.Contains(string(out), `"resumed":true`) {
		t.Fatalf("re-run: %v\n%s", err, out)
	}
	restoretest.Compare(t, f.SourceURL, target, f.Last)
}

// noCredentials clears every source of the AWS SDK's default credential
// chain for the rest of the test; EC2 instance metadata is switched off so
// the chain fails at once and offline.
func noCredentials(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "",
		"AWS_CONFIG_FILE": dir + "/config", "AWS_SHARED_CREDENTIALS_FILE": dir + "/credentials",
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
}
