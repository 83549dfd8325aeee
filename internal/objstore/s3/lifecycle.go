package s3

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/tidemark/tidemark/internal/objstore"
)

var _ objstore.Thawer = (*Store)(nil)

// putClassAndLock carries a put's storage class and retention lock. S3
// refuses a locked put without a checksum of the body, so one is sent.
func putClassAndLock(in *s3.PutObjectInput, opts objstore.PutOptions) {
	if opts.StorageClass != "" {
		in.StorageClass = types.StorageClass(opts.StorageClass)
	}
	if opts.Lock.Mode != "" {
		in.ObjectLockMode = types.ObjectLockMode(opts.Lock.Mode)
		until := opts.Lock.Until.UTC()
		in.ObjectLockRetainUntilDate = &until
		in.ChecksumAlgorithm = types.ChecksumAlgorithmSha256
	}
}

// storageClass names S3's default class: S3 leaves it out for STANDARD.
func storageClass(c string) string {
	if c == "" {
		return "STANDARD"
	}
	return c
}

// thawState reads the x-amz-restore header: `ongoing-request="true"`
// while a restore runs, `ongoing-request="false", expiry-date="…"` once
// the temporary copy is readable.
func thawState(h string) objstore.ThawState {
	switch {
	case strings.Contains(h, `ongoing-request="true"`):
		return objstore.ThawPending
	case strings.Contains(h, `ongoing-request="false"`):
		return objstore.ThawDone
	}
	return objstore.ThawNone
}

// Thaw issues a RestoreObject request for a cold object. S3 answers a
// request already in progress with RestoreAlreadyInProgress (409), which
// is success here.
func (s *Store) Thaw(ctx context.Context, key string, days int, tier string) error {
	if err := objstore.ValidateKey(key); err != nil {
		return fmt.Errorf("s3: thaw %s: %w", key, err)
	}
	if tier == "" {
		tier = string(types.TierStandard)
	}
	_, err := s.client.RestoreObject(ctx, &s3.RestoreObjectInput{
		Bucket: aws.String(s.loc.bucket),
		Key:    aws.String(s.fullKey(key)),
		RestoreRequest: &types.RestoreRequest{Days: aws.Int32(int32(days)),
			GlacierJobParameters: &types.GlacierJobParameters{Tier: types.Tier(tier)}},
	})
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "RestoreAlreadyInProgress" {
		return nil
	}
	if err != nil {
		return s.wrap("thaw", key, err)
	}
	return nil
}
