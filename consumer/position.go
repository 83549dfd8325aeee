package consumer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tidemark/tidemark/internal/event"
)

// LSN is a PostgreSQL WAL location. It prints and parses as PostgreSQL
// does ("16/B374D848").
type LSN uint64

// String formats l as "X/X".
func (l LSN) String() string { return event.Position(l).String() }

// MarshalText implements encoding.TextMarshaler.
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *LSN) UnmarshalText(b []byte) error {
	p, err := event.ParsePosition(string(b))
	if err != nil {
		return err
	}
	*l = LSN(p)
	return nil
}

// ParseLSN parses the "X/X" form.
func ParseLSN(s string) (LSN, error) {
	var l LSN
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// Position is where an event sits in the source's history: its
// transaction's chain position (the end of the commit record) and its
// index within the transaction. Positions rise strictly along the history,
// so "everything up to P" is well defined; a consumer saves the Position of
// the last event it processed and resumes after it. Archive names the
// archive the position was read against (Cursor refuses a position from
// another archive). Its JSON form is stable.
type Position struct {
	Archive string `json:"archive,omitempty"`
	End     LSN    `json:"end"`
	Index   int    `json:"index"`
}

// IsZero reports whether p is the zero Position: before everything.
func (p Position) IsZero() bool { return p.End == 0 }

// Before reports whether p comes before q in the history (the archive
// identity is not compared).
func (p Position) Before(q Position) bool {
	return p.End < q.End || p.End == q.End && p.Index < q.Index
}

// String prints the position as "END#INDEX".
func (p Position) String() string { return fmt.Sprintf("%s#%d", p.End, p.Index) }

// PositionStore keeps a consumer's position durably.
type PositionStore interface {
	// Load returns the saved position; ok is false when none was saved.
	Load() (p Position, ok bool, err error)
	// Save replaces the saved position.
	Save(p Position) error
}

// FileStore is a PositionStore in one file, holding the Position as JSON.
// Save writes a temporary file, syncs it and renames it over the old one,
// so a crash at any moment leaves the previous or the new position, never
// a torn one.
type FileStore struct {
	Path string
}

// Load reads the saved position.
func (f FileStore) Load() (Position, bool, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return Position{}, false, nil
	}
	if err != nil {
		return Position{}, false, fmt.Errorf("read position file: %w", err)
	}
	var p Position
	if err := json.Unmarshal(b, &p); err != nil {
		return Position{}, false, fmt.Errorf("position file %s is not a saved position (%v); Try: remove it to start over, or point to the right file", f.Path, err)
	}
	return p, true, nil
}

// Save replaces the saved position atomically and durably.
func (f FileStore) Save(p Position) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return writeFileAtomic(f.Path, append(b, '\n'))
}

// writeFileAtomic replaces path with data: a synced temporary file renamed
// over it, then the directory synced.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
