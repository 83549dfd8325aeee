package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/event"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/segment"
)

// DefaultMaxSegmentBytes bounds one downloaded segment (stored bytes).
const DefaultMaxSegmentBytes = 1 << 30

// fetcher downloads segments into temporary files.
type fetcher struct {
	store     objstore.Store
	fallbacks []objstore.Store // read in order when store lacks or spoils a segment
	keyring   *segment.Keyring
	maxBytes  int64
	tempDir   string // "" = os.TempDir()
	progress  *Progress
}

// segmentFile is one planned segment downloaded into a temporary file whose
// size and SHA-256 matched the catalog's. The file is already unlinked
// where the system allows it, so a killed restorer leaves nothing behind.
type segmentFile struct {
	ref  catalog.SegmentRef
	file *os.File
	path string // still to remove on close ("" once unlinked)
}

// close closes and removes the file.
func (s *segmentFile) close() {
	s.file.Close()
	if s.path != "" {
		os.Remove(s.path)
	}
}

// goneError reports a planned segment object that is not in the store:
// garbage collection deleted it after a merge superseded it, or it was
// lost. The restore re-plans from a fresh catalog to tell which.
type goneError struct {
	ref   catalog.SegmentRef
	store objstore.Store
	// fallbacks says why each fallback store could not supply it.
	fallbacks []string
}

func (e *goneError) Error() string {
	msg := fmt.Sprintf("segment %s is in the catalog but missing from %s (it holds commits %s … %s)", e.ref.Key, e.store,
		FormatTime(e.ref.MinCommitTime), FormatTime(e.ref.MaxCommitTime))
	for _, f := range e.fallbacks {
		msg += "; " + f
	}
	return msg
}

// lost classifies e once a fresh catalog still lists the segment as live.
func (e *goneError) lost() error {
	return withHint(ErrIntegrity, e, "restorer verify --store URL; restore to an instant before the segment's commits, or recover the object from a bucket version or replica")
}

// fetchFrom downloads ref from store into a temporary file, checking its
// size and SHA-256 against the catalog as the bytes arrive; nothing of a
// segment that fails is returned. A missing object is a *goneError; any
// other failure names the object.
func (f *fetcher) fetchFrom(ctx context.Context, store objstore.Store, ref catalog.SegmentRef) (*segmentFile, error) {
	limit := f.maxBytes
	if limit <= 0 {
		limit = DefaultMaxSegmentBytes
	}
	if ref.Size > limit {
		return nil, failf(ErrIntegrity, "raise --max-segment-bytes if the segment is legitimately this large",
			"segment %s: catalog size %d exceeds the %d-byte limit", ref.Key, ref.Size, limit)
	}
	sf, err := f.tempFile(ref)
	if err != nil {
		return nil, err
	}
	n, sum, err := f.download(ctx, store, ref, sf.file)
	if err == nil {
		err = checkDownload(ref, n, sum)
	}
	if err != nil {
		sf.close()
		return nil, f.downloadFailure(store, ref, err)
	}
	f.progress.BytesDownloaded.Add(n)
	return sf, nil
}

// definition downloads and verifies ref and returns its table definition.
func (f *fetcher) definition(ctx context.Context, ref catalog.SegmentRef) (event.Table, error) {
	sf, err := f.fetch(ctx, ref)
	var gone *goneError
	if errors.As(err, &gone) {
		return event.Table{}, gone.lost()
	}
	if err != nil {
		return event.Table{}, err
	}
	defer sf.close()
	r, err := sf.open(f.keyring)
	if err != nil {
		return event.Table{}, err
	}
	defer r.Close()
	return r.Header().Table, nil
}

// tempFile creates the temporary file for ref and unlinks it at once when
// the system allows (it lives on while open).
func (f *fetcher) tempFile(ref catalog.SegmentRef) (*segmentFile, error) {
	file, err := os.CreateTemp(f.tempDir, "tidemark-restore-*.tms")
	if err != nil {
		return nil, fmt.Errorf("download segment %s: %w", ref.Key, err)
	}
	sf := &segmentFile{ref: ref, file: file, path: file.Name()}
	if os.Remove(sf.path) == nil {
		sf.path = ""
	}
	return sf, nil
}

// download copies the object into file and returns its size and SHA-256,
// starting over on a read cut short in transit by the rule of every
// archive read (objstore.DefaultRetry); a missing or forbidden object fails
// at once, and one larger than the catalog says without being read further.
func (f *fetcher) download(ctx context.Context, store objstore.Store, ref catalog.SegmentRef, file *os.File) (int64, string, error) {
	return objstore.Download(ctx, store, ref.Key, file, ref.Size, objstore.WithRetry(objstore.DefaultRetry))
}

// checkDownload compares what was read with the catalog's size and SHA-256.
func checkDownload(ref catalog.SegmentRef, n int64, sum string) error {
	if n != ref.Size {
		return failf(ErrIntegrity, "restorer verify --store URL",
			"segment %s is corrupt: %d bytes, the catalog says %d", ref.Key, n, ref.Size)
	}
	if ref.SHA256 != "" && sum != ref.SHA256 {
		return failf(ErrIntegrity, "restorer verify --store URL",
			"segment %s is corrupt: SHA-256 %s does not match the catalog's %s", ref.Key, shortHash(sum), shortHash(ref.SHA256))
	}
	return nil
}

// downloadFailure classifies the failure to download ref.
func (f *fetcher) downloadFailure(store objstore.Store, ref catalog.SegmentRef, err error) error {
	var tooLarge *objstore.TooLargeError
	switch {
	case errors.Is(err, ErrIntegrity):
		return err
	case errors.Is(err, objstore.ErrNotFound):
		return &goneError{ref: ref, store: store}
	case errors.As(err, &tooLarge):
		return failf(ErrIntegrity, "restorer verify --store URL",
			"segment %s is corrupt: larger than the catalog's %d bytes", ref.Key, ref.Size)
	case errors.Is(err, objstore.ErrAccessDenied):
		return withHint(ErrCredentials, fmt.Errorf("download segment %s: %w", ref.Key, err), "check the store credentials")
	}
	return fmt.Errorf("download segment %s: %w", ref.Key, err)
}

// open verifies the downloaded segment (segment.OpenReader: its own
// checksums and, if encrypted, its authentication and key), checks its
// header and trailer against the catalog, and returns a reader of its
// events. The caller closes the reader.
func (s *segmentFile) open(kr *segment.Keyring) (*segment.Reader, error) {
	r, err := segment.OpenReader(s.ref.Key, s.file, s.ref.Size, segment.ReadOptions{Keyring: kr})
	if err != nil {
		return nil, classifySegmentErr(s.ref, err)
	}
	if err := checkTrailer(s.ref, r.Header(), r.Trailer()); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// classifySegmentErr maps a segment reader's failure to the restorer's kinds.
func classifySegmentErr(ref catalog.SegmentRef, err error) error {
	switch {
	case errors.Is(err, segment.ErrNoKey):
		return withHint(ErrKey, err, "pass the key file holding that key with --encryption-key-file (keep old keys in it after a rotation)")
	case errors.Is(err, segment.ErrCorrupt):
		return withHint(ErrIntegrity, err, "restorer verify --store URL")
	}
	return fmt.Errorf("decode segment %s: %w", ref.Key, err)
}

// disagrees reports a segment that does not match its catalog entry.
func disagrees(ref catalog.SegmentRef, format string, args ...any) error {
	return failf(ErrIntegrity, "restorer verify --store URL",
		"segment %s disagrees with the catalog: %s", ref.Key, fmt.Sprintf(format, args...))
}

// checkTrailer compares a segment's header and stored trailer with its
// catalog entry. The reader checks the trailer against the events as they
// are read; checkEvent checks each event against the entry.
func checkTrailer(ref catalog.SegmentRef, h *segment.Header, tr *segment.Trailer) error {
	switch {
	case tr.Events != ref.Events:
		return disagrees(ref, "%d events, the catalog says %d", tr.Events, ref.Events)
	case h.Table.QualifiedName() != ref.Table:
		return disagrees(ref, "table %s, the catalog says %s", h.Table.QualifiedName(), ref.Table)
	case ref.TableID != "" && h.Table.ID() != ref.TableID:
		return disagrees(ref, "table definition %s, the catalog says %s", h.Table.ID(), ref.TableID)
	case tr.LastEndLSN != ref.LastEndLSN || tr.FirstEndLSN != ref.FirstEndLSN || tr.PrevLSN != ref.PrevLSN:
		return disagrees(ref, "chain positions %s…%s (prev %s), the catalog says %s…%s (prev %s)",
			tr.FirstEndLSN, tr.LastEndLSN, tr.PrevLSN, ref.FirstEndLSN, ref.LastEndLSN, ref.PrevLSN)
	case ref.Events > 0 && (!tr.MinCommitTime.Equal(ref.MinCommitTime) || !tr.MaxCommitTime.Equal(ref.MaxCommitTime)):
		return disagrees(ref, "commit times %s…%s, the catalog says %s…%s", FormatTime(tr.MinCommitTime), FormatTime(tr.MaxCommitTime),
			FormatTime(ref.MinCommitTime), FormatTime(ref.MaxCommitTime))
	}
	return nil
}

func shortHash(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

// fetched is the outcome of one planned segment's download.
type fetched struct {
	ref  catalog.SegmentRef
	file *segmentFile // nil when err is set
	err  error
}

// pipeline downloads refs with up to parallel downloads in flight and hands
// them out in plan order. A slot is held from the start of a download until
// the consumer releases the segment, so at most parallel downloaded files
// (on disk, not in memory) wait, whatever the archive's size.
type pipeline struct {
	keepGoing bool // deliver every segment, failed or not (verify)
	out       chan *fetched
	slots     chan struct{}
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

func startPipeline(ctx context.Context, f *fetcher, refs []catalog.SegmentRef, parallel int, keepGoing bool) *pipeline {
	if parallel < 1 {
		parallel = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &pipeline{keepGoing: keepGoing, out: make(chan *fetched), slots: make(chan struct{}, parallel), cancel: cancel}
	pending := make(chan chan *fetched, parallel)
	p.wg.Add(2)
	go p.dispatch(ctx, f, refs, pending)
	go p.order(ctx, pending)
	return p
}

// dispatch starts downloads in plan order as slots free up.
func (p *pipeline) dispatch(ctx context.Context, f *fetcher, refs []catalog.SegmentRef, pending chan<- chan *fetched) {
	defer p.wg.Done()
	defer close(pending)
	for _, ref := range refs {
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		ch := make(chan *fetched, 1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			sf, err := f.fetch(ctx, ref)
			ch <- &fetched{ref: ref, file: sf, err: err}
		}()
		select {
		case pending <- ch:
		case <-ctx.Done():
			discard(<-ch)
			return
		}
	}
}

// order hands results out in plan order; whatever it cannot hand out is
// discarded.
func (p *pipeline) order(ctx context.Context, pending <-chan chan *fetched) {
	defer p.wg.Done()
	defer close(p.out)
	defer func() {
		for ch := range pending {
			discard(<-ch)
		}
	}()
	for ch := range pending {
		var r *fetched
		select {
		case r = <-ch:
		case <-ctx.Done():
			discard(<-ch)
			return
		}
		select {
		case p.out <- r:
		case <-ctx.Done():
			discard(r)
			return
		}
		if r.err != nil && !p.keepGoing {
			return
		}
	}
}

func discard(r *fetched) {
	if r != nil && r.file != nil {
		r.file.close()
	}
}

// next returns the next segment in plan order, false when all are done.
// A failed segment comes back as its error, and nothing follows it.
func (p *pipeline) next(ctx context.Context) (*fetched, bool, error) {
	r, ok := p.nextAny(ctx)
	switch {
	case !ok:
		return nil, false, ctx.Err()
	case r.err != nil:
		return nil, false, r.err
	}
	return r, true, nil
}

// nextAny returns the next segment in plan order, failed (err set) or not;
// false when all are done.
func (p *pipeline) nextAny(ctx context.Context) (*fetched, bool) {
	select {
	case r, ok := <-p.out:
		return r, ok
	case <-ctx.Done():
		return nil, false
	}
}

// release closes and removes a segment the consumer is done with and frees
// its slot.
func (p *pipeline) release(r *fetched) {
	discard(r)
	<-p.slots
}

// stop cancels outstanding downloads, waits for them and removes their files.
func (p *pipeline) stop() {
	p.cancel()
	for r := range p.out {
		discard(r)
	}
	p.wg.Wait()
}

// preflight lists the segment objects and checks that every planned one is
// present with the size the catalog records — in store, or else in one of
// the fallbacks — so a missing or truncated segment stops the restore
// before it writes anything at all. (Damage inside an object is caught
// when it is downloaded, before any of its rows are written.) A missing
// object is a *goneError.
func preflight(ctx context.Context, store objstore.Store, fallbacks []objstore.Store, refs []catalog.SegmentRef) error {
	err := preflightOne(ctx, store, refs)
	if err == nil || len(fallbacks) == 0 || ctx.Err() != nil {
		return err
	}
	// Check only what store lacks against each fallback in turn.
	var missing []catalog.SegmentRef
	if sizes, lerr := listSizes(ctx, store); lerr == nil {
		for _, r := range refs {
			if size, ok := sizes[r.Key]; !ok || size != r.Size {
				missing = append(missing, r)
			}
		}
	} else {
		missing = refs
	}
	for _, fb := range fallbacks {
		if len(missing) == 0 {
			return nil
		}
		sizes, lerr := listSizes(ctx, fb)
		if lerr != nil {
			continue
		}
		var still []catalog.SegmentRef
		for _, r := range missing {
			if size, ok := sizes[r.Key]; !ok || size != r.Size {
				still = append(still, r)
			}
		}
		missing = still
	}
	if len(missing) == 0 {
		return nil
	}
	var gone *goneError
	if errors.As(err, &gone) {
		gone = &goneError{ref: missing[0], store: store}
		for _, fb := range fallbacks {
			gone.fallbacks = append(gone.fallbacks, fmt.Sprintf("not in the fallback %s either", fb))
		}
		return gone
	}
	return err
}

// listSizes lists the segment objects of store by key.
func listSizes(ctx context.Context, store objstore.Store) (map[string]int64, error) {
	objs, err := store.List(ctx, catalog.SegmentsPrefix, "")
	if err != nil {
		return nil, err
	}
	sizes := make(map[string]int64, len(objs))
	for _, o := range objs {
		sizes[o.Key] = o.Size
	}
	return sizes, nil
}

// preflightOne is preflight against one store.
func preflightOne(ctx context.Context, store objstore.Store, refs []catalog.SegmentRef) error {
	if len(refs) == 0 {
		return nil
	}
	objs, err := store.List(ctx, catalog.SegmentsPrefix, "")
	if err != nil {
		if errors.Is(err, objstore.ErrAccessDenied) {
			return withHint(ErrCredentials, fmt.Errorf("list segments in %s: %w", store, err), "check the store credentials")
		}
		return fmt.Errorf("list segments in %s: %w", store, err)
	}
	sizes := make(map[string]int64, len(objs))
	for _, o := range objs {
		sizes[o.Key] = o.Size
	}
	for _, r := range refs {
		size, ok := sizes[r.Key]
		switch {
		case !ok:
			return &goneError{ref: r, store: store}
		case size != r.Size:
			return failf(ErrIntegrity, "restorer verify --store URL",
				"segment %s is corrupt: %d bytes in the store, the catalog says %d", r.Key, size, r.Size)
		}
	}
	return nil
}
