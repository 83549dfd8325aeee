// Command loadgen writes an EventCore-style workload into a PostgreSQL
// eventcore store, for demos, benchmarks and chaos runs.
package main
