package bench

import (
	"errors"
	"time"
)

// Config describes one benchmark run. Zero fields take defaults.
type Config struct {
	// Dir holds the servers' data, the archive and every log; required.
	Dir string
	// Events is the size of the backlog (1,000,000).
	Events int
	// Streams is the number of streams the backlog spreads over (10,000).
	Streams int
	// LoadSessions is the number of parallel sessions writing the backlog (3).
	LoadSessions int
	// SteadyRate is the steady workload's events per second (5,000).
	SteadyRate float64
	// SteadyDuration is how long the steady workload runs (30 s).
	SteadyDuration time.Duration
	// EarlyFraction places the early restore target T (0.1: T is the
	// commit time of the backlog's event at 10 %).
	EarlyFraction float64
	// Store is the archive's store: "file" (a directory) or "s3" (the rig's
	// versitygw).
	Store string
	// Seed seeds the payloads.
	Seed uint64
	// SkipMicro skips the machine-limit micro-benchmarks (JetStream
	// publish, zstd).
	SkipMicro bool
	// Progress, when set, receives a line per step (Run itself never logs).
	Progress func(msg string, args ...any)
}

// withDefaults fills zero fields and validates.
func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" {
		return c, errors.New("bench: Config.Dir is required")
	}
	if c.Events <= 0 {
		c.Events = 1_000_000
	}
	if c.Streams <= 0 {
		c.Streams = 10_000
	}
	if c.LoadSessions <= 0 {
		c.LoadSessions = 3
	}
	if c.SteadyRate <= 0 {
		c.SteadyRate = 5000
	}
	if c.SteadyDuration <= 0 {
		c.SteadyDuration = 30 * time.Second
	}
	if c.EarlyFraction <= 0 || c.EarlyFraction >= 1 {
		c.EarlyFraction = 0.1
	}
	if c.Store == "" {
		c.Store = "file"
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Progress == nil {
		c.Progress = func(string, ...any) {}
	}
	return c, nil
}
