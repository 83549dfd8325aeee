// Package merge keeps an archive's object count proportional to its live
// data instead of its age: the catalog lease holder merges consecutive
// flush segments into minute, hour and day segments (levels), each merge
// recorded in the catalog's hash chain with a digest proving that the
// output holds exactly its inputs' events, in order. Every event keeps its
// commit time, positions and transaction, so restores stay exact to the
// microsecond. docs/catalog.md describes the merge records.
package merge
