package bench

import (
	"context"
	"path/filepath"
)

// RecvLogicalOptions say which slot pg_recvlogical drains, and how far.
type RecvLogicalOptions struct {
	// BinDir holds pg_recvlogical (the PostgreSQL 15 binaries).
	BinDir string
	// PGURL is the source database.
	PGURL string
	// Slot is an existing pgoutput slot; Publication the publication it reads.
	Slot, Publication string
	// EndLSN is where the backlog ends; pg_recvlogical exits on reaching it.
	EndLSN string
	// LogPath receives pg_recvlogical's messages.
	LogPath string
}

// RecvLogical drains a slot with pg_recvlogical writing to /dev/null — the
// least work a pgoutput consumer can do — and returns its wall time from
// process start to reaching the backlog's end, and its CPU time.
func RecvLogical(ctx context.Context, o RecvLogicalOptions) (ProcResult, error) {
	return runProcess(ctx, o.LogPath, nil, filepath.Join(o.BinDir, "pg_recvlogical"),
		"-d", o.PGURL, "--slot", o.Slot, "--start", "--no-loop",
		"-o", "proto_version=1", "-o", "publication_names="+o.Publication,
		"--endpos", o.EndLSN, "-f", "/dev/null")
}
