package s3

import (
	"context"
	"errors"
	"fmt"
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
	msg     string // scrubbed SDK error text, or a short reason
	hint    string // what the operator can do, for objstore.Hint
}

func (e *opError) Error() string {
	if e.kind != nil {
		return "s3: " + e.op + " " + e.key + ": " + e.kind.Error() + ": " + e.msg
	}
	return "s3: " + e.op + " " + e.key + ": " + e.msg
}

// Hint says what the operator can do about a missing bucket or missing or
// refused credentials ("" for other failures); see objstore.Hint.
func (e *opError) Hint() string { return e.hint }

// Unwrap exposes the sentinel and, for context errors and SDK error types,
// the underlying error.
func (e *opError) Unwrap() []error {
	if e.kind != nil {
		return []error{e.kind, e.err}
	}
	return []error{e.err}
}

// wrap classifies an SDK error and scrubs secrets from its text. A
// missing bucket or missing credentials concern the store, not the
// operation: their text is one short reason, not the SDK's.
func (s *Store) wrap(op, key string, err error) error {
	e := &opError{op: op, key: key, kind: classify(err), err: err}
	var ce *credentialsError
	switch {
	case errors.As(err, &ce):
		e.kind, e.msg, e.hint = objstore.ErrNoCredentials, ce.reason, ce.hint
	case e.kind == objstore.ErrBucketNotFound:
		e.msg, e.hint = s.loc.bucket, hintNoBucket
	case e.kind == objstore.ErrAccessDenied:
		e.msg, e.hint = s.secrets.scrubString(err.Error()), hintAccessDenied
	default:
		e.msg = s.secrets.scrubString(err.Error())
	}
	return e
}

// Hints for objstore.Hint; the CLIs print them as "Try: …".
const (
	hintNoBucket = "check the bucket name, endpoint and region in the store URL; " +
		"Tidemark never creates a bucket, so create it first for a new archive"
	hintAccessDenied = "check the S3 credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, " +
		"or the profile or role in use) and their permissions on the bucket"
	hintNoCredentials = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, " +
		"or run where an instance or pod role supplies credentials"
	hintCredentialSource = "fix the credential source named above, " +
		"or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead"
)

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
			return objstore.ErrBucketNotFound // a configuration error, not an absent key
		case "InvalidObjectState":
			return objstore.ErrCold // an archived object read before its restore finished
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

// credentialsError is the default credential chain's failure to supply
// credentials; errors.Is(err, objstore.ErrNoCredentials) holds for it.
type credentialsError struct {
	reason string // scrubbed
	hint   string
}

func (e *credentialsError) Error() string        { return "no credentials: " + e.reason }
func (e *credentialsError) Is(target error) bool { return target == objstore.ErrNoCredentials }

// noneConfigured is the reason given when the chain found nothing to try
// but the EC2 instance role, and that failed too: the usual case of
// credentials simply not set.
const noneConfigured = "none in the environment, the shared AWS config files or EC2 instance metadata"

// recordingProvider remembers the secrets of the credentials it hands to
// the signer, whichever provider of the default chain produced them, and
// turns the chain's failure into a *credentialsError.
type recordingProvider struct {
	inner   aws.CredentialsProvider
	secrets *secretSet
	// instanceRoleOnly: nothing was configured, so the chain fell back to
	// the EC2 instance role; its failure means there are no credentials,
	// and the SDK's account of the metadata service's answer is noise.
	instanceRoleOnly bool
}

func (p *recordingProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.inner.Retrieve(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return c, fmt.Errorf("retrieve credentials: %w", ctx.Err())
		}
		if p.instanceRoleOnly {
			return c, &credentialsError{reason: noneConfigured, hint: hintNoCredentials}
		}
		return c, &credentialsError{reason: p.secrets.scrubString(err.Error()), hint: hintCredentialSource}
	}
	p.secrets.add(c.SecretAccessKey)
	p.secrets.add(c.SessionToken)
	return c, nil
}
