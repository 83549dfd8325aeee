package cdc

import (
	"context"
	"fmt"
)

// failoverSlotsVersion is the first server_version_num whose logical slots
// can be synchronised to physical standbys (CREATE_REPLICATION_SLOT …
// (FAILOVER), sync_replication_slots, synchronized_standby_slots).
const failoverSlotsVersion = 170000

// createSlotCommand is the replication command that creates capture's slot
// with an exported snapshot. From PostgreSQL 17 the slot is created with
// FAILOVER, so a standby running with sync_replication_slots = on keeps a
// copy and capture continues on it after a promotion without a resync;
// earlier servers get the form they understand (no failover slots).
func createSlotCommand(slot string, serverVersionNum int) string {
	if serverVersionNum >= failoverSlotsVersion {
		return fmt.Sprintf("CREATE_REPLICATION_SLOT %s LOGICAL pgoutput (SNAPSHOT 'export', FAILOVER true)", slot)
	}
	return fmt.Sprintf("CREATE_REPLICATION_SLOT %s LOGICAL pgoutput EXPORT_SNAPSHOT", slot)
}

// serverVersionNum returns the source's server_version_num (150004 for 15.4).
func serverVersionNum(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&v); err != nil {
		return 0, fmt.Errorf("read server_version_num: %w", err)
	}
	return v, nil
}
