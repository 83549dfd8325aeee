// Package file is the local-directory objstore backend: one file per key
// under a root directory. Writes are atomic and durable (temp file, fsync,
// rename or link, fsync of the directory); conditional creates use link(2),
// which fails when the name exists, so two writers can never both win.
package file
