package restore

import (
	"slices"
	"strings"

	"github.com/tidemark/tidemark/internal/event"
)

// Filter selects the events of a partial restore. The zero Filter selects
// everything. Streams and StreamPrefixes together name the selected streams
// (an event matches if either does: --stream a --stream-prefix b- selects
// stream "a" and every "b-…"); EventTypes, when set, further restricts to
// those types.
type Filter struct {
	// Streams are exact stream ids (--stream, repeatable).
	Streams []string `json:"streams,omitempty"`
	// StreamPrefixes select streams whose id starts with one of them.
	StreamPrefixes []string `json:"stream_prefixes,omitempty"`
	// EventTypes are exact event types (--event-type, repeatable).
	EventTypes []string `json:"event_types,omitempty"`
}

// Empty reports whether f selects every event.
func (f Filter) Empty() bool {
	return len(f.Streams) == 0 && len(f.StreamPrefixes) == 0 && len(f.EventTypes) == 0
}

// WholeStreams reports whether every selected stream is restored whole, so
// per-stream versions must be contiguous from 1 (false when filtering by type).
func (f Filter) WholeStreams() bool { return len(f.EventTypes) == 0 }

// Fingerprint is a canonical text form of f, stored in the restore state so
// a resumed restore must use the same filter.
func (f Filter) Fingerprint() string {
	if f.Empty() {
		return ""
	}
	part := func(name string, v []string) string {
		s := slices.Clone(v)
		slices.Sort(s)
		s = slices.Compact(s)
		return name + "=" + strings.Join(s, "\x1f")
	}
	return part("stream", f.Streams) + "\x1e" + part("prefix", f.StreamPrefixes) + "\x1e" + part("type", f.EventTypes)
}

// matcher is a compiled Filter for one table layout.
type matcher struct {
	all      bool
	streams  map[string]bool
	prefixes []string
	types    map[string]bool
	layout   event.Layout
}

func (f Filter) compile(l event.Layout) *matcher {
	m := &matcher{all: f.Empty(), prefixes: f.StreamPrefixes, layout: l}
	if len(f.Streams) > 0 {
		m.streams = map[string]bool{}
		for _, s := range f.Streams {
			m.streams[s] = true
		}
	}
	if len(f.EventTypes) > 0 {
		m.types = map[string]bool{}
		for _, s := range f.EventTypes {
			m.types[s] = true
		}
	}
	return m
}

// match reports whether e is selected.
func (m *matcher) match(e *event.Event) bool {
	if m.all {
		return true
	}
	if m.streams != nil || len(m.prefixes) > 0 {
		id := string(e.Value(m.layout.StreamID))
		ok := m.streams[id]
		for _, p := range m.prefixes {
			if ok {
				break
			}
			ok = strings.HasPrefix(id, p)
		}
		if !ok {
			return false
		}
	}
	if m.types != nil && !m.types[string(e.Value(m.layout.EventType))] {
		return false
	}
	return true
}
