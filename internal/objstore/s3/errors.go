package s3

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/tidemark/tidemark/internal/objstore"
)

// opError is a failed S3 operation: "s3: put <key>: <kind>: <sdk error>".
// Its message never contains the credentials the client used.
type opError struct {
	op, key string
	kind    error // an objstore sentinel, or nil
	err     error
	msg     string // scrubbed SDK error text
}

func (e *opError) Error() string {
	if e.kind != nil {
		return "s3: " + e.op + " " + e.key + ": " + e.kind.Error() + ": " + e.msg
	}
	return "s3: " + e.op + " " + e.key + ": " + e.msg
}

// Unwrap exposes the sentinel and, for context errors and SDK error types,
// the underlying error.
func (e *opError) Unwrap() []error {
	if e.kind != nil {
		return []error{e.kind, e.err}
	}
	return []error{e.err}
}

// wrap classifies an SDK error and scrubs secrets from its text.
func (s *Store) wrap(op, key string, err error) error {
	return &opError{op: op, key: key, kind: classify(err), err: err, msg: s.secrets.scrubString(err.Error())}
}

// classify maps S3 error codes and HTTP statuses to objstore sentinels.
func classify(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		// Codes first: a 404 can mean a missing bucket or user, not a missing key.
		switch ae.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return objstore.ErrExists
		case "NoSuchKey", "NotFound":
			return objstore.ErrNotFound
		case "NoSuchBucket":
			return nil // a missing bucket is a configuration error, not an absent key
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden",
			"InvalidToken", "ExpiredToken", "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem",
			"XAdminUserNotFound": // versitygw answers an unknown access key with 404 XAdminUserNotFound
			return objstore.ErrAccessDenied
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusPreconditionFailed:
			return objstore.ErrExists
		case http.StatusNotFound:
			return objstore.ErrNotFound
		case http.StatusForbidden:
			return objstore.ErrAccessDenied
		}
	}
	return nil
}

// secretSet holds every secret the client has used, so error texts can be
// scrubbed of them.
type secretSet struct {
	mu   sync.RWMutex
	list []string
}

func (s *secretSet) add(v string) {
	if len(v) < 4 {
		return // too short to scrub without mangling ordinary text
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, have := range s.list {
		if have == v {
			return
		}
	}
	s.list = append(s.list, v)
}

func (s *secretSet) scrubString(msg string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.list {
		msg = strings.ReplaceAll(msg, v, "[REDACTED]")
	}
	return msg
}

// scrub returns err with secrets removed from its text (and no chain: the
// chain could print them).
func (s *secretSet) scrub(err error) error {
	return errors.New(s.scrubString(err.Error()))
}

// recordingProvider remembers the secrets of the credentials it hands to
// the signer, whichever provider of the default chain produced them.
type recordingProvider struct {
	inner   aws.CredentialsProvider
	secrets *secretSet
}

func (p *recordingProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.inner.Retrieve(ctx)
	if err != nil {
		return c, p.secrets.scrub(err)
	}
	p.secrets.add(c.SecretAccessKey)
	p.secrets.add(c.SessionToken)
	return c, nil
}
