// Package monitor is the integrity monitor: a long-running sampler that,
// every interval, checks that a random sample of archived events still
// agrees with the source rows they were captured from (same column values,
// the row still present) and with their feed copies in JetStream while the
// stream holds them (found by a binary search on commit LSN), that the
// sampled segment objects are intact, and that the replication slot's
// confirmed position has not passed the archive's durable watermark. Its
// load on the source is bounded: one slot query and at most Segments ×
// Sample primary-key lookups per interval, never a scan. `archiver monitor` runs it with metrics; see docs/operations.md.
package monitor
