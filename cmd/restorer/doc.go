// Command restorer restores an archived PostgreSQL event table to any
// instant within the archive's window, lists what an archive holds, and
// verifies it. See docs/restore.md and docs/exit-codes.md.
package main
