package testrig

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// s3StartTimeout bounds how long the gateway may take to answer requests.
const s3StartTimeout = 60 * time.Second

// S3 is a versitygw S3 gateway process serving a posix directory.
type S3 struct {
	// Endpoint is the gateway URL ("http://127.0.0.1:PORT").
	Endpoint string
	// Region is the region the gateway reports ("us-east-1").
	Region string
	// AccessKey is the root access key id.
	AccessKey string
	// SecretKey is the root secret key (random per rig; never log it).
	SecretKey string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// DataDir is the posix backend directory: one subdirectory per bucket.
	DataDir string
	// LogPath is the gateway log file.
	LogPath string

	proc *testkit.Proc
}

// StartS3 starts a versitygw gateway in a test temporary directory and
// stops it when the test ends.
func StartS3(tb testing.TB) *S3 {
	tb.Helper()
	s, err := StartS3Process(context.Background(), tb.TempDir())
	if err != nil {
		tb.Fatalf("testrig: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("testrig: %v", err)
		}
	})
	return s
}

// StartS3Process starts a versitygw gateway (bin/versitygw, built from the
// tool pinned in go.mod if missing) with its posix backend under dir; the
// caller stops it with Stop.
func StartS3Process(ctx context.Context, dir string) (*S3, error) {
	bin, err := toolBinary(ctx, "versitygw", "github.com/versity/versitygw/cmd/versitygw")
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve s3 dir: %w", err)
	}
	s := &S3{
		Region:    "us-east-1",
		AccessKey: "tidemark" + randomHex(4),
		SecretKey: randomHex(20),
		DataDir:   filepath.Join(dir, "s3data"),
		LogPath:   filepath.Join(dir, "versitygw.log"),
	}
	if err := os.MkdirAll(s.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create s3 dir: %w", err)
	}
	if s.Port, err = testkit.FreePort(); err != nil {
		return nil, err
	}
	s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(s.Port)
	cmd := exec.Command(bin, "--port", "127.0.0.1:"+strconv.Itoa(s.Port),
		"--region", s.Region, "--quiet", "posix", s.DataDir)
	cmd.Dir = dir
	// Credentials go through the environment, not argv, so ps never shows
	// the secret.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	if s.proc, err = testkit.Start("versitygw", cmd, s.LogPath); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		_ = s.proc.Stop(10*time.Second, syscall.SIGKILL)
		return nil, startupError("versitygw", s.LogPath, err)
	}
	return s, nil
}

func (s *S3) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s3StartTimeout)
	defer cancel()
	client := s.Client()
	var lastErr error
	for {
		if exited, err := s.proc.Exited(); exited {
			return fmt.Errorf("versitygw exited: %v", err)
		}
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := client.ListBuckets(rctx, &s3.ListBucketsInput{})
		rcancel()
		if err == nil {
			return nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("versitygw not ready on port %d: %w (last: %v)", s.Port, ctx.Err(), lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Client returns an S3 client for the gateway (path-style addressing,
// static root credentials).
func (s *S3) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:           s.Region,
		BaseEndpoint:     aws.String(s.Endpoint),
		UsePathStyle:     true,
		Credentials:      credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		RetryMaxAttempts: 1,
	})
}

var bucketCounter atomic.Int64

// NewBucket creates a fresh, uniquely named bucket and returns its name.
func (s *S3) NewBucket(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("tm-%d-%d-%s", os.Getpid(), bucketCounter.Add(1), randomHex(3))
	if err := s.CreateBucket(context.Background(), name); err != nil {
		tb.Fatalf("testrig: %v", err)
	}
	return name
}

// CreateBucket creates the bucket name.
func (s *S3) CreateBucket(ctx context.Context, name string) error {
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	return nil
}

// StoreURL returns the objstore URL of prefix in bucket:
// "s3://bucket/prefix?endpoint=http://127.0.0.1:PORT&region=us-east-1".
// Credentials are not part of it (see SetEnv).
func (s *S3) StoreURL(bucket, prefix string) string {
	return "s3://" + bucket + "/" + prefix + "?endpoint=" + s.Endpoint + "&region=" + url.QueryEscape(s.Region)
}

// SetEnv exports the gateway's credentials as AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (and AWS_REGION) for the rest of the test. Like
// t.Setenv it cannot be used in parallel tests.
func (s *S3) SetEnv(tb testing.TB) {
	tb.Helper()
	tb.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	tb.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	tb.Setenv("AWS_REGION", s.Region)
}

// Env returns the credential environment variables (KEY=value) for a child
// process such as a Tidemark binary.
func (s *S3) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region,
	}
}

// PID returns the gateway's process id.
func (s *S3) PID() int { return s.proc.PID() }

// Stop stops the gateway (SIGTERM) and waits for it to exit.
func (s *S3) Stop() error {
	if err := s.proc.Stop(15*time.Second, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop versitygw: %w", err)
	}
	return nil
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("testrig: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}
