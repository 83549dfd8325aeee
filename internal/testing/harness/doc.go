// Package harness runs the whole Tidemark pipeline on one machine — the
// rig's real servers plus capture and archivers as real processes — for
// the demo, the benchmarks and the fault-injection suite.
package harness
