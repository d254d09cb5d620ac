package erasure_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"depot/erasure"
)

// object is an encoded object kept in memory.
type object struct {
	c      *erasure.Codec
	data   []byte
	shards [][]byte
}

func (ob *object) size() int64 { return int64(len(ob.data)) }

func (ob *object) opener(tb testing.TB, faults map[int]fault) *memOpener {
	return &memOpener{tb: tb, shards: ob.shards, faults: faults}
}

// objects encodes, for every config, objects of the sizes of sizesFor.
func objects(tb testing.TB, rng *rand.Rand) []*object {
	tb.Helper()
	var obs []*object
	for _, cf := range configs {
		c := MustCodec(tb, cf.k, cf.m, cf.unit)
		random, max := 6, int64(1<<20)
		if c.Unit() == erasure.DefaultUnit {
			random, max = 2, 20<<20
		}
		for _, size := range sizesFor(c, rng, random, max) {
			data := randBytes(rng, size)
			obs = append(obs, &object{c: c, data: data, shards: MustEncode(tb, c, bytes.NewReader(data), size)})
		}
	}
	return obs
}

// ranges returns byte ranges of a size-byte object to read: all of it, its
// edges, ranges across stripe boundaries and random ones.
func ranges(c *erasure.Codec, rng *rand.Rand, size int64, random int) [][2]int64 {
	if size == 0 {
		return [][2]int64{{0, 0}}
	}
	s := int64(c.K() * c.Unit())
	rs := [][2]int64{{0, size}, {0, 1}, {size - 1, 1}, {size / 2, 0}}
	if size > s {
		rs = append(rs, [2]int64{s - 1, min(2, size-s+1)}, [2]int64{s, size - s})
	}
	for range random {
		off := rng.Int64N(size)
		n := rng.Int64N(size - off + 1)
		if rng.IntN(3) == 0 {
			n = min(n, 1+rng.Int64N(int64(c.Unit())*2))
		}
		rs = append(rs, [2]int64{off, n})
	}
	return rs
}

// wantOpens returns the opens a healthy read of the range must make: each
// data shard holding some of it, once, for the span of its extents.
func wantOpens(c *erasure.Codec, size, off, n int64) []openCall {
	spans := map[int]openCall{}
	for _, e := range c.Map(size, off, n) {
		s, ok := spans[e.Shard]
		if !ok {
			s = openCall{Shard: e.Shard, Off: e.Off}
		}
		s.N = e.Off + e.Len - s.Off
		spans[e.Shard] = s
	}
	var calls []openCall
	for _, s := range spans {
		calls = append(calls, s)
	}
	return sortCalls(calls)
}

func sortCalls(calls []openCall) []openCall {
	slices.SortFunc(calls, func(a, b openCall) int { return a.Shard - b.Shard })
	return calls
}

func TestCodec_NewReader(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 13))
	obs := objects(t, rng)

	t.Run("Healthy", func(t *testing.T) {
		for _, ob := range obs {
			for j, rg := range ranges(ob.c, rng, ob.size(), 4) {
				off, n := rg[0], rg[1]
				src := ob.opener(t, map[int]fault{})
				got, err := readAll(ob.c, src, ob.size(), off, n, erasure.ReadOptions{}, j%2 == 1)
				if err != nil || !bytes.Equal(got, ob.data[off:off+n]) {
					t.Fatalf("%v size %d: read [%d, +%d): %d bytes, %v; want %d bytes", ob.c, ob.size(), off, n, len(got), err, n)
				}
				if calls, want := sortCalls(src.Calls()), wantOpens(ob.c, ob.size(), off, n); !slices.Equal(calls, want) {
					t.Fatalf("%v size %d: read [%d, +%d) opened %v, want %v", ob.c, ob.size(), off, n, calls, want)
				}
				if src.Open() != 0 {
					t.Fatalf("%d shard streams left open", src.Open())
				}
			}
		}
	})

	t.Run("Degraded", func(t *testing.T) {
		for _, ob := range obs {
			if ob.size() == 0 {
				continue
			}
			for j, rg := range ranges(ob.c, rng, ob.size(), 6) {
				off, n := rg[0], rg[1]
				faults := randomFaults(rng, ob, off, n, rng.IntN(ob.c.M()+1))
				src := ob.opener(t, faults)
				got, err := readAll(ob.c, src, ob.size(), off, n, erasure.ReadOptions{}, j%2 == 0)
				if err != nil || !bytes.Equal(got, ob.data[off:off+n]) {
					t.Fatalf("%v size %d: read [%d, +%d) with faults %v: %d bytes, %v", ob.c, ob.size(), off, n, faults, len(got), err)
				}
				if src.Open() != 0 {
					t.Fatalf("%d shard streams left open", src.Open())
				}
			}
		}
	})

	t.Run("ErrTooFewShards", func(t *testing.T) {
		for _, ob := range obs {
			if ob.size() == 0 {
				continue
			}
			k, m := ob.c.K(), ob.c.M()
			off := rng.Int64N(ob.size())
			n := 1 + rng.Int64N(ob.size()-off)
			// The data shard holding off, and m others, fail at once.
			first := ob.c.Map(ob.size(), off, n)[0].Shard
			faults := map[int]fault{first: {kind: missing}}
			for _, i := range rng.Perm(k + m) {
				if len(faults) == m+1 {
					break
				}
				if _, ok := faults[i]; !ok {
					faults[i] = fault{kind: []faultKind{missing, readErr, short}[rng.IntN(3)]}
				}
			}
			src := ob.opener(t, faults)
			_, err := readAll(ob.c, src, ob.size(), off, n, erasure.ReadOptions{}, false)
			want := fmt.Sprintf("needed %d, found %d", k, k-1)
			if !errors.Is(err, erasure.ErrTooFewShards) || !strings.Contains(err.Error(), want) {
				t.Fatalf("%v size %d: read [%d, +%d) with faults %v: %v; want ErrTooFewShards saying %q", ob.c, ob.size(), off, n, faults, err, want)
			}
			if src.Open() != 0 {
				t.Fatalf("%d shard streams left open", src.Open())
			}
		}
	})
}

// randomFaults returns f faults on random shards, favouring the data shards
// that hold the range, at random points of their streams.
func randomFaults(rng *rand.Rand, ob *object, off, n int64, f int) map[int]fault {
	faults := map[int]fault{}
	var candidates []int
	for _, e := range ob.c.Map(ob.size(), off, n) {
		candidates = append(candidates, e.Shard)
	}
	for len(faults) < f {
		i := rng.IntN(ob.c.K() + ob.c.M())
		if len(candidates) > 0 && rng.IntN(2) == 0 {
			i = candidates[rng.IntN(len(candidates))]
		}
		if _, ok := faults[i]; ok {
			continue
		}
		kind := []faultKind{missing, readErr, short}[rng.IntN(3)]
		faults[i] = fault{kind: kind, after: rng.Int64N(ob.c.ShardSize(ob.size()) + 1)}
	}
	return faults
}

func TestReader_Lifecycle(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	c := MustCodec(t, 4, 2, 4096)
	size := int64(5*4*4096 + 1234)
	data := randBytes(rng, size)
	ob := &object{c: c, data: data, shards: MustEncode(t, c, bytes.NewReader(data), size)}

	t.Run("IOTest", func(t *testing.T) {
		for _, faults := range []map[int]fault{{}, {1: {kind: readErr, after: 5000}, 4: {kind: missing}}} {
			rd := c.NewReader(context.Background(), ob.opener(t, faults), size, 1000, size-2000, erasure.ReadOptions{})
			if err := iotest.TestReader(rd, data[1000:size-1000]); err != nil {
				t.Errorf("faults %v: %v", faults, err)
			}
			rd.Close()
		}
	})

	t.Run("Empty", func(t *testing.T) {
		src := ob.opener(t, nil)
		for _, sz := range []int64{0, size} {
			got, err := readAll(c, src, sz, sz, 0, erasure.ReadOptions{}, true)
			if err != nil || len(got) != 0 {
				t.Errorf("size %d: read of nothing = %d bytes, %v", sz, len(got), err)
			}
		}
		if calls := src.Calls(); len(calls) != 0 {
			t.Errorf("opened %v", calls)
		}
	})

	t.Run("ErrRange", func(t *testing.T) {
		for _, rg := range [][2]int64{{-1, 1}, {0, -1}, {0, size + 1}, {size, 1}, {size + 1, 0}, {1, 1<<63 - 1}} {
			src := ob.opener(t, nil)
			_, err := readAll(c, src, size, rg[0], rg[1], erasure.ReadOptions{}, false)
			if !errors.Is(err, erasure.ErrRange) {
				t.Errorf("range %v: %v, want ErrRange", rg, err)
			}
			if calls := src.Calls(); len(calls) != 0 {
				t.Errorf("range %v: opened %v", rg, calls)
			}
		}
	})

	t.Run("Hedge", func(t *testing.T) {
		for _, faults := range []map[int]fault{
			{1: {kind: slow, after: 0}},
			{2: {kind: slow, after: 3 * 4096}},
			{0: {kind: slowOpen}},
			{0: {kind: slowOpen}, 3: {kind: slow, after: 4096 + 7}},
			{0: {kind: slow}, 4: {kind: slow}},
			{1: {kind: missing}, 2: {kind: slow, after: 4096}},
		} {
			src := ob.opener(t, faults)
			got, err := readAll(c, src, size, 100, size-100, erasure.ReadOptions{HedgeAfter: time.Millisecond}, false)
			if err != nil || !bytes.Equal(got, data[100:]) {
				t.Fatalf("faults %v: %d bytes, %v", faults, len(got), err)
			}
			if src.Open() != 0 {
				t.Fatalf("faults %v: %d shard streams left open", faults, src.Open())
			}
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		src := ob.opener(t, map[int]fault{2: {kind: slow, after: 4096}})
		src.blocked = make(chan int, 1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rd := c.NewReader(ctx, src, size, 0, size, erasure.ReadOptions{})
		defer rd.Close()
		go func() {
			<-src.blocked
			cancel()
		}()
		_, err := io.Copy(io.Discard, rd)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("read with a cancelled context: %v, want context.Canceled", err)
		}
		if src.Open() != 0 {
			t.Fatalf("%d shard streams left open", src.Open())
		}
	})

	t.Run("Close", func(t *testing.T) {
		src := ob.opener(t, map[int]fault{3: {kind: slow, after: 2 * 4096}})
		rd := c.NewReader(context.Background(), src, size, 0, size, erasure.ReadOptions{})
		p := make([]byte, 3*4096)
		if _, err := io.ReadFull(rd, p); err != nil || !bytes.Equal(p, data[:len(p)]) {
			t.Fatalf("first bytes: %v", err)
		}
		if err := rd.Close(); err != nil {
			t.Fatal(err)
		}
		if src.Open() != 0 {
			t.Fatalf("%d shard streams left open after Close", src.Open())
		}
		if _, err := rd.Read(p); err == nil {
			t.Fatal("Read after Close succeeded")
		}
		if err := rd.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})

	t.Run("CloseWhileReading", func(t *testing.T) {
		src := ob.opener(t, map[int]fault{0: {kind: slow, after: 4096}})
		src.blocked = make(chan int, 1)
		rd := c.NewReader(context.Background(), src, size, 0, size, erasure.ReadOptions{})
		done := make(chan error)
		go func() {
			_, err := io.Copy(io.Discard, rd)
			done <- err
		}()
		<-src.blocked
		rd.Close()
		if err := <-done; err == nil {
			t.Fatal("read interrupted by Close succeeded")
		}
		if src.Open() != 0 {
			t.Fatalf("%d shard streams left open", src.Open())
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				faults := map[int]fault{g: {kind: readErr, after: int64(g) * 3000}}
				got, err := readAll(c, ob.opener(t, faults), size, int64(g), size-int64(g), erasure.ReadOptions{}, false)
				if err != nil || !bytes.Equal(got, data[g:]) {
					t.Errorf("reader %d: %d bytes, %v", g, len(got), err)
				}
				shards := MustEncode(t, c, bytes.NewReader(data), size)
				for i := range shards {
					if !bytes.Equal(shards[i], ob.shards[i]) {
						t.Errorf("encoder %d: shard %d differs", g, i)
					}
				}
			})
		}
		wg.Wait()
	})
}

func FuzzNewReader(f *testing.F) {
	f.Add(uint8(4), uint8(2), uint8(16), uint16(1000), uint16(10), uint16(900), uint64(0))
	f.Add(uint8(4), uint8(2), uint8(16), uint16(1000), uint16(10), uint16(900), uint64(2))
	f.Add(uint8(1), uint8(1), uint8(1), uint16(7), uint16(0), uint16(7), uint64(1))
	f.Add(uint8(7), uint8(3), uint8(63), uint16(19999), uint16(441), uint16(12000), uint64(3))
	f.Fuzz(func(t *testing.T, k, m, unit uint8, size, off, n uint16, seed uint64) {
		c := MustCodec(t, 1+int(k%8), 1+int(m%4), 1+int(unit%64))
		sz := int64(size) % 20000
		o := int64(off) % (sz + 1)
		l := int64(n) % (sz - o + 1)
		rng := rand.New(rand.NewPCG(seed, uint64(size)))
		data := randBytes(rng, sz)
		ob := &object{c: c, data: data, shards: MustEncode(t, c, bytes.NewReader(data), sz)}
		faults := randomFaults(rng, ob, o, l, int(seed%uint64(c.M()+1)))
		src := ob.opener(t, faults)
		got, err := readAll(c, src, sz, o, l, erasure.ReadOptions{}, seed%2 == 0)
		if err != nil || !bytes.Equal(got, data[o:o+l]) {
			t.Fatalf("%v size %d: read [%d, +%d) with faults %v: %d bytes, %v", c, sz, o, l, faults, len(got), err)
		}
		if src.Open() != 0 {
			t.Fatalf("%d shard streams left open", src.Open())
		}
	})
}
