package erasure_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/reedsolomon"

	"depot/erasure"
)

// TestCodec_Allocs checks that encoding and reading allocate per object, not
// per stripe (beyond what reedsolomon itself allocates per call): memory
// stays bounded by a few stripes whatever the object's length.
func TestCodec_Allocs(t *testing.T) {
	c := MustCodec(t, 4, 2, 4096)
	rs, err := reedsolomon.New(4, 2, reedsolomon.WithAutoGoroutines(4096))
	if err != nil {
		t.Fatal(err)
	}
	stripe := make([][]byte, 6)
	for i := range stripe {
		stripe[i] = make([]byte, 4096)
	}
	// Allocations of reedsolomon's Encode itself, for n stripes.
	rsAllocs := func(n int) float64 {
		return testing.AllocsPerRun(3, func() {
			for range n {
				rs.Encode(stripe)
			}
		})
	}
	objectOf := func(stripes int) (int64, []byte, [][]byte) {
		size := int64(stripes*4*4096 + 100)
		data := randBytes(rand.New(rand.NewPCG(9, 9)), size)
		return size, data, MustEncode(t, c, bytes.NewReader(data), size)
	}
	encode := func(data []byte) float64 {
		return testing.AllocsPerRun(3, func() {
			enc := c.NewEncoder(bytes.NewReader(data))
			for {
				if _, err := enc.Next(); err != nil {
					return
				}
			}
		})
	}
	read := func(src erasure.ShardOpener, size int64) float64 {
		return testing.AllocsPerRun(3, func() {
			rd := c.NewReader(context.Background(), src, size, 0, size, erasure.ReadOptions{})
			if _, err := io.Copy(io.Discard, rd); err != nil {
				t.Error(err)
			}
			rd.Close()
		})
	}

	smallSize, smallData, smallShards := objectOf(16)
	bigSize, bigData, bigShards := objectOf(256)
	t.Run("Encode", func(t *testing.T) {
		small := encode(smallData) - rsAllocs(17)
		big := encode(bigData) - rsAllocs(257)
		t.Logf("allocations besides reedsolomon's: %.0f for 17 stripes, %.0f for 257", small, big)
		// reedsolomon's own count wobbles by a few from run to run (its
		// goroutines, the race detector): the bound is far below one
		// allocation per stripe (240 more stripes), far above the wobble.
		if big > small+32 {
			t.Errorf("allocations grow with the object: %.0f for 17 stripes, %.0f for 257", small, big)
		}
	})
	t.Run("Read", func(t *testing.T) {
		small := read(&memOpener{tb: t, shards: smallShards}, smallSize)
		big := read(&memOpener{tb: t, shards: bigShards}, bigSize)
		t.Logf("allocations: %.0f for 17 stripes, %.0f for 257", small, big)
		if big > small+32 {
			t.Errorf("allocations grow with the object: %.0f for 17 stripes, %.0f for 257", small, big)
		}
	})
}
