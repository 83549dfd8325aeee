// Package event defines the captured-event model shared by capture, the
// archiver and the restorer. It sits at the bottom of the import graph and
// knows nothing about Postgres connections, NATS or object storage.
package event
