package archive

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/segment"
)

func TestSession_CheckWatermark(t *testing.T) {
	s := &session{log: slog.New(slog.DiscardHandler), written: 0x100, lastTxn: 0x200}
	seg := func(last uint64) *closedSegment {
		return &closedSegment{trailer: &segment.Trailer{LastEndLSN: event.Position(last)}}
	}
	target := catalog.Watermark{LSN: 0x240}
	before := testutil.ToFloat64(watermarkRefusedTotal)
	if err := s.checkWatermark(nil, target); !errors.Is(err, errWatermarkAhead) {
		t.Fatalf("watermark-only entry over an unarchived transaction: got %v, want errWatermarkAhead", err)
	}
	if err := s.checkWatermark([]*closedSegment{seg(0x180)}, target); !errors.Is(err, errWatermarkAhead) {
		t.Fatalf("segment ending below the last transaction: got %v, want errWatermarkAhead", err)
	}
	if got := testutil.ToFloat64(watermarkRefusedTotal) - before; got != 2 {
		t.Fatalf("watermark_refused_total grew by %v, want 2", got)
	}
	if err := s.checkWatermark([]*closedSegment{seg(0x180), seg(0x200)}, target); err != nil {
		t.Fatalf("segment holding the last transaction (heartbeats above it): %v", err)
	}
	s.written = 0x200
	if err := s.checkWatermark(nil, target); err != nil {
		t.Fatalf("last transaction already listed: %v", err)
	}
}

func TestSession_FlushRefusedAfterFailure(t *testing.T) {
	s := &session{log: slog.New(slog.DiscardHandler), failed: errors.New("upload: context canceled"), head: 0x300}
	if err := s.flush(t.Context(), "shutdown"); err == nil {
		t.Fatal("flush after a failed flush succeeded; it must refuse (its watermark would cover dropped segments)")
	}
}
