package monitor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/feed"
)

// FeedSlack is how far the stream's clock and the source's may disagree:
// an event committed less than this after the stream's first retained
// message may have been published before it and aged out, so its absence
// is not a finding.
const FeedSlack = 5 * time.Second

// maxFeedWalk bounds the messages one sampled event reads on its stream's
// subjects from the position found by commit LSN (the event itself, or
// re-sends of earlier events after a capture restart, come first).
const maxFeedWalk = 64

// FeedOptions says where the feed copies are.
type FeedOptions struct {
	// JS is the JetStream context; Stream the stream capture publishes to;
	// Subjects its subject prefix.
	JS       jetstream.JetStream
	Stream   string
	Subjects feed.Subjects
}

// feedRound is the stream as one round sees it.
type feedRound struct {
	opts   FeedOptions
	stream jetstream.Stream
}

func openFeedRound(ctx context.Context, o FeedOptions) (*feedRound, error) {
	s, err := o.JS.Stream(ctx, o.Stream)
	if err != nil {
		return nil, fmt.Errorf("monitor: JetStream stream %s: %w", o.Stream, err)
	}
	return &feedRound{opts: o, stream: s}, nil
}

// compare finds the feed copy of an archived event (the message on the
// event's subject whose chain position is the event's) and compares it:
// same column values (external ones by size and SHA-256), same commit
// time, and the stream's next message on the feed carries the next
// version. An event the stream should still hold but lacks is a finding;
// one older than the stream's first retained message is not checked.
func (f *feedRound) compare(ctx context.Context, t *event.Table, key string, e *event.Event, r *Round) error {
	l := event.LayoutOf(*t)
	if l.StreamID < 0 || l.EventType < 0 {
		return nil
	}
	stream, id := string(e.Value(l.StreamID)), ""
	if l.EventID >= 0 {
		id = string(e.Value(l.EventID))
	}
	find := func(check, format string, args ...any) {
		r.Findings = append(r.Findings, Finding{Check: check, Object: key, Stream: stream, EventID: id, Message: fmt.Sprintf(format, args...)})
	}
	// Every event type of the stream: the version after this one may be of another type.
	subj := f.opts.Subjects.Prefix + ".events." + feed.EncodeToken(t.Schema) + "." + feed.EncodeToken(t.Name) + ".*." + feed.EncodeToken(stream)
	seq, err := f.firstAtOrAfter(ctx, e.CommitLSN)
	if err != nil {
		return err
	}
	var found *jetstream.RawStreamMsg
	var foundEv *event.Event
	for i := 0; seq > 0 && i < maxFeedWalk; i++ {
		m, err := f.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return fmt.Errorf("monitor: read %s from stream %s: %w", subj, f.opts.Stream, err)
		}
		seq = m.Sequence + 1
		env, err := feed.DecodeEnvelope(asMsg(m))
		if err != nil {
			find(CheckFeedChanged, "feed message %d on %s does not decode: %v", m.Sequence, m.Subject, err)
			continue
		}
		if found == nil {
			if env.CommitLSN != e.CommitLSN || env.Index != e.Index {
				continue
			}
			found = m
			if foundEv, err = feed.DecodeEvent(asMsg(m), t); err != nil {
				find(CheckFeedChanged, "feed message %d does not decode: %v", m.Sequence, err)
				return nil
			}
			f.compareValues(t, m, e, foundEv, find)
			continue
		}
		if env.CommitLSN == e.CommitLSN && env.Index == e.Index {
			continue // a re-send of the same event
		}
		next, err := feed.DecodeEvent(asMsg(m), t)
		if err != nil {
			find(CheckFeedChanged, "feed message %d does not decode: %v", m.Sequence, err)
			return nil
		}
		if l.StreamVersion >= 0 {
			v, err1 := strconv.ParseInt(string(foundEv.Value(l.StreamVersion)), 10, 64)
			w, err2 := strconv.ParseInt(string(next.Value(l.StreamVersion)), 10, 64)
			if err1 == nil && err2 == nil && w != v+1 {
				find(CheckFeedGap, "on the feed, stream version %d is followed by %d (message %d): a gap", v, w, m.Sequence)
			}
		}
		break
	}
	if found != nil {
		r.FeedCompared++
		return nil
	}
	// Absent: does the stream still hold messages from before the event?
	// (Read after the walk, so an event aged out meanwhile is not reported.)
	info, err := f.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("monitor: stream %s info: %w", f.opts.Stream, err)
	}
	if info.State.Msgs == 0 || !e.CommitTime.After(info.State.FirstTime.Add(FeedSlack)) {
		r.FeedExpired++
		return nil
	}
	r.FeedCompared++
	find(CheckFeedMissing, "the stream %s lacks the event (commit %s, index %d) though it holds messages from %s on: deleted from JetStream",
		f.opts.Stream, e.CommitLSN, e.Index, info.State.FirstTime.UTC().Format(time.RFC3339))
	return nil
}

// compareValues compares a decoded feed copy with the archived event.
func (f *feedRound) compareValues(t *event.Table, m *jetstream.RawStreamMsg, e, c *event.Event, find func(check, format string, args ...any)) {
	external := map[int]feed.ExternalValue{}
	if h := m.Header.Get(feed.HeaderExternal); h != "" {
		vs, err := feed.ParseExternal(h, len(t.Columns))
		if err != nil {
			find(CheckFeedChanged, "feed message %d: header %s: %v", m.Sequence, feed.HeaderExternal, err)
			return
		}
		for _, v := range vs {
			external[v.Column] = v
		}
	}
	var differ []string
	for i, col := range t.Columns {
		a := e.Value(i)
		if x, ok := external[i]; ok {
			if a == nil || int64(len(a)) != x.Size || sha256.Sum256(a) != x.SHA256 {
				differ = append(differ, col.Name)
			}
			continue
		}
		b := c.Value(i)
		if (a == nil) != (b == nil) || !bytes.Equal(a, b) {
			differ = append(differ, col.Name)
		}
	}
	if !c.CommitTime.Equal(e.CommitTime) {
		differ = append(differ, "commit time")
	}
	if len(differ) > 0 {
		find(CheckFeedChanged, "the feed copy (message %d) differs from the archived event in %s", m.Sequence, strings.Join(differ, ", "))
	}
}

// firstAtOrAfter returns the sequence of the first retained event message
// whose commit position is at or after pos (0: none), by a binary search
// over sequences: capture publishes in commit order, so a few dozen reads
// find it instead of a walk from the stream's start.
func (f *feedRound) firstAtOrAfter(ctx context.Context, pos event.Position) (uint64, error) {
	info, err := f.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("monitor: stream %s info: %w", f.opts.Stream, err)
	}
	if info.State.Msgs == 0 {
		return 0, nil
	}
	lo, hi := info.State.FirstSeq, info.State.LastSeq+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		seq, at, ok, err := f.positionAtOrAfter(ctx, mid, hi)
		switch {
		case err != nil:
			return 0, err
		case !ok:
			hi = mid
		case at < pos:
			lo = seq + 1
		default:
			hi = mid
		}
	}
	return lo, nil
}

// probeSpan bounds the messages positionAtOrAfter reads past tamper
// reports, deleted messages and messages that do not decode.
const probeSpan = 8

// positionAtOrAfter returns the first message at or after seq (and before
// hi) that has a chain position — an event's commit position or a
// heartbeat's — reading messages by their exact sequence; ok is false
// when none is within probeSpan. A get with a subject filter would find
// the next event in one request, but the server answers it by scanning
// for the subject: on a stream of a million messages each took seconds,
// and a monitor round grew with the stream (monitor-steady).
func (f *feedRound) positionAtOrAfter(ctx context.Context, seq, hi uint64) (uint64, event.Position, bool, error) {
	for end := min(hi, seq+probeSpan); seq < end; seq++ {
		m, err := f.stream.GetMsg(ctx, seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			continue
		case err != nil:
			return 0, 0, false, fmt.Errorf("monitor: read message %d of stream %s: %w", seq, f.opts.Stream, err)
		}
		nm := asMsg(m)
		if env, err := feed.DecodeEnvelope(nm); err == nil {
			return seq, env.CommitLSN, true, nil
		}
		if feed.IsHeartbeat(nm) {
			if hb, err := feed.DecodeHeartbeat(nm); err == nil {
				return seq, hb.LSN, true, nil
			}
		}
	}
	return 0, 0, false, nil
}

// asMsg views a stored message as the message feed's decoders read.
func asMsg(m *jetstream.RawStreamMsg) *nats.Msg {
	return &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
}
