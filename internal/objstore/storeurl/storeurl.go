package storeurl

import (
	"context"
	"fmt"
	"strings"

	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/objstore/s3"
)

// Options carry backend settings that do not belong in a URL.
type Options struct {
	// S3 configures s3:// stores (static credentials, part size, …); its
	// non-zero fields win over the URL's query parameters.
	S3 s3.Options
}

// Open opens "s3://bucket/prefix?endpoint=…&region=…", "file:///path" or a
// bare directory path with default options (S3 credentials from the SDK's
// default chain).
func Open(ctx context.Context, rawURL string) (objstore.Store, error) {
	return OpenWith(ctx, rawURL, Options{})
}

// OpenWith opens a store like Open, with backend options. A scheme other
// than s3 or file is an error naming it.
func OpenWith(ctx context.Context, rawURL string, opts Options) (objstore.Store, error) {
	switch scheme := Scheme(rawURL); scheme {
	case "s3":
		return s3.Open(ctx, rawURL, opts.S3)
	case "file":
		dir, err := file.PathFromURL(rawURL)
		if err != nil {
			return nil, err
		}
		return file.Open(dir)
	default:
		return nil, fmt.Errorf("open store: unsupported scheme %q (want s3://, file:// or a path)", scheme)
	}
}

// Scheme returns the URL scheme of a store location in lower case, or
// "file" for a bare path (one without "://").
func Scheme(rawURL string) string {
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok || scheme == "" || strings.ContainsAny(scheme, "/\\") {
		return "file"
	}
	return strings.ToLower(scheme)
}
