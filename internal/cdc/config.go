package cdc

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
)

// ConfirmMode says when a published transaction counts as durably handled.
type ConfirmMode string

const (
	// ConfirmArchive confirms the slot up to the archive's durable
	// watermark (META key "watermark"), never beyond what capture published.
	ConfirmArchive ConfirmMode = "archive"
	// ConfirmJetStream confirms the slot once JetStream acknowledged every
	// message up to a position (feed-only deployments).
	ConfirmJetStream ConfirmMode = "jetstream"
)

// PublishMode says how events go to JetStream.
type PublishMode string

const (
	// PublishBatch sends new messages in JetStream fast-ingest batches
	// (nats-server 2.14 and later): the server acknowledges every few
	// hundred messages at once. On an older server capture falls back to
	// PublishSingle and says so.
	PublishBatch PublishMode = "batch"
	// PublishSingle sends every message with its own acknowledgement.
	PublishSingle PublishMode = "single"
)

// Config configures capture. Zero fields take the defaults of Defaults.
type Config struct {
	// PGURL is the source connection string; pgx honours PGHOST, PGUSER,
	// PGPASSWORD and the other PG* variables for parts it omits.
	PGURL string
	// NATSURL is one or more comma-separated NATS URLs.
	NATSURL string
	// NATSCreds is an optional NATS credentials file.
	NATSCreds string
	// Stream is the JetStream stream name ("TIDEMARK").
	Stream string
	// SubjectPrefix is the feed's subject prefix ("tidemark").
	SubjectPrefix string
	// Slot is the logical replication slot name ("tidemark").
	Slot string
	// Publication is the publication name ("tidemark").
	Publication string
	// Tables are the captured tables as schema.name
	// (["public.eventcore_events"]).
	Tables []string
	// ConfirmOn is ConfirmArchive (default) or ConfirmJetStream.
	ConfirmOn ConfirmMode
	// HeartbeatInterval is how often a heartbeat is written to the source (10s).
	HeartbeatInterval time.Duration
	// StatusInterval is how often a standby status update is sent (1s).
	StatusInterval time.Duration
	// MaxPending bounds the messages published but not yet acknowledged (4096).
	MaxPending int
	// PublishTimeout is how long to wait for one JetStream acknowledgement (10s).
	PublishTimeout time.Duration
	// PublishRetries is how often one message is re-sent before capture
	// rewinds to the slot (10).
	PublishRetries int
	// StallTimeout is how long the oldest message may stay unacknowledged
	// before tidemark_capture_publish_stalled is raised (30s).
	StallTimeout time.Duration
	// MaxTxnMemory bounds the bytes of one transaction kept in memory
	// before the rest is spilled to a temporary file (64 MiB).
	MaxTxnMemory int64
	// ExternalValueBytes is the size above which a column value travels
	// outside its event message, in the object store
	// feed.ValuesBucket(Stream) (256 KiB). It must not exceed the NATS
	// server's max_payload/4; rows holding such a value are spooled to
	// disk and streamed from there, never copied in memory.
	ExternalValueBytes int64
	// SpillDir holds spill files ("" = the system temporary directory).
	SpillDir string
	// Replicas is the stream's and META bucket's replica count (1).
	Replicas int
	// DuplicateWindow is the stream's deduplication window (2m).
	DuplicateWindow time.Duration
	// MaxBytes limits the stream's size (-1 = unlimited); DiscardNew makes
	// a full stream push back instead of dropping events.
	MaxBytes int64
	// MaxAge limits the age of stream messages (0 = unlimited).
	MaxAge time.Duration
	// SlotRetryInterval is how often a capture waiting for an active slot
	// retries (1s).
	SlotRetryInterval time.Duration
	// DrainTimeout bounds waiting for in-flight publishes at shutdown (30s).
	DrainTimeout time.Duration
	// PublishMode is PublishBatch (default) or PublishSingle.
	PublishMode PublishMode
	// MaxTamperDetails bounds the tamper messages published per transaction
	// (1000); the rest are counted and logged.
	MaxTamperDetails int
	// NoResync turns off the resync after a failover (issue 18): when the
	// slot is missing on a promoted standby of the same cluster, capture
	// then exits with ErrSlotMissing instead.
	NoResync bool
	// ResyncOverlap is how far before the archive's watermark time a
	// resync starts re-reading rows (5m): commit times and WAL order may
	// disagree by a little, and the archiver skips what it holds.
	ResyncOverlap time.Duration
	// Logger receives capture's logs (slog.Default() when nil).
	Logger *slog.Logger
}

// Defaults returns the default configuration (without URLs).
func Defaults() Config {
	return Config{
		Stream:             "TIDEMARK",
		SubjectPrefix:      "tidemark",
		Slot:               "tidemark",
		Publication:        "tidemark",
		Tables:             []string{"public.eventcore_events"},
		ConfirmOn:          ConfirmArchive,
		HeartbeatInterval:  10 * time.Second,
		StatusInterval:     time.Second,
		MaxPending:         4096,
		PublishTimeout:     10 * time.Second,
		PublishRetries:     10,
		StallTimeout:       30 * time.Second,
		MaxTxnMemory:       64 << 20,
		ExternalValueBytes: 256 << 10,
		Replicas:           1,
		DuplicateWindow:    2 * time.Minute,
		MaxBytes:           -1,
		SlotRetryInterval:  time.Second,
		DrainTimeout:       30 * time.Second,
		MaxTamperDetails:   1000,
		PublishMode:        PublishBatch,
		ResyncOverlap:      5 * time.Minute,
	}
}

var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// withDefaults fills zero fields and validates the result.
func (c Config) withDefaults() (Config, error) {
	d := Defaults()
	setS := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	setD := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setS(&c.Stream, d.Stream)
	setS(&c.SubjectPrefix, d.SubjectPrefix)
	setS(&c.Slot, d.Slot)
	setS(&c.Publication, d.Publication)
	if len(c.Tables) == 0 {
		c.Tables = d.Tables
	}
	if c.ConfirmOn == "" {
		c.ConfirmOn = d.ConfirmOn
	}
	setD(&c.HeartbeatInterval, d.HeartbeatInterval)
	setD(&c.StatusInterval, d.StatusInterval)
	setD(&c.PublishTimeout, d.PublishTimeout)
	setD(&c.StallTimeout, d.StallTimeout)
	setD(&c.DuplicateWindow, d.DuplicateWindow)
	setD(&c.SlotRetryInterval, d.SlotRetryInterval)
	setD(&c.DrainTimeout, d.DrainTimeout)
	setD(&c.ResyncOverlap, d.ResyncOverlap)
	if c.MaxPending <= 0 {
		c.MaxPending = d.MaxPending
	}
	if c.PublishRetries <= 0 {
		c.PublishRetries = d.PublishRetries
	}
	if c.MaxTxnMemory <= 0 {
		c.MaxTxnMemory = d.MaxTxnMemory
	}
	if c.ExternalValueBytes <= 0 {
		c.ExternalValueBytes = d.ExternalValueBytes
	}
	if c.Replicas <= 0 {
		c.Replicas = d.Replicas
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = d.MaxBytes
	}
	if c.MaxTamperDetails <= 0 {
		c.MaxTamperDetails = d.MaxTamperDetails
	}
	if c.PublishMode == "" {
		c.PublishMode = d.PublishMode
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, c.validate()
}

func (c Config) validate() error {
	var errs []error
	if c.PublishMode != PublishBatch && c.PublishMode != PublishSingle {
		errs = append(errs, fmt.Errorf("publish mode %q: want batch or single", c.PublishMode))
	}
	if c.ConfirmOn != ConfirmArchive && c.ConfirmOn != ConfirmJetStream {
		errs = append(errs, fmt.Errorf("confirm mode %q: want archive or jetstream", c.ConfirmOn))
	}
	if !slotNameRE.MatchString(c.Slot) {
		errs = append(errs, fmt.Errorf("slot name %q: use 1-63 lower-case letters, digits and underscores", c.Slot))
	}
	if !slotNameRE.MatchString(c.Publication) {
		errs = append(errs, fmt.Errorf("publication name %q: use 1-63 lower-case letters, digits and underscores", c.Publication))
	}
	if strings.ContainsAny(c.Stream, ". *>") {
		errs = append(errs, fmt.Errorf("stream name %q must not contain '.', ' ', '*' or '>'", c.Stream))
	}
	for _, t := range c.Tables {
		if _, _, err := splitTable(t); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// splitTable splits "schema.name" (a bare name means schema public).
func splitTable(s string) (string, string, error) {
	schema, name, ok := strings.Cut(s, ".")
	if !ok {
		schema, name = "public", s
	}
	if schema == "" || name == "" || strings.Contains(name, ".") {
		return "", "", fmt.Errorf("table %q: want schema.name", s)
	}
	return schema, name, nil
}
