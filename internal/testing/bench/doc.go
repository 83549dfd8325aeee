// Package bench measures Tidemark against this machine's own limits: one
// run loads an EventCore-style backlog, times capture, the archiver and the
// restorer on it, and times the tools they are compared with (pg_recvlogical,
// plain COPY) on the same data in the same run, so the reported ratios hold
// on a noisy, shared machine. cmd/bench (`make bench`) drives it and prints
// the table; docs/benchmarks.md records the results.
package bench
