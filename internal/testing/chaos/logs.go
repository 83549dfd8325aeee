package chaos

import (
	"bytes"
	"os"
	"path/filepath"
)

// logFiles lists every log under the scenario's directory (programs,
// servers, restorer runs).
func (e *Env) logFiles() []string {
	var out []string
	_ = filepath.WalkDir(e.Dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(path) == ".log" {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// logsMention reports whether any archiver's log contains word.
func (e *Env) logsMention(word string) bool {
	for _, a := range e.Archivers {
		b, err := os.ReadFile(a.LogPath)
		if err == nil && bytes.Contains(b, []byte(word)) {
			return true
		}
	}
	return false
}

// logContains reports whether the file at path contains s.
func logContains(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(s))
}
