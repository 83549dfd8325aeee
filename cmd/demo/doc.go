// Command demo runs Tidemark's main job on embedded defaults (`make demo`):
// real PostgreSQL, NATS JetStream and object store; capture and two
// archivers as processes; a workload; a killed archiver; two verified
// point-in-time restores; and a summary. It exits non-zero if any
// verification failed.
package main
