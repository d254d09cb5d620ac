package erasure_test

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"depot/erasure"
)

func TestNew(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		for _, tc := range []struct{ k, m, unit, wantUnit int }{
			{1, 1, 0, erasure.DefaultUnit},
			{4, 2, 0, erasure.DefaultUnit},
			{31, 1, 1, 1},
			{1, 31, 4096, 4096},
			{16, 16, erasure.MaxUnit, erasure.MaxUnit},
			{3, 2, 1000, 1000},
		} {
			c, err := erasure.New(tc.k, tc.m, tc.unit)
			if err != nil {
				t.Fatalf("New(%d, %d, %d): %v", tc.k, tc.m, tc.unit, err)
			}
			if c.K() != tc.k || c.M() != tc.m || c.Unit() != tc.wantUnit {
				t.Errorf("New(%d, %d, %d) = %v, want unit %d", tc.k, tc.m, tc.unit, c, tc.wantUnit)
			}
		}
	})
	t.Run("ErrConfig", func(t *testing.T) {
		for _, tc := range []struct{ k, m, unit int }{
			{0, 1, 0}, {-1, 2, 0}, {1, 0, 0}, {4, -2, 0}, {31, 2, 0}, {32, 1, 0}, {1, 32, 0},
			{33, 0, 0}, {1 << 40, 1, 0}, {2, 1 << 62, 0}, {4, 2, -1}, {4, 2, erasure.MaxUnit + 1},
		} {
			c, err := erasure.New(tc.k, tc.m, tc.unit)
			if !errors.Is(err, erasure.ErrConfig) || c != nil {
				t.Errorf("New(%d, %d, %d) = %v, %v; want an ErrConfig", tc.k, tc.m, tc.unit, c, err)
			}
		}
	})
}

func TestCodec_ShardSize(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		k, m, unit int
		size, want int64
	}{
		{4, 2, 0, 0, 0},
		{4, 2, 0, -5, 0},
		{4, 2, 0, 1, 1},
		{4, 2, 0, 10 << 10, 2560}, // doc.go: a 10 KiB thumbnail costs 6×2560 bytes
		{4, 2, 0, 9*mib + 5, 2359298},
		{4, 2, 0, 4 * mib, mib},
		{4, 2, 0, 4*mib + 1, mib + 1},
		{4, 2, 0, 4*mib - 1, mib},
		{3, 2, 1000, 3001, 1001},
		{3, 2, 1000, 3000 * 7, 7000},
		{1, 1, 10, 25, 25},
	} {
		c := MustCodec(t, tc.k, tc.m, tc.unit)
		if got := c.ShardSize(tc.size); got != tc.want {
			t.Errorf("%v: ShardSize(%d) = %d, want %d", c, tc.size, got, tc.want)
		}
	}
}

func TestCodec_Map(t *testing.T) {
	const mib = 1 << 20
	c := MustCodec(t, 4, 2, 0)
	t.Run("Examples", func(t *testing.T) {
		for _, tc := range []struct {
			size, off, n int64
			want         []erasure.Extent
		}{
			{10 << 10, 0, 10 << 10, []erasure.Extent{{0, 0, 2560}, {1, 0, 2560}, {2, 0, 2560}, {3, 0, 2560}}},
			{10 << 10, 2000, 1000, []erasure.Extent{{0, 2000, 560}, {1, 0, 440}}},
			{9*mib + 5, 5000000, 1, []erasure.Extent{{0, 1854272, 1}}}, // doc.go
			{9*mib + 5, 9437188, 1, []erasure.Extent{{3, 2359298 - 4, 1}}},
			{9*mib + 5, 4*mib - 1, 2, []erasure.Extent{{3, mib - 1, 1}, {0, mib, 1}}},
			{9*mib + 5, 8 * mib, mib + 5, []erasure.Extent{{0, 2 * mib, 262146}, {1, 2 * mib, 262146}, {2, 2 * mib, 262146}, {3, 2 * mib, 262143}}},
			{100, 0, 0, nil},
			{100, 100, 0, nil},
			{100, 99, 2, nil},
			{100, -1, 1, nil},
			{100, 1, -1, nil},
			{100, 1, 1 << 62, nil},
		} {
			if got := c.Map(tc.size, tc.off, tc.n); !slices.Equal(got, tc.want) {
				t.Errorf("Map(%d, %d, %d) = %v, want %v", tc.size, tc.off, tc.n, got, tc.want)
			}
		}
	})
	t.Run("MergesWhenK1", func(t *testing.T) {
		c := MustCodec(t, 1, 1, 10)
		want := []erasure.Extent{{0, 3, 40}}
		if got := c.Map(55, 3, 40); !slices.Equal(got, want) {
			t.Errorf("Map = %v, want %v", got, want)
		}
	})
	t.Run("Random", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for range 2000 {
			k := 1 + rng.IntN(8)
			c := MustCodec(t, k, 1, 1+rng.IntN(50))
			size := rng.Int64N(int64(k*c.Unit()) * 6)
			off := rng.Int64N(size + 1)
			n := rng.Int64N(size - off + 1)
			checkMap(t, c, size, off, n)
		}
	})
}

// checkMap checks that Map's extents cover exactly [off, off+n), in object
// order, each where doc.go's layout puts its bytes, within the shard sizes.
func checkMap(t testing.TB, c *erasure.Codec, size, off, n int64) {
	t.Helper()
	ext := c.Map(size, off, n)
	valid := size >= 0 && off >= 0 && n >= 0 && off <= size && n <= size-off
	if !valid || n == 0 {
		if ext != nil {
			t.Fatalf("%v: Map(%d, %d, %d) = %v, want nil", c, size, off, n, ext)
		}
		return
	}
	o := off
	for j, e := range ext {
		if e.Shard < 0 || e.Shard >= c.K() || e.Len <= 0 || e.Off < 0 || e.Off+e.Len > c.ShardSize(size) {
			t.Fatalf("%v: Map(%d, %d, %d)[%d] = %+v: outside the data shards (shard size %d)", c, size, off, n, j, e, c.ShardSize(size))
		}
		if o+e.Len > off+n {
			t.Fatalf("%v: Map(%d, %d, %d)[%d] = %+v: goes past the range", c, size, off, n, j, e)
		}
		k, u := int64(c.K()), int64(c.Unit())
		s0, o0 := locate(k, u, size, o)
		s1, o1 := locate(k, u, size, o+e.Len-1)
		if s0 != e.Shard || o0 != e.Off || s1 != e.Shard || o1 != e.Off+e.Len-1 {
			t.Fatalf("%v: Map(%d, %d, %d)[%d] = %+v, but object bytes %d and %d live at shard %d:%d and %d:%d",
				c, size, off, n, j, e, o, o+e.Len-1, s0, o0, s1, o1)
		}
		o += e.Len
	}
	if o != off+n {
		t.Fatalf("%v: Map(%d, %d, %d) covers up to %d", c, size, off, n, o)
	}
}

func FuzzMap(f *testing.F) {
	f.Add(uint8(4), uint32(1<<20), int64(10<<10), int64(0), int64(10<<10))
	f.Add(uint8(4), uint32(1<<20), int64(9<<20+5), int64(4<<20-1), int64(2))
	f.Add(uint8(1), uint32(10), int64(55), int64(3), int64(40))
	f.Add(uint8(3), uint32(1000), int64(3001), int64(2999), int64(2))
	f.Add(uint8(31), uint32(7), int64(1000), int64(-1), int64(5))
	f.Fuzz(func(t *testing.T, k uint8, unit uint32, size, off, n int64) {
		kk := 1 + int(k%31)
		u := 1 + int(unit%(1<<20))
		c := MustCodec(t, kk, 1, u)
		// Keep the number of extents small enough to check.
		if limit := int64(u) * 4096; n > limit {
			n %= limit
		}
		checkMap(t, c, size, off, n)
	})
}
