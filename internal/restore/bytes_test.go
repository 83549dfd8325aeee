package restore

import (
	"bytes"
	"io"
)

// bytesBuffer collects a segment in memory.
type bytesBuffer struct{ b []byte }

func (w *bytesBuffer) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *bytesBuffer) reader() io.Reader           { return bytes.NewReader(w.b) }
