package archive

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// putRate estimates PUT requests per hour (segments, catalog entries and
// lease writes) over a sliding window, for cost visibility.
type putRate struct {
	mu      sync.Mutex
	window  time.Duration
	started time.Time
	times   []time.Time // one per PUT, oldest first, within window
}

func newPutRate() *putRate { return &putRate{window: 5 * time.Minute, started: time.Now()} }

// add records n PUTs at t.
func (r *putRate) add(t time.Time, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for range n {
		r.times = append(r.times, t)
	}
	r.trim(t)
}

// perHour returns the PUT rate over the window (or since start, when
// younger) scaled to an hour.
func (r *putRate) perHour(now time.Time) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trim(now)
	span := min(now.Sub(r.started), r.window)
	if span < time.Second {
		return 0
	}
	return float64(len(r.times)) * float64(time.Hour) / float64(span)
}

func (r *putRate) trim(now time.Time) {
	cut := 0
	for cut < len(r.times) && now.Sub(r.times[cut]) > r.window {
		cut++
	}
	if cut > 0 {
		r.times = append(r.times[:0], r.times[cut:]...)
	}
}

var putsPerHour = promauto.NewGauge(prometheus.GaugeOpts{
	Name: "tidemark_archiver_puts_per_hour_estimate",
	Help: "PUT requests per hour at the current rate (segments, catalog entries, lease writes): multiply by the provider's price per PUT for the cost.",
})
