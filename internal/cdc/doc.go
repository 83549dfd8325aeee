// Package cdc is Tidemark's capture: it reads a PostgreSQL logical
// replication slot (pgoutput), snapshots a new slot's existing rows,
// assembles whole transactions, publishes one JetStream message per event
// in the internal/feed format (values too large for a message go first to
// the <stream>_VALUES object store, streamed from the spill file), and
// confirms the slot only up to what is durably handled (by default: the
// archive's watermark).
package cdc
