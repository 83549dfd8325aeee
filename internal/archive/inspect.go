package archive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/feed"
)

// Report is what `archiver status` shows: the consumer's backlog, the
// catalog's state and the watermark as capture sees it.
type Report struct {
	// Stream and Consumer name what was inspected.
	Stream   string `json:"stream"`
	Consumer string `json:"consumer"`
	// ConsumerPending counts messages not yet delivered; ConsumerAckPending
	// those delivered and not yet acknowledged. ConsumerFound is false when
	// the consumer does not exist yet.
	ConsumerFound      bool   `json:"consumer_found"`
	ConsumerPending    uint64 `json:"consumer_pending"`
	ConsumerAckPending int    `json:"consumer_ack_pending"`
	// Watermark is the catalog's durable watermark; CatalogEntries and
	// Segments count the catalog's entries and segments.
	Watermark      catalog.Watermark `json:"watermark"`
	CatalogEntries int               `json:"catalog_entries"`
	Segments       int               `json:"segments"`
	// LastSegment is the key of the newest segment; LastWriter the holder
	// that wrote the newest entry, at LastWritten.
	LastSegment string    `json:"last_segment,omitempty"`
	LastWriter  string    `json:"last_writer,omitempty"`
	LastWritten time.Time `json:"last_written,omitempty"`
	// LastArchivedCommitTime is the latest commit time of any archived event.
	LastArchivedCommitTime time.Time `json:"last_archived_commit_time,omitempty"`
	// Lag is now minus the watermark's commit time (0 without a watermark).
	Lag time.Duration `json:"lag_ns"`
	// Leader is the holder of the newest lease epoch, LeaderEpoch its epoch
	// and LeaseExpires when it lapses unless renewed; LeaseLive says
	// whether it had not lapsed when inspected.
	Leader       string    `json:"leader,omitempty"`
	LeaderEpoch  uint64    `json:"leader_epoch,omitempty"`
	LeaseExpires time.Time `json:"lease_expires,omitempty"`
	LeaseLive    bool      `json:"lease_live"`
	// MetaWatermark is the watermark published in META (what capture
	// confirms up to); MetaFound is false when none is published.
	MetaFound     bool           `json:"meta_found"`
	MetaWatermark feed.Watermark `json:"meta_watermark"`
	Errors        []string       `json:"errors,omitempty"`
}

// Inspect reads the archive's state without taking part in it: consumer
// info from JetStream, the catalog from the store, the watermark from
// META. Parts that cannot be read are listed in Report.Errors; the error
// is non-nil only when nothing could be read.
func Inspect(ctx context.Context, cfg Config, deps Deps) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("archiver config: %w", err)
	}
	r := &Report{Stream: cfg.Stream, Consumer: cfg.Consumer}
	var errs []error
	if deps.JetStream != nil {
		c, err := deps.JetStream.Consumer(ctx, cfg.Stream, cfg.Consumer)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound):
		case err != nil:
			errs = append(errs, fmt.Errorf("consumer %s: %w", cfg.Consumer, err))
		default:
			if info, err := c.Info(ctx); err != nil {
				errs = append(errs, fmt.Errorf("consumer info: %w", err))
			} else {
				r.ConsumerFound = true
				r.ConsumerPending, r.ConsumerAckPending = info.NumPending, info.NumAckPending
			}
		}
		wm, ok, err := newMeta(deps.JetStream, cfg.Stream).watermark(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		r.MetaWatermark, r.MetaFound = wm, ok
	}
	if deps.Store != nil {
		cat, err := catalog.Load(ctx, deps.Store)
		if err != nil {
			errs = append(errs, fmt.Errorf("load catalog: %w", err))
		} else {
			r.fromCatalog(cat)
		}
		lease, err := catalog.CurrentLease(ctx, deps.Store)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("read lease: %w", err))
		case lease != nil:
			r.Leader, r.LeaderEpoch, r.LeaseExpires = lease.Holder, lease.Epoch, lease.Expires
			r.LeaseLive = !lease.Expired(time.Now())
		}
	}
	for _, err := range errs {
		r.Errors = append(r.Errors, err.Error())
	}
	if len(errs) > 0 && !r.ConsumerFound && r.CatalogEntries == 0 && !r.MetaFound {
		return r, errors.Join(errs...)
	}
	return r, nil
}

func (r *Report) fromCatalog(cat *catalog.Catalog) {
	r.Watermark = cat.Watermark()
	entries := cat.Entries()
	segs := cat.Segments()
	r.CatalogEntries, r.Segments = len(entries), len(segs)
	if n := len(entries); n > 0 {
		r.LastWriter, r.LastWritten = entries[n-1].Writer, entries[n-1].Written
	}
	if n := len(segs); n > 0 {
		r.LastSegment = segs[n-1].Key
	}
	for _, s := range segs {
		if s.MaxCommitTime.After(r.LastArchivedCommitTime) {
			r.LastArchivedCommitTime = s.MaxCommitTime
		}
	}
	if !r.Watermark.CommitTime.IsZero() {
		r.Lag = time.Since(r.Watermark.CommitTime)
	}
}
