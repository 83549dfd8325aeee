package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"

	"github.com/tidemark/tidemark/internal/objstore"
)

var _ objstore.Store = (*Store)(nil)

// Defaults for Options' zero values.
const (
	// DefaultPartSize is the multipart part size; objects up to it are
	// stored with one PutObject.
	DefaultPartSize = 16 << 20
	// MinPartSize is S3's smallest allowed part (except the last).
	MinPartSize = 5 << 20
	// DefaultConcurrency is the number of parts uploaded at once.
	DefaultConcurrency = 4
	// DefaultMaxAttempts bounds the attempts per request (1 + retries);
	// retries back off exponentially with jitter, up to 20 s apart.
	DefaultMaxAttempts = 8
	// DefaultRegion is used when neither options, URL nor the environment
	// name a region.
	DefaultRegion = "us-east-1"
)

// Options configure the S3 client beyond what the URL says. Non-zero
// fields win over the URL's query parameters.
type Options struct {
	// AccessKey and SecretKey are static credentials; when AccessKey is
	// empty the SDK's default chain is used (AWS_ACCESS_KEY_ID /
	// AWS_SECRET_ACCESS_KEY, shared profiles, web identity, IMDS).
	AccessKey, SecretKey string
	// SessionToken accompanies temporary static credentials.
	SessionToken string
	// Endpoint is the base URL of an S3-compatible server
	// ("http://127.0.0.1:7070"); empty means AWS.
	Endpoint string
	// Region is the bucket's region (default: URL, AWS_REGION, us-east-1).
	Region string
	// ForcePathStyle addresses buckets as endpoint/bucket/key. Path style is
	// also the default whenever a custom endpoint is set, unless the URL
	// says path_style=false.
	ForcePathStyle bool
	// PartSize is the multipart part size in bytes (default 16 MiB, at
	// least 5 MiB); it is also the largest object sent with one PutObject.
	PartSize int64
	// Concurrency is the number of parts uploaded in parallel (default 4).
	Concurrency int
	// MaxAttempts bounds the attempts per request (default 8).
	MaxAttempts int
}

// Store is an S3 bucket, or a prefix of one.
type Store struct {
	client   *s3.Client
	upload   func(context.Context, *s3.PutObjectInput) error // multipart
	loc      location
	partSize int64
	secrets  *secretSet
}

// Open parses rawURL ("s3://bucket/prefix?endpoint=…&region=…&path_style=true")
// and returns a Store. It does not contact the server; the first request
// reports an unreachable endpoint, a missing bucket (ErrBucketNotFound),
// missing credentials (ErrNoCredentials) or rejected ones (ErrAccessDenied).
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	loc, err := parseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("s3: open: %w", err)
	}
	if opts.Endpoint != "" {
		if err := validEndpoint(opts.Endpoint); err != nil {
			return nil, fmt.Errorf("s3: open: %w", err)
		}
		loc.endpoint = strings.TrimRight(opts.Endpoint, "/")
	}
	if opts.Region != "" {
		loc.region = opts.Region
	}
	if opts.ForcePathStyle {
		t := true
		loc.pathStyle = &t
	}
	pathStyle := loc.endpoint != ""
	if loc.pathStyle != nil {
		pathStyle = *loc.pathStyle
	}
	partSize := opts.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	if partSize < MinPartSize {
		return nil, fmt.Errorf("s3: open: part size %d is below the minimum %d", partSize, MinPartSize)
	}
	concurrency := opts.Concurrency
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	attempts := opts.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	if opts.AccessKey != "" && opts.SecretKey == "" {
		return nil, errors.New("s3: open: an access key was given without a secret key")
	}

	secrets := &secretSet{}
	secrets.add(opts.SecretKey)
	secrets.add(opts.SessionToken)
	loadOpts := []func(*config.LoadOptions) error{
		config.WithLogger(logging.Nop{}),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				// A backup must keep trying through an outage rather than
				// fail fast when a client-side retry quota runs out.
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if loc.region != "" {
		loadOpts = append(loadOpts, config.WithRegion(loc.region))
	}
	if loc.profile != "" && opts.AccessKey == "" {
		// A store of its own account (a copy in another region or
		// provider): its shared-config profile, not the default chain's.
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(loc.profile))
	}
	if opts.AccessKey != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKey, opts.SecretKey, opts.SessionToken)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3: open: load aws config: %w", secrets.scrub(err))
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.Credentials != nil {
		cfg.Credentials = &recordingProvider{inner: cfg.Credentials, secrets: secrets,
			instanceRoleOnly: aws.IsCredentialsProvider(cfg.Credentials, (*ec2rolecreds.Provider)(nil))}
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = pathStyle
		if loc.endpoint != "" {
			o.BaseEndpoint = aws.String(loc.endpoint)
		}
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.APIOptions = append(o.APIOptions, addMetrics)
	})
	//lint:ignore SA1019 manager.Uploader is stable and copies IfNoneMatch into CompleteMultipartUpload; its successor transfermanager is pre-1.0.
	uploader := manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = partSize
		u.Concurrency = concurrency
		u.LeavePartsOnError = false // abort refused or failed uploads
	})
	upload := func(ctx context.Context, in *s3.PutObjectInput) error {
		//lint:ignore SA1019 see NewUploader above.
		_, err := uploader.Upload(ctx, in)
		return err
	}
	return &Store{client: client, upload: upload, loc: loc, partSize: partSize, secrets: secrets}, nil
}

// String returns the store's URL; it never contains credentials.
func (s *Store) String() string { return s.loc.String() }

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.loc.bucket }

func (s *Store) fullKey(key string) string { return s.loc.prefix + key }

// Put stores the object. Objects up to PartSize go up with one PutObject
// (buffered, so retries can resend them); larger ones with a multipart
// upload whose completion carries If-None-Match when IfAbsent is set.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, opts objstore.PutOptions) error {
	if err := objstore.ValidateKey(key); err != nil {
		return fmt.Errorf("s3: put %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: put %s: %w", key, err)
	}
	head, err := readHead(r, size, s.partSize)
	if err != nil {
		return fmt.Errorf("s3: put %s: %w", key, err)
	}
	if (size >= 0 && size <= s.partSize) || (size < 0 && int64(len(head)) <= s.partSize) {
		in := &s3.PutObjectInput{
			Bucket:        aws.String(s.loc.bucket),
			Key:           aws.String(s.fullKey(key)),
			Body:          bytes.NewReader(head),
			ContentLength: aws.Int64(int64(len(head))),
		}
		if opts.IfAbsent {
			in.IfNoneMatch = aws.String("*")
		}
		putClassAndLock(in, opts)
		if _, err := s.client.PutObject(ctx, in); err != nil {
			return s.wrap("put", key, err)
		}
		return nil
	}
	body := io.MultiReader(bytes.NewReader(head), r)
	if size >= 0 {
		body = &exactReader{r: body, want: size}
	}
	in := &s3.PutObjectInput{
		Bucket: aws.String(s.loc.bucket),
		Key:    aws.String(s.fullKey(key)),
		Body:   body,
	}
	if opts.IfAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	putClassAndLock(in, opts)
	if err := s.upload(ctx, in); err != nil {
		return s.wrap("put", key, err)
	}
	return nil
}

// readHead reads the start of a body: all of it when size is known and
// small, otherwise up to limit+1 bytes (one more than fits in one request).
func readHead(r io.Reader, size, limit int64) ([]byte, error) {
	if size >= 0 && size <= limit {
		buf := make([]byte, size)
		if _, err := io.ReadFull(r, buf); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("body is shorter than its size %d", size)
			}
			return nil, fmt.Errorf("read body: %w", err)
		}
		var one [1]byte
		if n, _ := io.ReadFull(r, one[:]); n > 0 {
			return nil, fmt.Errorf("body is longer than its size %d", size)
		}
		return buf, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return buf, nil
}

// exactReader fails the upload when the body's length differs from the
// size the caller promised, so a short body never becomes an object.
type exactReader struct {
	r    io.Reader
	want int64
	n    int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.n += int64(n)
	if e.n > e.want {
		return n, fmt.Errorf("body is longer than its size %d", e.want)
	}
	if errors.Is(err, io.EOF) && e.n < e.want {
		return n, fmt.Errorf("body is shorter than its size %d", e.want)
	}
	return n, err
}

// Get opens the object; the caller closes the body.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return nil, objstore.ObjectInfo{}, fmt.Errorf("s3: get %s: %w", key, err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.loc.bucket),
		Key:    aws.String(s.fullKey(key)),
	})
	if err != nil {
		return nil, objstore.ObjectInfo{}, s.wrap("get", key, err)
	}
	info := objstore.ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified).UTC()}
	return out.Body, info, nil
}

// Stat returns the object's size and modification time (HeadObject).
func (s *Store) Stat(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("s3: stat %s: %w", key, err)
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.loc.bucket),
		Key:    aws.String(s.fullKey(key)),
	})
	if err != nil {
		werr := s.wrap("stat", key, err)
		if errors.Is(werr, objstore.ErrNotFound) {
			return objstore.ObjectInfo{}, s.whyNotFound(ctx, key, werr)
		}
		return objstore.ObjectInfo{}, werr
	}
	return objstore.ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified).UTC(),
		StorageClass: storageClass(string(out.StorageClass)),
		Lock:         objstore.Retention{Mode: string(out.ObjectLockMode), Until: aws.ToTime(out.ObjectLockRetainUntilDate).UTC()},
		Thaw:         thawState(aws.ToString(out.Restore))}, nil
}

// whyNotFound tells a missing key from a missing bucket or a refused
// request after a HEAD answered 404: HEAD responses carry no error code
// (and some servers answer an unknown access key with 404). A one-key
// listing does carry one. It returns notFound when the bucket is there.
func (s *Store) whyNotFound(ctx context.Context, key string, notFound error) error {
	_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.loc.bucket),
		Prefix:  aws.String(s.fullKey(key)),
		MaxKeys: aws.Int32(1),
	})
	if err == nil {
		return notFound
	}
	werr := s.wrap("stat", key, err)
	if errors.Is(werr, objstore.ErrBucketNotFound) || errors.Is(werr, objstore.ErrAccessDenied) {
		return werr
	}
	return notFound
}

// List pages through ListObjectsV2 and returns the objects in key order.
func (s *Store) List(ctx context.Context, prefix, startAfter string) ([]objstore.ObjectInfo, error) {
	in := &s3.ListObjectsV2Input{
		Bucket: aws.String(s.loc.bucket),
		Prefix: aws.String(s.fullKey(prefix)),
	}
	if startAfter != "" {
		in.StartAfter = aws.String(s.fullKey(startAfter))
	}
	var out []objstore.ObjectInfo
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.wrap("list", prefix, err)
		}
		for _, o := range page.Contents {
			k, ok := strings.CutPrefix(aws.ToString(o.Key), s.loc.prefix)
			if !ok || k <= startAfter || strings.HasSuffix(k, "/") {
				continue // directory markers some servers report
			}
			out = append(out, objstore.ObjectInfo{Key: k, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified).UTC(),
				StorageClass: storageClass(string(o.StorageClass))})
		}
	}
	slices.SortFunc(out, func(a, b objstore.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Delete removes the object; S3 does not report absent keys as errors.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := objstore.ValidateKey(key); err != nil {
		return fmt.Errorf("s3: delete %s: %w", key, err)
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.loc.bucket),
		Key:    aws.String(s.fullKey(key)),
	})
	if err != nil {
		werr := s.wrap("delete", key, err)
		if errors.Is(werr, objstore.ErrNotFound) {
			return nil
		}
		return werr
	}
	return nil
}
