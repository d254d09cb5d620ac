package dataserver

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"depot"
)

func TestIndex_Memory(t *testing.T) {
	const n = 1_000_000
	per := indexBytesPerNeedle(n)
	t.Logf("index: %.1f bytes per needle at %d needles", per, n)
	if per > 40 {
		t.Fatalf("index costs %.1f bytes per needle, want <= 40", per)
	}
	x := newIndex(0)
	for i := range 1000 {
		x.put(depot.NeedleID(i*7919), makeLoc(int64(i)*8+superSize, int64(i), i%3 == 0))
	}
	for i := range 1000 {
		l, ok := x.get(depot.NeedleID(i * 7919))
		if !ok || l.offset() != int64(i)*8+superSize || l.size() != int64(i) || l.deleted() != (i%3 == 0) {
			t.Fatalf("entry %d: %v %v", i, l, ok)
		}
	}
	if _, ok := x.get(1); ok {
		t.Fatal("phantom entry")
	}
	if l := makeLoc(maxFileOffset, maxNeedleSize, true); l.offset() != maxFileOffset || l.size() != maxNeedleSize || !l.deleted() {
		t.Fatal("loc round trip at the limits")
	}
}

func indexBytesPerNeedle(n int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x := newIndex(0)
	for i := range n {
		x.put(depot.NeedleID(uint64(i)*2654435761+1), makeLoc(int64(i)*64+superSize, 1000, false))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(x)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// BenchmarkStore_IndexMemory writes 1,000,000 tiny needles through the
// store and reports the heap the store grew by per needle.
func BenchmarkStore_IndexMemory(b *testing.B) {
	const n = 1_000_000
	for range b.N {
		c := testStoreConfig(b.TempDir())
		s, err := OpenStore(c)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		one := []byte{1}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			if _, err := s.Write(ctx, 1, 0, depot.NeedleID(i+1), 1, bytes.NewReader(one), 1); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := float64(after.HeapAlloc-before.HeapAlloc) / n
		b.ReportMetric(per, "bytes/needle")
		b.Logf("store heap growth for %d needles: %.1f bytes per needle (index alone: %.1f)", n, per, indexBytesPerNeedle(n))
		s.Close()
	}
}

// baselineWrite writes count buffers of size bytes to one file with an
// fsync after each, and returns the elapsed time.
func baselineWrite(b *testing.B, dir string, size, count int) time.Duration {
	path := filepath.Join(dir, "baseline")
	fh, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(path)
	defer fh.Close()
	buf := payload(1, size)
	start := time.Now()
	for range count {
		if _, err := fh.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := fdatasync(fh); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// benchWrite writes count needles of size bytes from writers goroutines
// with group commit and returns the elapsed time.
func benchWrite(b *testing.B, dir string, size, count, writers int) time.Duration {
	c := DefaultStoreConfig(dir)
	c.CheckpointInterval = -1
	s, err := OpenStore(c)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	buf := payload(1, size)
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(count) {
					return
				}
				if _, err := s.Write(ctx, 1, 0, depot.NeedleID(i), 1, bytes.NewReader(buf), int64(size)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func reportWrite(b *testing.B, size, count int, depotT, baseT time.Duration) {
	dps := float64(count) / depotT.Seconds()
	bps := float64(count) / baseT.Seconds()
	b.ReportMetric(dps, "writes/s")
	b.ReportMetric(bps, "baseline-writes/s")
	b.ReportMetric(dps*float64(size)/(1<<20), "MiB/s")
	b.ReportMetric(bps*float64(size)/(1<<20), "baseline-MiB/s")
	b.ReportMetric(dps/bps, "ratio")
	b.Logf("%d-byte needles: depot %.0f writes/s (%.1f MiB/s), baseline write+fsync %.0f writes/s (%.1f MiB/s), ratio %.2f",
		size, dps, dps*float64(size)/(1<<20), bps, bps*float64(size)/(1<<20), dps/bps)
}

// BenchmarkStore_Write1MiB: 1 MiB needles from 8 writers with group
// commit, against a loop of 1 MiB write + fsync to one file.
func BenchmarkStore_Write1MiB(b *testing.B) {
	const size = 1 << 20
	count := max(b.N, 32)
	dir := b.TempDir()
	baseT := baselineWrite(b, dir, size, count)
	depotT := benchWrite(b, dir, size, count, 8)
	reportWrite(b, size, count, depotT, baseT)
}

// BenchmarkStore_Write4KiB: 4 KiB needles from 64 writers with group
// commit, against a loop of 4 KiB write + fsync to one file.
func BenchmarkStore_Write4KiB(b *testing.B) {
	const size = 4 << 10
	count := max(b.N, 2000)
	dir := b.TempDir()
	baseT := baselineWrite(b, dir, size, min(count, 2000))
	depotT := benchWrite(b, dir, size, count, 64)
	reportWrite(b, size, count, depotT, baseT*time.Duration(count)/time.Duration(min(count, 2000)))
}

// BenchmarkStore_ReadRandom4KiB: random 4 KiB needle reads against plain
// pread of the needles' data at the same offsets, in the same file.
func BenchmarkStore_ReadRandom4KiB(b *testing.B) {
	const size, n = 4 << 10, 20000
	dir := b.TempDir()
	s, err := OpenStore(testStoreConfig(dir))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range n {
		if _, err := s.Write(ctx, 1, 0, depot.NeedleID(i), 1, bytes.NewReader(payload(depot.NeedleID(i), size)), size); err != nil {
			b.Fatal(err)
		}
	}
	f, _ := s.shard(shardKey{1, 0})
	offs := make([]int64, n)
	for i := range n {
		l, _ := f.idx.get(depot.NeedleID(i))
		offs[i] = l.offset() + headerSize
	}
	order := make([]int, max(b.N, 200000))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range order {
		order[i] = r.IntN(n)
	}
	fh, err := os.Open(f.path)
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	buf := make([]byte, size)
	w := appendWriter{b: make([]byte, 0, size)}
	// Alternate the two, three times, and keep the best of each: the
	// machine is shared.
	var baseT, depotT time.Duration
	for round := range 3 {
		runtime.GC()
		start := time.Now()
		for _, i := range order {
			if _, err := fh.ReadAt(buf, offs[i]); err != nil {
				b.Fatal(err)
			}
		}
		if d := time.Since(start); round == 0 || d < baseT {
			baseT = d
		}
		runtime.GC()
		start = time.Now()
		for _, i := range order {
			nd, err := s.Open(ctx, 1, 0, depot.NeedleID(i), 1)
			if err != nil {
				b.Fatal(err)
			}
			w.b = w.b[:0]
			if _, err := nd.ReadRange(ctx, &w, 0, size); err != nil {
				b.Fatal(err)
			}
			nd.Close()
		}
		if d := time.Since(start); round == 0 || d < depotT {
			depotT = d
		}
	}
	dps := float64(len(order)) / depotT.Seconds()
	bps := float64(len(order)) / baseT.Seconds()
	b.ReportMetric(dps, "reads/s")
	b.ReportMetric(bps, "baseline-reads/s")
	b.ReportMetric(dps/bps, "ratio")
	b.Logf("random 4 KiB reads: depot %.0f/s, plain pread %.0f/s, ratio %.2f", dps, bps, dps/bps)
}
