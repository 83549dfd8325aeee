// Package copier keeps copies of an archive in other stores: it follows
// the primary store's catalog and copies every live object and catalog
// object to each destination, checking SHA-256 on the way, entry by entry,
// so that each copy is at every moment a complete archive of its own that
// can be listed, verified and restored without the primary. Each copy
// advances on its own; an unreachable destination holds back only itself
// and catches up from its own catalog when it returns. The copier only
// reads the primary.
package copier
