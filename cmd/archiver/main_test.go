package main

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/segment"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func TestKeygen(t *testing.T) {
	cmd := exec.Command(testrig.BuildBinary(t, "./cmd/archiver"), "keygen")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, stderr.String())
	}
	kr, err := segment.ParseKeyring(stdout.String())
	if err != nil {
		t.Fatalf("keygen output is not a keyring: %v", err)
	}
	if want := "key id: " + kr.ActiveID(); !strings.Contains(stderr.String(), want) {
		t.Fatalf("stderr %q does not name the key id (%s)", stderr.String(), want)
	}
	if strings.Contains(stderr.String(), "AGE-SECRET-KEY") {
		t.Fatal("the secret key went to stderr")
	}
}

func TestRun_ConfigErrorsAreUsageErrors(t *testing.T) {
	bin := testrig.BuildBinary(t, "./cmd/archiver")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"bad env duration", []string{"TIDEMARK_ARCHIVER_FLUSH_INTERVAL=soon"}, []string{"run"}, "flush-interval"},
		{"bad compression", nil, []string{"run", "--compression", "lz4"}, "Try:"},
		{"bad bucket width", nil, []string{"run", "--bucket-width", "7m"}, "bucket width"},
		{"missing key file", nil, []string{"run", "--encryption-key-file", "/nonexistent/key"}, "encryption keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Env = append(cmd.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want 2; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}
