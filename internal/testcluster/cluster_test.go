package testcluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"depot"
	"depot/client"
	"depot/erasure"
	"depot/internal/testcluster"
)

// content returns the deterministic bytes of test object i.
func content(i int, size int64) []byte {
	b := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), byte(i >> 16), 7}).Read(b)
	return b
}

type stored struct {
	i    int
	size int64
	segs []depot.Segment
}

// putAll stores objects of the given sizes with conc writers.
func putAll(t *testing.T, cl *client.Client, first int, sizes []int64, conc int) []stored {
	t.Helper()
	out := make([]stored, len(sizes))
	var wg sync.WaitGroup
	errs := make(chan error, len(sizes))
	next := make(chan int)
	for range conc {
		wg.Go(func() {
			for j := range next {
				i := first + j
				body := content(i, sizes[j])
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				size := sizes[j]
				if j%3 == 1 {
					size = -1 // every third body of unknown length
				}
				st, err := cl.Put(ctx, bytes.NewReader(body), size, client.PutOptions{})
				cancel()
				if err != nil {
					errs <- fmt.Errorf("put object %d (%d bytes): %w", i, sizes[j], err)
					continue
				}
				if st.Size != sizes[j] {
					errs <- fmt.Errorf("put object %d: stored %d bytes, want %d", i, st.Size, sizes[j])
				}
				out[j] = stored{i: i, size: sizes[j], segs: st.Segments}
			}
		})
	}
	for j := range sizes {
		next <- j
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// readRange reads [off, off+n) of an object.
func readRange(cl *client.Client, s stored, off, n int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := cl.Get(ctx, s.segs, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// checkAll reads every object whole, plus ranges random offsets, and
// compares exact bytes.
func checkAll(t *testing.T, cl *client.Client, objs []stored, ranges int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	type job struct {
		s      stored
		off, n int64
	}
	var jobs []job
	for _, s := range objs {
		jobs = append(jobs, job{s, 0, -1})
		for range ranges {
			if s.size == 0 {
				break
			}
			off := rng.Int64N(s.size)
			n := 1 + rng.Int64N(min(s.size-off, 3<<20))
			jobs = append(jobs, job{s, off, n})
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := 0
	next := make(chan job)
	for range 4 {
		wg.Go(func() {
			for j := range next {
				got, err := readRange(cl, j.s, j.off, j.n)
				want := content(j.s.i, j.s.size)
				if j.n >= 0 {
					want = want[j.off : j.off+j.n]
				}
				if err == nil && !bytes.Equal(got, want) {
					err = fmt.Errorf("bytes differ (got %d bytes, want %d)", len(got), len(want))
				}
				if err != nil {
					mu.Lock()
					failures++
					if failures <= 10 {
						t.Errorf("object %d (%d bytes) range %d+%d: %v", j.s.i, j.s.size, j.off, j.n, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	if failures > 0 {
		t.Fatalf("%d of %d reads failed", failures, len(jobs))
	}
}

// logUniformSizes returns n sizes spread log-uniformly over [0, max], plus
// the stripe and segment boundaries ±1.
func logUniformSizes(n int, maxSize int64, stripe, segment int64, seed uint64) []int64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	var sizes []int64
	for _, b := range []int64{0, 1, stripe, segment, 2 * segment} {
		for _, d := range []int64{-1, 0, 1} {
			if b+d >= 0 && b+d <= maxSize {
				sizes = append(sizes, b+d)
			}
		}
	}
	slices.Sort(sizes)
	sizes = slices.Compact(sizes)
	for len(sizes) < n {
		x := math.Exp(rng.Float64() * math.Log(float64(maxSize+1)))
		sizes = append(sizes, int64(x)-1+int64(rng.IntN(2)))
	}
	for i := range sizes {
		sizes[i] = max(0, min(sizes[i], maxSize))
	}
	return sizes
}

func TestCluster_RoundTrip(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	n, maxSize := 500, int64(20<<20)
	if testing.Short() {
		n, maxSize = 60, 3<<20
	}
	stripe := int64(c.Opts.K * c.Opts.Unit)
	sizes := logUniformSizes(n, maxSize, stripe, c.Opts.SegmentSize, 1)
	objs := putAll(t, c.Client(), 0, sizes, 4)
	var total int64
	for _, s := range objs {
		total += s.size
	}
	t.Logf("stored %d objects, %d MiB", len(objs), total>>20)
	checkAll(t, c.Client(), objs, 2, 2)
}

func TestCluster_DataserverLoss(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	cl := c.Client()
	stripe := int64(c.Opts.K * c.Opts.Unit)
	objs := putAll(t, cl, 0, logUniformSizes(40, 3<<20, stripe, c.Opts.SegmentSize, 3), 4)

	rng := rand.New(rand.NewPCG(4, 4))
	order := rng.Perm(c.Dataservers())

	// One dataserver down: reads and new writes go on.
	if err := c.KillDataserver(order[0]); err != nil {
		t.Fatal(err)
	}
	c.WaitDead(order[0])
	more := putAll(t, cl, 1000, logUniformSizes(20, 2<<20, stripe, c.Opts.SegmentSize, 5), 4)
	objs = append(objs, more...)
	checkAll(t, cl, objs, 1, 6)

	// Two down: every object still reads back exactly.
	if err := c.KillDataserver(order[1]); err != nil {
		t.Fatal(err)
	}
	c.WaitDead(order[1])
	checkAll(t, cl, objs, 1, 7)

	// Three down: reads that need the lost shards fail with a clear error,
	// and none hangs.
	if err := c.KillDataserver(order[2]); err != nil {
		t.Fatal(err)
	}
	c.WaitDead(order[2])
	failed := 0
	for _, s := range objs {
		if s.size == 0 {
			continue
		}
		start := time.Now()
		_, err := readRange(cl, s, 0, -1)
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("object %d: read took %v", s.i, took)
		}
		if err == nil {
			continue
		}
		failed++
		if !errors.Is(err, erasure.ErrTooFewShards) || !strings.Contains(err.Error(), "need") {
			t.Errorf("object %d: unclear error: %v", s.i, err)
		}
	}
	if failed == 0 {
		t.Error("no read failed with 3 of 6 dataservers down")
	}

	// Bring them back: everything reads again.
	for _, i := range order[:3] {
		if err := c.StartDataserver(context.Background(), i); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range order[:3] {
		c.WaitAlive(i)
	}
	checkAll(t, cl, objs, 0, 8)
}
