// Command capture streams every committed event of PostgreSQL event tables
// into NATS JetStream, whole transactions in commit order, and confirms the
// replication slot only up to what the archive holds. See docs/capture.md
// and docs/feed.md.
package main
