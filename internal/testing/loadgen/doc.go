// Package loadgen writes an EventCore-style workload into an eventcore
// store: commands that each append a few events to a few streams in one
// transaction under optimistic concurrency, retrying on version conflicts
// as an application would. It also produces the hard cases a backup must
// survive (huge, rolled-back, long-running transactions, odd stream ids,
// big payloads) on demand.
package loadgen
