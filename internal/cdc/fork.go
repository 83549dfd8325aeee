package cdc

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidemark/tidemark/internal/event"
)

// timelineFork is one line of a timeline history file: timeline Timeline
// ended at SwitchPoint, where the next one branched off.
type timelineFork struct {
	Timeline    int32          `json:"timeline"`
	SwitchPoint event.Position `json:"switchpoint"`
}

// maxHistoryBytes bounds a timeline history file read from the server.
const maxHistoryBytes = 1 << 20

// timelineHistory reads the history of timeline tli (TIMELINE_HISTORY): the
// timelines before it and where each ended. Timeline 1 has none.
func timelineHistory(ctx context.Context, conn *pgconn.PgConn, tli int32) ([]timelineFork, error) {
	if tli <= 1 {
		return nil, nil
	}
	res, err := pglogrepl.TimelineHistory(ctx, conn, tli)
	if err != nil {
		return nil, fmt.Errorf("read timeline %d history: %w", tli, err)
	}
	return parseTimelineHistory(res.Content)
}

// parseTimelineHistory parses a timeline history file: one line per
// earlier timeline, "<tli>\t<switchpoint>\t<reason>", comments (#) and
// blank lines ignored.
func parseTimelineHistory(content []byte) ([]timelineFork, error) {
	if len(content) > maxHistoryBytes {
		return nil, fmt.Errorf("timeline history of %d bytes is over %d", len(content), maxHistoryBytes)
	}
	var out []timelineFork
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 0, 4096), maxHistoryBytes)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("timeline history line %q: want <timeline> <switchpoint> [reason]", line)
		}
		tli, err := strconv.ParseUint(f[0], 10, 31)
		if err != nil {
			return nil, fmt.Errorf("timeline history line %q: timeline: %w", line, err)
		}
		sp, err := event.ParsePosition(f[1])
		if err != nil {
			return nil, fmt.Errorf("timeline history line %q: %w", line, err)
		}
		out = append(out, timelineFork{Timeline: int32(tli), SwitchPoint: sp})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("timeline history: %w", err)
	}
	return out, nil
}

// forkOf returns where timeline tli ended according to history: the
// position from which the current timeline no longer holds tli's WAL.
func forkOf(history []timelineFork, tli int32) (event.Position, bool) {
	for _, f := range history {
		if f.Timeline == tli {
			return f.SwitchPoint, true
		}
	}
	return 0, false
}
