// Package golden holds what Tidemark's golden-file tests share: the
// compare-or-rewrite step, a text form of JetStream messages, how capture
// composes the messages it publishes, and the feed stream and archive that
// today's capture encoding and archiver wrote (testdata/feed-v1 and
// testdata/archive-v1).
//
// Golden files pin persisted formats: a test reads the stored bytes with
// the current decoder and compares every field with values written in Go,
// and encodes the same input again and requires the stored bytes. Each
// test package declares its own -update flag; only `go test -update`
// rewrites a golden file, and a diff of testdata/ then shows what changed.
//
// The package must not import segment, catalog, archive or restore: their
// internal tests import it.
package golden
