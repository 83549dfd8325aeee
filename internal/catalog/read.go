package catalog

import (
	"context"
	"errors"
	"time"

	"github.com/tidemark/tidemark/internal/objstore"
)

// readAttempts bounds how often a catalog object is read when the read
// fails in transit (a body cut short, a reset connection); the SDK retries
// failed requests, but not a body that breaks off after the response began.
const readAttempts = 3

// readObject reads a whole catalog object of at most limit bytes, retrying
// transient failures. Absence, refusal, oversize and context ends are
// returned at once.
func readObject(ctx context.Context, store objstore.Store, key string, limit int64) ([]byte, error) {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		b, err := objstore.ReadAll(ctx, store, key, limit)
		var tooLarge *objstore.TooLargeError
		if err == nil || attempt == readAttempts || ctx.Err() != nil ||
			errors.Is(err, objstore.ErrNotFound) || errors.Is(err, objstore.ErrAccessDenied) ||
			errors.Is(err, objstore.ErrInvalidKey) || errors.As(err, &tooLarge) {
			return b, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay *= 4
	}
}
