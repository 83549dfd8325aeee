// Package demo runs Tidemark's main job end to end on the rig's real
// servers — capture, a writer and a standby archiver as real processes,
// an EventCore workload, a killed archiver, two point-in-time restores —
// and reports what it measured. `make demo` runs it.
package demo
