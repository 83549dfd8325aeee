package catalog

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/tidemark/tidemark/internal/objstore"
)

// download is one segment object fetched into a temporary file by
// prefetch: its size and SHA-256 as read, or why it could not be read.
type download struct {
	i    int // index into the catalog's segments
	file *os.File
	n    int64
	sum  string
	err  error
}

func (d *download) close() {
	if d != nil && d.file != nil {
		d.file.Close()
		os.Remove(d.file.Name())
	}
}

// prefetcher downloads segments with up to parallel downloads in flight
// and hands them out in the order asked, so that the checks that follow
// the chain see segments in chain order while the network stays busy. A
// slot is held from the start of a download until the consumer releases
// it: at most parallel files wait on disk, whatever the archive's size.
type prefetcher struct {
	queue  chan chan *download
	slots  chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startPrefetch downloads refs[idx[0]], refs[idx[1]], … into temporary
// files in dir ("" = os.TempDir()), each read retried by
// objstore.DefaultRetry when cut short in transit, and no more than limit
// bytes past the size the catalog records.
func startPrefetch(ctx context.Context, store objstore.Store, refs []SegmentRef, idx []int, parallel int, dir string) *prefetcher {
	parallel = max(parallel, 1)
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetcher{queue: make(chan chan *download, parallel), slots: make(chan struct{}, parallel), cancel: cancel}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(p.queue)
		for _, i := range idx {
			select {
			case p.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			ch := make(chan *download, 1)
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				ch <- fetchSegment(ctx, store, refs[i], i, dir)
			}()
			p.queue <- ch // never blocks: a slot is held per queued download
		}
	}()
	return p
}

// fetchSegment downloads one segment object into a temporary file.
func fetchSegment(ctx context.Context, store objstore.Store, ref SegmentRef, i int, dir string) *download {
	d := &download{i: i}
	f, err := os.CreateTemp(dir, "tidemark-verify-*.tms")
	if err != nil {
		d.err = fmt.Errorf("catalog: verify: %w", err)
		return d
	}
	d.file = f
	d.n, d.sum, d.err = objstore.Download(ctx, store, ref.Key, f, ref.Size, objstore.WithRetry(objstore.DefaultRetry))
	if d.err != nil {
		d.close()
		d.file = nil
	}
	return d
}

// next returns the next download in the order asked; false when all are
// handed out (or the prefetcher stopped).
func (p *prefetcher) next() (*download, bool) {
	ch, ok := <-p.queue
	if !ok {
		return nil, false
	}
	return <-ch, true
}

// release removes a download's file and frees its slot.
func (p *prefetcher) release(d *download) {
	d.close()
	<-p.slots
}

// stop cancels the downloads still running, waits for them and removes
// their files.
func (p *prefetcher) stop() {
	p.cancel()
	for ch := range p.queue {
		(<-ch).close()
	}
	p.wg.Wait()
}
