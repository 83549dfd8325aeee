package faultproxy

import (
	"fmt"
	"time"
)

// Mode is what the proxy does to traffic.
type Mode int

const (
	// Pass forwards bytes both ways unchanged.
	Pass Mode = iota
	// Delay forwards every chunk after Fault.Latency.
	Delay
	// Drop closes every existing connection (FIN) and closes new ones as
	// soon as they are accepted: the peer sees a clean end of stream.
	Drop
	// Blackhole freezes existing connections (no byte moves either way
	// until the mode changes; whatever is in flight is kept) and accepts
	// new connections whose bytes are read and discarded, never forwarded
	// and never answered; such connections stay dead after the fault
	// heals, like a half-open TCP connection after a partition.
	Blackhole
	// Reset aborts every existing connection with a TCP RST
	// (SO_LINGER 0) and resets new ones as soon as they are accepted.
	Reset
)

// String names the mode as ParseMode accepts it.
func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Delay:
		return "delay"
	case Drop:
		return "drop"
	case Blackhole:
		return "blackhole"
	case Reset:
		return "reset"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// ParseMode parses a mode name ("pass", "delay", "drop", "blackhole",
// "reset").
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{Pass, Delay, Drop, Blackhole, Reset} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("unknown fault mode %q (want pass, delay, drop, blackhole or reset)", s)
}

// Fault is the proxy's current behaviour.
type Fault struct {
	// Mode is what happens to traffic.
	Mode Mode
	// Latency is added before each forwarded chunk in Delay mode.
	Latency time.Duration
}

// String describes the fault ("delay 200ms", "reset").
func (f Fault) String() string {
	if f.Mode == Delay {
		return "delay " + f.Latency.String()
	}
	return f.Mode.String()
}
