package s3fault

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// rig is one real S3 server, a bucket, and a proxy in front of it.
type rig struct {
	srv    *testrig.S3
	bucket string
	proxy  *Proxy
	client *s3.Client // talks to the proxy, one attempt per call
}

func newRig(t *testing.T, seed uint64) *rig {
	t.Helper()
	srv := testrig.StartS3(t)
	p, err := New(srv.Endpoint, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	client := s3.New(s3.Options{
		Region:                     srv.Region,
		BaseEndpoint:               aws.String(p.URL()),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
		RetryMaxAttempts:           1,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	return &rig{srv: srv, bucket: srv.NewBucket(t), proxy: p, client: client}
}

func (r *rig) put(ctx context.Context, key string, body []byte) error {
	_, err := r.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &r.bucket, Key: &key,
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))})
	return err
}

func (r *rig) get(ctx context.Context, key string) ([]byte, error) {
	out, err := r.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &r.bucket, Key: &key})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// direct reads an object from the server itself, bypassing the proxy.
func (r *rig) direct(ctx context.Context, key string) ([]byte, error) {
	out, err := r.srv.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: &r.bucket, Key: &key})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func TestProxy_PassPreservesSignature(t *testing.T) {
	r := newRig(t, 1)
	ctx := context.Background()
	body := []byte("signed through the proxy")
	if err := r.put(ctx, "a/b.txt", body); err != nil {
		t.Fatalf("put via proxy: %v", err)
	}
	got, err := r.get(ctx, "a/b.txt")
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("get via proxy = %q, %v", got, err)
	}
	if _, err := r.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &r.bucket}); err != nil {
		t.Fatalf("list via proxy: %v", err)
	}
	if s := r.proxy.Stats(); s.Requests != 3 || len(s.Hits) != 0 {
		t.Errorf("stats = %+v; want 3 requests, no hits", s)
	}
}

func TestProxy_BadSignatureStillRejected(t *testing.T) {
	r := newRig(t, 1)
	bad := s3.New(s3.Options{Region: r.srv.Region, BaseEndpoint: aws.String(r.proxy.URL()), UsePathStyle: true,
		Credentials:      credentials.NewStaticCredentialsProvider(r.srv.AccessKey, "wrong-secret", ""),
		RetryMaxAttempts: 1})
	_, err := bad.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &r.bucket})
	if st := httpStatus(err); st != http.StatusForbidden {
		t.Errorf("list with a wrong secret: status %d (%v); want 403 from upstream", st, err)
	}
}

func TestProxy_ErrorStorm(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			r := newRig(t, 1)
			ctx := context.Background()
			r.proxy.SetRules(ErrorStorm(status, 1, 2))
			for i := range 2 {
				if err := r.put(ctx, "k", []byte("x")); httpStatus(err) != status {
					t.Fatalf("put %d: status %d (%v); want %d", i, httpStatus(err), err, status)
				}
			}
			if _, err := r.direct(ctx, "k"); err == nil {
				t.Fatal("a failed put reached the server")
			}
			if err := r.put(ctx, "k", []byte("x")); err != nil {
				t.Fatalf("put after the storm: %v", err)
			}
			if got := r.proxy.Stats().Hits[Fail]; got != 2 {
				t.Errorf("fail hits = %d; want 2", got)
			}
		})
	}
}

func TestProxy_ProbabilityIsSeeded(t *testing.T) {
	outcomes := func(seed uint64) string {
		r := newRig(t, seed)
		r.proxy.SetRules(Rule{Action: Fail, Method: http.MethodGet, Probability: 0.5})
		ctx := context.Background()
		if err := r.put(ctx, "k", []byte("x")); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for range 40 {
			if _, err := r.get(ctx, "k"); err != nil {
				b.WriteByte('F')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	a, b := outcomes(7), outcomes(7)
	if a != b {
		t.Errorf("same seed, different outcomes:\n%s\n%s", a, b)
	}
	if !strings.Contains(a, "F") || !strings.Contains(a, ".") {
		t.Errorf("p=0.5 over 40 requests gave %s; want a mix", a)
	}
}

func TestProxy_Slow(t *testing.T) {
	r := newRig(t, 1)
	ctx := context.Background()
	r.proxy.SetRules(SlowResponses(300 * time.Millisecond))
	start := time.Now()
	if err := r.put(ctx, "k", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Errorf("slow put took %v; want >= 300ms", el)
	}
}

func TestProxy_TruncatedGet(t *testing.T) {
	r := newRig(t, 1)
	ctx := context.Background()
	body := bytes.Repeat([]byte("0123456789"), 10_000)
	if err := r.put(ctx, "big", body); err != nil {
		t.Fatal(err)
	}
	r.proxy.SetRules(TruncatedGets(1, 1))
	got, err := r.get(ctx, "big")
	if err == nil {
		t.Fatalf("truncated get returned %d bytes and no error", len(got))
	}
	if len(got) >= len(body) {
		t.Errorf("truncated get returned %d bytes; want fewer than %d", len(got), len(body))
	}
	if got, err := r.get(ctx, "big"); err != nil || !bytes.Equal(got, body) {
		t.Errorf("get after the rule retired: %d bytes, %v", len(got), err)
	}
	if n := r.proxy.Stats().Hits[Truncate]; n != 1 {
		t.Errorf("truncate hits = %d; want 1", n)
	}
}

func TestProxy_LostPutAck(t *testing.T) {
	r := newRig(t, 1)
	ctx := context.Background()
	r.proxy.SetRules(LostPutAcks("/segments/", 1))
	body := []byte("it landed")
	err := r.put(ctx, "segments/one", body)
	if httpStatus(err) != http.StatusInternalServerError {
		t.Fatalf("put: status %d (%v); want 500", httpStatus(err), err)
	}
	got, err := r.direct(ctx, "segments/one")
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("object on the server = %q, %v; want the whole body", got, err)
	}
	// A conditional retry now meets the object that did land.
	key := "segments/one"
	_, err = r.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &r.bucket, Key: &key,
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))), IfNoneMatch: aws.String("*")})
	if st := httpStatus(err); st != http.StatusPreconditionFailed {
		t.Errorf("conditional retry: status %d (%v); want 412", st, err)
	}
	// Other paths and methods are untouched.
	if err := r.put(ctx, "catalog/x", body); err != nil {
		t.Errorf("put outside the rule's path: %v", err)
	}
	if n := r.proxy.Stats().Hits[LoseResponse]; n != 1 {
		t.Errorf("lose-response hits = %d; want 1", n)
	}
}
