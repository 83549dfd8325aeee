package loadgen

import (
	"errors"
	"fmt"
	"time"
)

// Config describes a workload. Run stops at whichever of Events, Duration
// and context cancellation comes first; with both zero it runs until the
// context is cancelled.
type Config struct {
	// Writers is the number of concurrent writers (connections); default 4.
	Writers int
	// Rate caps the total events per second; 0 writes flat out.
	Rate float64
	// Events stops the run after this many events; 0 means no limit.
	Events int64
	// Duration stops the run after this long; 0 means no limit.
	Duration time.Duration
	// Streams is the number of distinct streams written to; default 1000.
	Streams int
	// Seed seeds the random choices (streams, types, payloads); event ids
	// are UUIDv7 and not reproducible.
	Seed uint64
	// StreamPrefix is prepended to every stream id; default "loadgen".
	StreamPrefix string
}

func (c Config) withDefaults() (Config, error) {
	if c.Writers == 0 {
		c.Writers = 4
	}
	if c.Streams == 0 {
		c.Streams = 1000
	}
	if c.StreamPrefix == "" {
		c.StreamPrefix = "loadgen"
	}
	switch {
	case c.Writers < 0:
		return c, fmt.Errorf("invalid writers %d", c.Writers)
	case c.Streams < 0:
		return c, fmt.Errorf("invalid streams %d", c.Streams)
	case c.Rate < 0:
		return c, fmt.Errorf("invalid rate %v", c.Rate)
	case c.Events < 0:
		return c, fmt.Errorf("invalid events %d", c.Events)
	case c.Duration < 0:
		return c, errors.New("invalid negative duration")
	}
	return c, nil
}

// Stats summarises a run.
type Stats struct {
	// Events is the number of events committed.
	Events int64 `json:"events"`
	// Transactions is the number of committed transactions (commands).
	Transactions int64 `json:"transactions"`
	// Conflicts is the number of attempts that lost an optimistic
	// concurrency race and were retried.
	Conflicts int64 `json:"conflicts"`
	// Duration is the wall time of the run.
	Duration time.Duration `json:"duration_ns"`
}

// EventsPerSecond is the committed event rate over the run.
func (s Stats) EventsPerSecond() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Events) / s.Duration.Seconds()
}
