// Package archivetest publishes synthetic capture feeds into JetStream and
// checks what an archiver made of them, for the archive and cmd/archiver
// tests. It plays capture's part exactly as internal/feed specifies it:
// events and heartbeats with a PrevLSN chain, deterministic message ids and
// table definitions in META.
package archivetest
