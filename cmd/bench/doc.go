// Command bench is `make bench`: one run of internal/testing/bench on this machine —
// a ~1M-event EventCore backlog, capture, archiver and restorer timed
// against pg_recvlogical and plain COPY on the same data — printing the
// ratio table and recording it in docs/benchmarks.md.
package main
