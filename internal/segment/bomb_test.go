package segment

import (
	"bytes"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// memoryBound is what decoding any bomb below may allocate in total.
const memoryBound = 64 << 20

// zstdRLEBomb returns a zstd frame that decompresses to total zero bytes:
// RLE blocks of 128 KiB, 4 bytes each (1 GiB → 32 KiB), declaring a window
// of 1<<windowLog and no content size.
func zstdRLEBomb(total int64, windowLog int) []byte {
	out := []byte{0x28, 0xB5, 0x2F, 0xFD, 0x00, byte((windowLog - 10) << 3)}
	const block = 128 << 10
	for total > 0 {
		n := min(total, block)
		total -= n
		hdr := uint32(n)<<3 | 1<<1 // RLE block
		if total == 0 {
			hdr |= 1 // last
		}
		out = append(out, byte(hdr), byte(hdr>>8), byte(hdr>>16), 0x00)
	}
	return out
}

func gzipBytes(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	z, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := z.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := z.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func TestZstdRLEBomb_IsABomb(t *testing.T) {
	d, err := zstd.NewReader(bytes.NewReader(zstdRLEBomb(8<<20+5, 23)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b, err := io.ReadAll(d)
	if err != nil || len(b) != 8<<20+5 || bytes.IndexFunc(b, func(r rune) bool { return r != 0 }) >= 0 {
		t.Fatalf("bomb decodes to %d bytes, %v", len(b), err)
	}
	if n := len(zstdRLEBomb(1<<30, 23)); n > 40<<10 {
		t.Fatalf("1 GiB bomb is %d bytes", n)
	}
}

// measure runs f and returns the bytes it allocated in total and the peak
// growth of HeapInuse sampled while it ran.
func measure(f func()) (allocated, peak uint64) {
	runtime.GC()
	runtime.GC() // and empty sync.Pool's victim cache, whose codecs would slow the GC pace
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	var wg sync.WaitGroup
	var maxInuse uint64
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			maxInuse = max(maxInuse, m.HeapInuse)
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	maxInuse = max(maxInuse, after.HeapInuse)
	if maxInuse > before.HeapInuse {
		peak = maxInuse - before.HeapInuse
	}
	return after.TotalAlloc - before.TotalAlloc, peak
}

// TestDecode_Bomb decodes 1 GiB zstd bombs (and a gzip one) behind valid
// checksums: whatever the trailer claims, memory stays under memoryBound.
func TestDecode_Bomb(t *testing.T) {
	const name = "bomb.tms"
	for _, tc := range bombCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			allocated, peak := measure(func() { _, err = Decode(name, tc.data, tc.opts) })
			wantCorrupt(t, name, err, tc.name)
			t.Logf("allocated %d KiB, peak heap growth %d KiB: %v", allocated>>10, peak>>10, err)
			if allocated > memoryBound || peak > memoryBound {
				t.Fatalf("decoding allocated %d bytes (peak heap growth %d), bound %d", allocated, peak, memoryBound)
			}
		})
	}
}

type bombCase struct {
	name string
	data []byte
	opts ReadOptions
}

// bombCases are 1 GiB zstd bombs (and a gzip one) behind valid checksums.
func bombCases(t *testing.T) []bombCase {
	zbomb := zstdRLEBomb(1<<30, 23)
	gbomb := gzipBytes(t, make([]byte, 64<<20))
	trailer := func(raw int64) *trailerJSON {
		lo := int64(0)
		return &trailerJSON{Events: 1, Transactions: 1, RawBytes: raw, MinCommitTimeUS: &lo, MaxCommitTimeUS: &lo}
	}
	return []bombCase{
		{"zstd, trailer claims 1000 bytes", forge(testHeader(Zstd), zbomb, trailer(1000)), ReadOptions{}},
		{"zstd, trailer claims 1 GiB, limit 32 MiB", forge(testHeader(Zstd), zbomb, trailer(1<<30)), ReadOptions{MaxRawBytes: 32 << 20}},
		{"zstd, trailer claims 2 GiB, default limit", forge(testHeader(Zstd), zbomb, trailer(2<<30)), ReadOptions{}},
		{"zstd, trailer claims 16 MiB", forge(testHeader(Zstd), zbomb, trailer(16<<20)), ReadOptions{MaxRawBytes: 32 << 20}},
		{"zstd, 2 GiB window", forge(testHeader(Zstd), zstdRLEBomb(1<<30, 31), trailer(1000)), ReadOptions{}},
		{"gzip 64 MiB of zeros, trailer claims 1000 bytes", forge(testHeader(Gzip), gbomb, trailer(1000)), ReadOptions{}},
	}
}
