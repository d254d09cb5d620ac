package erasure_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"depot/erasure"
)

// sizesFor returns the object sizes every property test covers for c: the
// edges of a unit and of a stripe, then random sizes up to max.
func sizesFor(c *erasure.Codec, rng *rand.Rand, random int, max int64) []int64 {
	u, s := int64(c.Unit()), int64(c.K()*c.Unit())
	sizes := []int64{0, 1, 2, u - 1, u, u + 1, s - 1, s, s + 1, 2*s - 1, 2 * s, 2*s + 1, 3*s + u + 7}
	for range random {
		sizes = append(sizes, rng.Int64N(max+1))
	}
	return sizes
}

// configs are the schemes the property tests run: small units so that
// random sizes make many stripes, a unit that is not a power of two, and
// the default unit.
var configs = []struct{ k, m, unit int }{
	{1, 1, 4096},
	{4, 2, 4096},
	{3, 2, 1000},
	{10, 4, 4096},
	{2, 3, 64},
	{4, 2, 0},
}

func TestCodec_Encode(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, cf := range configs {
		c := MustCodec(t, cf.k, cf.m, cf.unit)
		t.Run(c.String(), func(t *testing.T) {
			random, max := 12, int64(2<<20)
			if c.Unit() == erasure.DefaultUnit {
				random, max = 3, 20<<20
			}
			for _, size := range sizesFor(c, rng, random, max) {
				data := randBytes(rng, size)
				// Unknown length, delivered in odd pieces.
				var r io.Reader = bytes.NewReader(data)
				switch size % 3 {
				case 1:
					r = iotest.HalfReader(r)
				case 2:
					r = iotest.DataErrReader(r)
				}
				shards := MustEncode(t, c, r, size)
				checkLayout(t, c, data, shards)
			}
		})
	}
}

func TestEncoder_Next(t *testing.T) {
	c := MustCodec(t, 4, 2, 4096)
	t.Run("Empty", func(t *testing.T) {
		enc := c.NewEncoder(bytes.NewReader(nil))
		for range 2 {
			if shards, err := enc.Next(); err != io.EOF || shards != nil {
				t.Fatalf("Next() = %d shards, %v; want io.EOF", len(shards), err)
			}
		}
		if enc.Size() != 0 {
			t.Errorf("Size() = %d", enc.Size())
		}
	})
	t.Run("SmallObjectSmallShards", func(t *testing.T) {
		c := MustCodec(t, 4, 2, 0)
		shards, err := c.NewEncoder(bytes.NewReader(make([]byte, 10<<10))).Next()
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range shards {
			if len(s) != 2560 || cap(s) != 2560 {
				t.Errorf("shard %d: len %d cap %d, want 2560", i, len(s), cap(s))
			}
		}
	})
	t.Run("ErrRead", func(t *testing.T) {
		data := make([]byte, 3*4*4096+100)
		for _, cut := range []int64{0, 1, 4096, 4 * 4096, 4*4096 + 5} {
			r := io.MultiReader(bytes.NewReader(data[:cut]), iotest.ErrReader(io.ErrUnexpectedEOF))
			enc := c.NewEncoder(r)
			var err error
			for range 10 {
				if _, err = enc.Next(); err != nil {
					break
				}
			}
			// A truncated body is an error, never a shorter object.
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("cut at %d: Next() = %v, want a wrapped io.ErrUnexpectedEOF", cut, err)
			}
			if _, again := enc.Next(); again != err {
				t.Errorf("cut at %d: Next() after an error = %v, want %v", cut, again, err)
			}
		}
	})
	t.Run("StripesStayValidUntilNext", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 3))
		data := randBytes(rng, 5*4*4096+17)
		enc := c.NewEncoder(bytes.NewReader(data))
		var o int
		for {
			shards, err := enc.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			l := len(shards[0])
			for i := range c.K() {
				want := data[min(o+i*l, len(data)):min(o+(i+1)*l, len(data))]
				if !bytes.Equal(shards[i][:len(want)], want) {
					t.Fatalf("stripe at %d, shard %d: wrong bytes", o, i)
				}
			}
			o += c.K() * l
		}
	})
}
