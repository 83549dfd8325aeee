package s3

import (
	"context"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// addMetrics counts and times every HTTP attempt (retries and multipart
// parts included), labelled with the S3 operation name ("PutObject",
// "UploadPart", …).
func addMetrics(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("TidemarkMetrics",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			op := awsmiddleware.GetOperationName(ctx)
			start := time.Now()
			out, md, err := next.HandleFinalize(ctx, in)
			requestsTotal.WithLabelValues(op).Inc()
			requestSeconds.WithLabelValues(op).Observe(time.Since(start).Seconds())
			if err != nil {
				requestErrorsTotal.WithLabelValues(op).Inc()
			}
			return out, md, err
		}), middleware.After)
}

var (
	requestsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tidemark_s3_requests_total",
		Help: "S3 HTTP requests sent (each retry attempt and multipart part counts), by operation.",
	}, []string{"operation"})
	requestErrorsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "tidemark_s3_request_errors_total",
		Help: "S3 HTTP requests that failed (including expected 404 and 412 answers), by operation.",
	}, []string{"operation"})
	requestSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tidemark_s3_request_duration_seconds",
		Help:    "Latency of S3 HTTP requests, by operation.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
	}, []string{"operation"})
)
