// Package drill proves that an archive restores: one Run checks the
// watermark's freshness, verifies the archive (whole or a sampled share of
// its segments), restores it in full to the latest instant, a few random
// streams, and a few random instants into scratch databases it creates and
// drops, compares every restore with an oracle (the live source by commit
// time when reachable, else the archive's own per-stream counts and
// digests), and measures the RTO. cmd/restorer's `drill` subcommand wires
// it to flags, output and, with --interval, to Prometheus metrics.
package drill
