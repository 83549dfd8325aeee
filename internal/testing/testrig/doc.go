// Package testrig starts real servers — PostgreSQL 15, NATS JetStream
// (embedded or as real nats-server processes) and an S3 gateway (versitygw
// with its posix backend) — on loopback ports in temporary directories, for
// integration tests, the demo, benchmarks and chaos runs.
//
// Every server gets a free 127.0.0.1 port and its own directory, keeps its
// log in that directory (the tail is included in the error when it fails to
// start) and is stopped by PID. The StartX(tb) forms register cleanup and
// fail the test when a server cannot start; the StartXProcess(ctx, dir) forms
// return errors and leave stopping to the caller. SharedPostgres gives a
// whole test binary one cluster; Postgres.NewDatabase and
// NewEventCoreDatabase give each test its own database there, and Connect
// a connection to it. StartStandby adds a streaming standby of a cluster
// (Promote, StopImmediate on the primary, MultiHostURL) for failover tests.
package testrig
