package archive

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/feed"
	"github.com/tidemark/tidemark/internal/merge"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// Defaults of Config fields left zero.
const (
	DefaultStream          = "TIDEMARK"
	DefaultConsumer        = "tidemark-archiver"
	DefaultSubjectPrefix   = "tidemark"
	DefaultMaxAckPending   = 500000
	DefaultAckWait         = 60 * time.Second
	MinAckWait             = 60 * time.Second
	DefaultFetchBatch      = 4000
	DefaultReorderBuffer   = 200000
	DefaultHoleGrace       = 3 * time.Second
	DefaultRewindInterval  = 10 * time.Second
	DefaultSegmentMaxBytes = 64 << 20
	DefaultFlushInterval   = time.Second
	DefaultBucketWidth     = time.Minute
	DefaultLeaseTTL        = 10 * time.Second
	DefaultStandbyRetry    = time.Second
	DefaultInfoInterval    = 5 * time.Second
	DefaultMergeInterval   = 10 * time.Second
)

// Config configures an Archiver. The zero value of every field means its
// default; Validate fills them in.
type Config struct {
	// Stream is the JetStream stream capture publishes to ("TIDEMARK").
	Stream string
	// Subjects is the feed's subject prefix ("tidemark"); the consumer
	// filters on Subjects.Events() and Subjects.Heartbeat().
	Subjects feed.Subjects
	// Consumer is the durable pull consumer's name, shared by every
	// archiver of the stream ("tidemark-archiver").
	Consumer string
	// Holder identifies this archiver in the lease and in catalog entries;
	// the default is "<hostname>-<pid>-<random>".
	Holder string
	// MaxAckPending bounds the messages delivered but not yet acknowledged
	// (500000); it must exceed what one flush holds.
	MaxAckPending int
	// AckWait is how long JetStream waits for an acknowledgement before
	// redelivering (60 s, also the minimum): it must exceed the time a
	// message can spend in an open segment or the reorder buffer plus an
	// upload. Takeover does not wait for it: a new writer resets the
	// consumer to its ack floor.
	AckWait time.Duration
	// FetchBatch is how many messages the client buffers, and one pull
	// request asks for at most (4000); a request also stops at 16 MiB (or
	// twice the server's max_payload).
	FetchBatch int
	// ReorderBuffer bounds the events held while the chain has a hole
	// (200000); what does not fit is given back with a delayed Nak.
	ReorderBuffer int
	// HoleGrace is how long a hole may persist before the archiver asks
	// capture to rewind (3 s).
	HoleGrace time.Duration
	// RewindInterval is the least time between two rewind requests for a
	// persisting hole (10 s).
	RewindInterval time.Duration
	// SegmentMaxBytes is the raw (uncompressed) size at which a table's
	// open segment is flushed (64 MiB).
	SegmentMaxBytes int64
	// FlushInterval is the age at which open segments are flushed, and the
	// least time between two watermark-only catalog entries (1 s): the
	// archive's recovery point objective.
	FlushInterval time.Duration
	// BucketWidth is the commit-time bucket width (1 min): a segment never
	// holds transactions from two buckets, and its key starts with its bucket.
	BucketWidth time.Duration
	// LeaseTTL is the writer lease's lifetime (10 s); the leader renews it
	// every third of it, a standby takes over once it expires.
	LeaseTTL time.Duration
	// StandbyRetry is how often a standby tries to acquire the lease (1 s).
	StandbyRetry time.Duration
	// InfoInterval is how often the leader reads consumer info for the
	// pending gauges (5 s).
	InfoInterval time.Duration
	// IdleWatermarkInterval is the least time between two watermark-only
	// catalog entries while no events arrive (10 × FlushInterval): an idle
	// source costs one entry per interval, not one per heartbeat. Events are
	// never held back by it; only the watermark's move past heartbeats, and
	// so the slot's confirmation, waits.
	IdleWatermarkInterval time.Duration
	// Merge is the merge policy (merge.DefaultLevels: minute, hour, day);
	// Merge.Levels set to an empty slice disables merging.
	Merge merge.Policy
	// MergeInterval is how often the writer looks for merges to do (10 s).
	MergeInterval time.Duration
	// TempDir holds temporary files ("" = the system's): the merger's, and
	// external values with the segments holding them.
	TempDir string
	// Compression is the segments' compression (zstd).
	Compression segment.Compression
	// CompressionLevel is the level of the segments flushes write; 0 means
	// the default: zstd's fastest while merging is on (liveZstdLevel), else
	// the codec's default.
	CompressionLevel int
}

// Deps are the Archiver's connections and collaborators.
type Deps struct {
	// JetStream is the NATS JetStream context the feed is read from.
	JetStream jetstream.JetStream
	// Store is the archive's object store (segments and catalog).
	Store objstore.Store
	// Keyring, when non-nil, encrypts every segment to its active key (and
	// decrypts existing ones); nil writes plaintext.
	Keyring *segment.Keyring
	// Logger receives the archiver's log; nil discards it.
	Logger *slog.Logger
	// Hook, when set, is called at named points of the durability sequence
	// (see Stage*). It exists for crash tests only.
	Hook func(stage string)
}

// Stages passed to Deps.Hook, in the order a flush reaches them.
const (
	// StageMidUpload: a segment upload has sent part of the object.
	StageMidUpload = "mid-upload"
	// StageUploaded: a segment is stored, its catalog entry not yet written.
	StageUploaded = "uploaded"
	// StageCataloged: a catalog entry is durable, META not yet updated.
	StageCataloged = "cataloged"
	// StageWatermarked: the META watermark is written, messages not yet acked.
	StageWatermarked = "watermarked"
	// StageAcked: the flush's messages are acknowledged.
	StageAcked = "acked"
)

// Stages lists the Stage* values in the order a flush reaches them.
var Stages = []string{StageMidUpload, StageUploaded, StageCataloged, StageWatermarked, StageAcked}

// MergeStages lists the StageMerge* values in the order a merge reaches
// them; kept apart from Stages, which flush crash tests draw from (a test
// without merges never reaches them).
var MergeStages = []string{StageMergeWritten, StageMergeUploaded, StageMergeRecorded}

// Validate fills in defaults and checks the values.
func (c *Config) Validate() error {
	setDefault(&c.Stream, DefaultStream)
	setDefault(&c.Subjects.Prefix, DefaultSubjectPrefix)
	setDefault(&c.Consumer, DefaultConsumer)
	setDefault(&c.MaxAckPending, DefaultMaxAckPending)
	setDefault(&c.AckWait, DefaultAckWait)
	setDefault(&c.FetchBatch, DefaultFetchBatch)
	setDefault(&c.ReorderBuffer, DefaultReorderBuffer)
	setDefault(&c.HoleGrace, DefaultHoleGrace)
	setDefault(&c.RewindInterval, DefaultRewindInterval)
	setDefault(&c.SegmentMaxBytes, DefaultSegmentMaxBytes)
	setDefault(&c.FlushInterval, DefaultFlushInterval)
	setDefault(&c.BucketWidth, DefaultBucketWidth)
	setDefault(&c.LeaseTTL, DefaultLeaseTTL)
	setDefault(&c.StandbyRetry, DefaultStandbyRetry)
	setDefault(&c.InfoInterval, DefaultInfoInterval)
	setDefault(&c.IdleWatermarkInterval, 10*c.FlushInterval)
	setDefault(&c.MergeInterval, DefaultMergeInterval)
	if c.Holder == "" {
		c.Holder = defaultHolder()
	}
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.MaxAckPending > 0, "max ack pending must be positive, got %d", c.MaxAckPending)
	check(c.AckWait >= MinAckWait, "ack wait must be at least %s, got %s", MinAckWait, c.AckWait)
	check(c.FetchBatch > 0, "fetch batch must be positive, got %d", c.FetchBatch)
	check(c.ReorderBuffer > 0, "reorder buffer must be positive, got %d", c.ReorderBuffer)
	check(c.SegmentMaxBytes >= 1<<10, "segment max bytes must be at least 1 KiB, got %d", c.SegmentMaxBytes)
	check(c.FlushInterval >= 10*time.Millisecond, "flush interval must be at least 10ms, got %s", c.FlushInterval)
	check(c.BucketWidth >= time.Minute && time.Hour%c.BucketWidth == 0 || c.BucketWidth > time.Hour && (24*time.Hour)%c.BucketWidth == 0,
		"bucket width must divide an hour (or a day) in whole minutes, got %s", c.BucketWidth)
	check(c.BucketWidth%time.Minute == 0, "bucket width must be whole minutes, got %s", c.BucketWidth)
	check(c.LeaseTTL >= 300*time.Millisecond, "lease ttl must be at least 300ms, got %s", c.LeaseTTL)
	check(c.Compression <= segment.None, "unknown compression %d", c.Compression)
	check(c.IdleWatermarkInterval >= c.FlushInterval, "idle watermark interval must be at least the flush interval %s, got %s", c.FlushInterval, c.IdleWatermarkInterval)
	check(c.MergeInterval >= 10*time.Millisecond, "merge interval must be at least 10ms, got %s", c.MergeInterval)
	if err := c.Merge.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func defaultHolder() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "archiver"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// merging reports whether the archiver merges segments (Merge.Levels set
// to an empty slice turns it off).
func (c Config) merging() bool { return c.Merge.Levels == nil || len(c.Merge.Levels) > 0 }
