// Package eventcore recreates EventCore's PostgreSQL event store — the
// append-only eventcore_events table, its version and immutability
// triggers, and the side tables — as the fixture Tidemark backs up.
package eventcore
