package restore

import (
	"sync/atomic"
	"time"
)

// Progress is a live view of a running restore, updated with atomics so a
// display (progress bars, periodic log lines) can poll it from another
// goroutine. The zero value is ready to use.
type Progress struct {
	// BytesTotal is the stored size of the segments to download.
	BytesTotal atomic.Int64
	// BytesDownloaded counts stored bytes fetched and verified.
	BytesDownloaded atomic.Int64
	// EventsTotal is an upper bound of the events to apply, lowered to the
	// exact count once every segment is decoded.
	EventsTotal atomic.Int64
	// EventsApplied counts events committed to the target (or written to the file).
	EventsApplied atomic.Int64
	// SegmentsTotal and SegmentsDone count planned segments.
	SegmentsTotal, SegmentsDone atomic.Int64
	// FromFallback counts segments read from a fallback store because the
	// archive's store lacked them or held them damaged.
	FromFallback atomic.Int64
	// Phase is "plan", "download", "load", "verify" or "done".
	phase   atomic.Value
	started atomic.Int64 // unix nanos
}

// Phase returns the current phase.
func (p *Progress) Phase() string {
	if v, ok := p.phase.Load().(string); ok {
		return v
	}
	return "plan"
}

func (p *Progress) setPhase(s string) {
	if p != nil {
		p.phase.Store(s)
	}
}

// Started returns when the load began (zero before).
func (p *Progress) Started() time.Time {
	if n := p.started.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

func (p *Progress) start() {
	if p != nil {
		p.started.CompareAndSwap(0, time.Now().UnixNano())
	}
}
