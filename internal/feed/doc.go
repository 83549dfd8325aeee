// Package feed is the wire format of Tidemark's JetStream feed: subjects,
// headers and message bodies. Capture encodes with it, the archiver and any
// downstream consumer decode with it. docs/feed.md is its specification.
package feed
