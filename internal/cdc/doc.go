// Package cdc is Tidemark's capture: it reads a PostgreSQL logical
// replication slot (pgoutput), snapshots a new slot's existing rows,
// assembles whole transactions, publishes one JetStream message per event
// in the internal/feed format, and confirms the slot only up to what is
// durably handled (by default: the archive's watermark).
package cdc
