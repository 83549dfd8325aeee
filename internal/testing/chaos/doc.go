// Package chaos is Tidemark's fault-injection suite. Each scenario runs the
// whole pipeline on the rig's real servers (PostgreSQL, NATS JetStream, an
// S3 server or a directory) with capture and archivers as real processes,
// writes a concurrent EventCore-style workload, injects one kind of fault
// (kill -9, SIGSTOP, a broken network link, a failing or lying object
// store, corrupted objects, a full disk, lost JetStream messages, a crashed
// or misconfigured source), lets the system recover and checks the
// invariants against the source oracle:
//
//	I1 no committed event is missing from the archive
//	I2 no event is duplicated in the archive or in any restore
//	I3 restore(T) equals the oracle at sampled T (including a commit time
//	   exactly, and 1µs before one)
//	I4 every transaction is restored whole or not at all
//	I5 every detector fires when it should (verify, restore, hole and
//	   tamper metrics, capture's refusals) and stays quiet otherwise
//	I6 the slot's confirmed_flush_lsn never passes the archive's durable
//	   watermark (sampled throughout the run)
//
// Every scenario is seeded and bounded in time, and prints one line:
// "scenario=<name> seed=<n> events=<n> result=ok" or the invariant that
// broke. `make chaos` runs them all, `make chaos SCENARIO=name SEED=n` one,
// and `make test` a short subset (see Short). docs/reliability.md lists them.
package chaos
