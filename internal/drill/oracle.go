package drill

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/event"
)

// Sum is a count of events and an order-independent digest of them: the
// wrapping sum of the first 8 bytes (big-endian) of
// md5(event_id || '/' || stream_id || '/' || stream_version) per event,
// in PostgreSQL's text form of each column. The same sum is computed in SQL
// (digestSQL) over a restored table or the source, so the archive, the
// source and a restore can be compared without moving rows.
type Sum struct {
	Events int64  `json:"events"`
	Digest uint64 `json:"digest"`
}

func (s Sum) String() string { return fmt.Sprintf("%d events, digest %016x", s.Events, s.Digest) }

func (s *Sum) add(h uint64) { s.Events++; s.Digest += h }

// eventHash is one event's term of Sum.Digest.
func eventHash(id, stream, version []byte) uint64 {
	h := md5.New()
	h.Write(id)
	h.Write([]byte{'/'})
	h.Write(stream)
	h.Write([]byte{'/'})
	h.Write(version)
	return binary.BigEndian.Uint64(h.Sum(nil)[:8])
}

// archiveOracle is what the archive itself says a restore must hold: the
// Sum of the events committed at or before any instant, and per stream.
// It is filled from verify's pass over every event (16 bytes per event,
// plus one entry per stream).
type archiveOracle struct {
	layout  event.Layout
	ok      bool // the table has event_id, stream_id and stream_version
	items   []timedHash
	prefix  []uint64 // prefix[i] = sum of items[:i] hashes, once sorted
	streams map[string]*Sum
}

type timedHash struct {
	at int64 // commit time, Unix microseconds
	h  uint64
}

func newArchiveOracle() *archiveOracle { return &archiveOracle{streams: map[string]*Sum{}} }

// add records one archived event.
func (o *archiveOracle) add(t *event.Table, e *event.Event) {
	if o.items == nil && len(o.streams) == 0 {
		o.layout = event.LayoutOf(*t)
		o.ok = o.layout.EventID >= 0 && o.layout.StreamID >= 0 && o.layout.StreamVersion >= 0
	}
	if !o.ok {
		return
	}
	stream := e.Value(o.layout.StreamID)
	h := eventHash(e.Value(o.layout.EventID), stream, e.Value(o.layout.StreamVersion))
	o.items = append(o.items, timedHash{at: e.CommitTime.UnixMicro(), h: h})
	s := o.streams[string(stream)]
	if s == nil {
		s = &Sum{}
		o.streams[string(stream)] = s
	}
	s.add(h)
}

// seal sorts the events by commit time so that At answers in O(log n).
func (o *archiveOracle) seal() {
	sort.Slice(o.items, func(a, b int) bool { return o.items[a].at < o.items[b].at })
	o.prefix = make([]uint64, len(o.items)+1)
	for i, it := range o.items {
		o.prefix[i+1] = o.prefix[i] + it.h
	}
}

// At returns the Sum of the archived events committed at or before t.
func (o *archiveOracle) At(t time.Time) Sum {
	us := t.UnixMicro()
	n := sort.Search(len(o.items), func(i int) bool { return o.items[i].at > us })
	return Sum{Events: int64(n), Digest: o.prefix[n]}
}

// Streams returns the Sum of the given streams' archived events.
func (o *archiveOracle) Streams(ids []string) Sum {
	var s Sum
	for _, id := range ids {
		if st := o.streams[id]; st != nil {
			s.Events += st.Events
			s.Digest += st.Digest
		}
	}
	return s
}

// digestSQL computes Sum over table's rows matching where (with args).
func digestSQL(ctx context.Context, conn *pgx.Conn, table pgx.Identifier, where string, args ...any) (Sum, error) {
	q := `SELECT count(*), coalesce(sum(('x' || substr(md5(event_id::text || '/' || stream_id::text || '/' || stream_version::text), 1, 16))::bit(64)::bigint::numeric), 0)::text FROM ` +
		table.Sanitize()
	if where != "" {
		q += " WHERE " + where
	}
	var s Sum
	var total string
	if err := conn.QueryRow(ctx, q, args...).Scan(&s.Events, &total); err != nil {
		return Sum{}, err
	}
	n, ok := new(big.Int).SetString(total, 10)
	if !ok {
		return Sum{}, fmt.Errorf("digest sum %q is not an integer", total)
	}
	s.Digest = new(big.Int).And(n, new(big.Int).SetUint64(^uint64(0))).Uint64() // two's complement mod 2^64
	return s, nil
}

// sourceAt is the commit-time oracle: the Sum of the source rows whose
// transaction committed at or before t (rows without a commit timestamp
// count as before), restricted to streams when given.
func sourceAt(ctx context.Context, conn *pgx.Conn, table pgx.Identifier, t time.Time, streams []string) (Sum, error) {
	where := `coalesce(pg_xact_commit_timestamp(xmin) <= $1, true)`
	args := []any{t}
	if len(streams) > 0 {
		where += ` AND stream_id::text = ANY($2)`
		args = append(args, slices.Clone(streams))
	}
	return digestSQL(ctx, conn, table, where, args...)
}
