// Package cdn tells a CDN to forget paths it keeps: CloudFront, through
// aws-sdk-go-v2. Its errors are its own, never the SDK's.
package cdn

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/smithy-go"
)

// The failures of an invalidation, translated from CloudFront's.
var (
	// ErrUnavailable: CloudFront is throttling, has too many invalidations
	// in progress, or cannot be reached; the same call may succeed later.
	ErrUnavailable = errors.New("CDN unavailable")
	// ErrAccessDenied: the credentials may not invalidate this
	// distribution (the task role lacks cloudfront:CreateInvalidation), or
	// there is no such distribution.
	ErrAccessDenied = errors.New("CDN access denied")
	// ErrRefused: CloudFront refuses the paths sent (InvalidArgument: one
	// or more of them it will never take); the same call fails again.
	ErrRefused = errors.New("CDN refused the paths")
)

// batchSize is the most paths sent in one invalidation: CloudFront holds
// at most 3,000 paths in progress per distribution, and one purge should
// not take all of them.
const batchSize = 1000

// CloudFront invalidates paths of one distribution.
type CloudFront struct {
	client       *cloudfront.Client
	distribution string
}

// NewCloudFront returns an invalidator of the distribution. awsCfg holds
// the credentials (the ECS task role); endpoint, when not empty, replaces
// AWS's (tests). Nothing is sent until the first call.
func NewCloudFront(distribution string, awsCfg aws.Config, endpoint string) (*CloudFront, error) {
	if distribution == "" {
		return nil, errors.New("cdn: no CloudFront distribution id")
	}
	c := cloudfront.NewFromConfig(awsCfg, func(o *cloudfront.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	return &CloudFront{client: c, distribution: distribution}, nil
}

// Invalidate asks CloudFront to forget paths (each from its leading slash,
// escaped as requested), in batches. It returns once every batch is
// accepted, not once CloudFront has finished (a minute or so). Errors wrap
// ErrUnavailable, ErrAccessDenied or ErrRefused, or carry CloudFront's own words.
func (c *CloudFront) Invalidate(ctx context.Context, paths []string) error {
	for start := 0; start < len(paths); start += batchSize {
		batch := paths[start:min(start+batchSize, len(paths))]
		_, err := c.client.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{
			DistributionId: aws.String(c.distribution),
			InvalidationBatch: &types.InvalidationBatch{
				// Unique per call: CloudFront takes a reference it has
				// seen for a resubmission and does nothing, but the same
				// paths invalidated again later must be invalidated again.
				CallerReference: aws.String(strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + rand.Text()[:10]),
				Paths:           &types.Paths{Quantity: aws.Int32(int32(len(batch))), Items: batch},
			},
		})
		if err != nil {
			return fmt.Errorf("invalidate %d paths of %s: %w", len(batch), c.distribution, translate(err))
		}
	}
	return nil
}

// translate maps CloudFront's errors to this package's.
func translate(err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "TooManyInvalidationsInProgress", "Throttling", "ServiceUnavailable", "InternalError", "RequestLimitExceeded":
			return fmt.Errorf("%w: %s", ErrUnavailable, apiErr.ErrorCode())
		case "AccessDenied", "NoSuchDistribution", "InvalidClientTokenId", "SignatureDoesNotMatch":
			return fmt.Errorf("%w: %s", ErrAccessDenied, apiErr.ErrorCode())
		case "InvalidArgument":
			return fmt.Errorf("%w: %s: %s", ErrRefused, apiErr.ErrorCode(), apiErr.ErrorMessage())
		}
		return fmt.Errorf("%s: %s", apiErr.ErrorCode(), apiErr.ErrorMessage())
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}
