package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// Archive is a loaded catalog together with the store and keyring needed
// to read its segments.
type Archive struct {
	// Store is where the segments live.
	Store objstore.Store
	// Keyring decrypts encrypted segments; nil reads plaintext only.
	Keyring *segment.Keyring
	// Catalog is the verified catalog.
	Catalog *catalog.Catalog
	// Fallbacks are other stores holding a copy of the same archive
	// (archiver copy), in the order a restore reads from them when a
	// planned segment is missing from Store, or damaged there (see
	// fetcher.fetch). Empty: a missing or damaged segment fails the restore.
	Fallbacks []objstore.Store
}

// Open loads and verifies the catalog in store. A store without a catalog,
// or whose bucket does not exist, is ErrNoArchive; missing or rejected
// credentials are ErrCredentials.
func Open(ctx context.Context, store objstore.Store, keyring *segment.Keyring) (*Archive, error) {
	c, err := catalog.Load(ctx, store)
	if err != nil {
		return nil, classifyStoreErr(store, err)
	}
	if c.NextSeq() == 1 {
		return nil, failf(ErrNoArchive, "check --store; `restorer list --store URL` shows what an archive holds",
			"no archive at %s: the store holds no catalog", store)
	}
	return &Archive{Store: store, Keyring: keyring, Catalog: c}, nil
}

// classifyStoreErr maps object-store failures to the restorer's kinds.
func classifyStoreErr(store objstore.Store, err error) error {
	if serr := storeProblem(store, err); serr != nil {
		return serr
	}
	switch {
	case errors.Is(err, catalog.ErrChainBroken):
		return withHint(ErrIntegrity, fmt.Errorf("load catalog from %s: %w", store, err),
			"the catalog was altered or an entry is missing; `restorer verify --store URL` reports what it can")
	case errors.Is(err, objstore.ErrNotFound):
		return failf(ErrNoArchive, "check --store; `restorer list --store URL` shows what an archive holds",
			"no archive at %s: %v", store, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("load catalog from %s: %w", store, err)
}

// storeProblem classifies the failures that concern the whole store, not
// one object, with the backend's hint (objstore.Hint): missing or refused
// credentials are ErrCredentials, a missing bucket is ErrNoArchive. It
// returns nil for any other error.
func storeProblem(store objstore.Store, err error) error {
	var kind error
	msg := "read %s: %w"
	switch {
	case errors.Is(err, objstore.ErrNoCredentials), errors.Is(err, objstore.ErrAccessDenied):
		kind = ErrCredentials
	case errors.Is(err, objstore.ErrBucketNotFound):
		kind, msg = ErrNoArchive, "no archive at %s: %w"
	default:
		return nil
	}
	hint := objstore.Hint(err)
	if hint == "" {
		hint = "check --store and the store credentials"
	}
	return withHint(kind, fmt.Errorf(msg, store, err), hint)
}

// Window is the span an archive can restore to.
type Window struct {
	// Empty is true when the archive holds no event yet.
	Empty bool `json:"empty"`
	// First is the earliest commit time in the archive.
	First time.Time `json:"first"`
	// Watermark is the commit time up to which every source transaction is archived.
	Watermark time.Time `json:"watermark"`
	// WatermarkLSN is the watermark's chain position.
	WatermarkLSN event.Position `json:"watermark_lsn"`
}

// String prints the window in UTC.
func (w Window) String() string {
	if w.Empty {
		return "empty (watermark " + FormatTime(w.Watermark) + ")"
	}
	return FormatTime(w.First) + " … " + FormatTime(w.Watermark)
}

// Window returns the restorable window.
func (a *Archive) Window() Window {
	wm := a.Catalog.Watermark()
	w := Window{Watermark: wm.CommitTime.UTC(), WatermarkLSN: wm.LSN}
	first, _, ok := a.Catalog.Window()
	if !ok {
		w.Empty = true
		return w
	}
	w.First = first.UTC()
	return w
}

// ID identifies the archive independently of where it is read from and of
// catalog rebuilds: a digest of its first segment's key and checksum. It is
// what the restore state records, so a resume must read the same archive.
func (a *Archive) ID() string {
	segs := a.Catalog.Segments()
	if len(segs) == 0 {
		return ""
	}
	sum := sha256.Sum256([]byte(segs[0].Key + "\x00" + segs[0].SHA256))
	return hex.EncodeToString(sum[:8])
}

// origin identifies the archive like ID, but by the chain position its
// first event starts from (its first segment's table definition, first end
// LSN and chain link) rather than by the first segment object: merges
// replace that object, never that position. The restore state records it,
// so a restore interrupted before a merge resumes after it.
func (a *Archive) origin() string {
	segs := a.Catalog.Segments()
	if len(segs) == 0 {
		return ""
	}
	s := segs[0]
	sum := sha256.Sum256([]byte("origin\x00" + s.TableID + "\x00" + s.FirstEndLSN.String() + "\x00" + s.PrevLSN.String()))
	return hex.EncodeToString(sum[:8])
}

// Tables returns the qualified names of the tables the archive holds, in
// order of first appearance.
func (a *Archive) Tables() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range a.Catalog.Segments() {
		if !seen[s.Table] {
			seen[s.Table] = true
			out = append(out, s.Table)
		}
	}
	return out
}
