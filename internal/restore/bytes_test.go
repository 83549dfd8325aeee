package restore

import (
	"bytes"
	"io"

	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
)

// bytesBuffer collects a segment in memory.
type bytesBuffer struct{ b []byte }

func (w *bytesBuffer) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *bytesBuffer) reader() io.Reader           { return bytes.NewReader(w.b) }

func openFileStore(dir string) (objstore.Store, error) { return file.Open(dir) }
