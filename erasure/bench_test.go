package erasure_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/klauspost/reedsolomon"

	"depot/erasure"
)

// benchSize is the object size of the benchmarks: many stripes and a
// partial one at the end.
const benchSize = 32<<20 + 12345

var benchSchemes = []struct{ k, m int }{{4, 2}, {10, 4}}

// perOp runs fn b.N times (through b.Loop) and returns the time per call.
func perOp(b *testing.B, fn func()) time.Duration {
	n := 0
	for b.Loop() {
		fn()
		n++
	}
	return b.Elapsed() / time.Duration(max(n, 1))
}

// ratio reports depot's throughput as a fraction of reedsolomon's, both as
// a metric of the depot sub-benchmark and in the log.
func ratio(b *testing.B, name string, depot, rs time.Duration) {
	if depot <= 0 || rs <= 0 {
		return
	}
	r := float64(rs) / float64(depot)
	b.ReportMetric(r, "x_reedsolomon")
	b.Logf("%s: depot runs at %.2f× the speed of reedsolomon called directly (%v vs %v per %d-byte object)", name, r, depot, rs, benchSize)
}

// BenchmarkEncode compares the Encoder with the same work done by calling
// reedsolomon directly: read each stripe from the reader into one buffer,
// Split it and Encode it.
func BenchmarkEncode(b *testing.B) {
	data := randBytes(rand.New(rand.NewPCG(1, 1)), benchSize)
	for _, sc := range benchSchemes {
		c := MustCodec(b, sc.k, sc.m, 0)
		unit := c.Unit()
		var direct, through time.Duration
		b.Run(fmt.Sprintf("%d+%d/reedsolomon", sc.k, sc.m), func(b *testing.B) {
			rs, err := reedsolomon.New(sc.k, sc.m, reedsolomon.WithAutoGoroutines(unit))
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, sc.k*unit, (sc.k+sc.m)*unit)
			b.SetBytes(benchSize)
			direct = perOp(b, func() {
				r := bytes.NewReader(data)
				for {
					n, _ := io.ReadFull(r, buf)
					if n == 0 {
						return
					}
					shards, err := rs.Split(buf[:n])
					if err != nil {
						b.Fatal(err)
					}
					if err := rs.Encode(shards); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
		b.Run(fmt.Sprintf("%d+%d/depot", sc.k, sc.m), func(b *testing.B) {
			b.SetBytes(benchSize)
			through = perOp(b, func() {
				enc := c.NewEncoder(bytes.NewReader(data))
				for {
					if _, err := enc.Next(); err == io.EOF {
						return
					} else if err != nil {
						b.Fatal(err)
					}
				}
			})
			ratio(b, fmt.Sprintf("Encode %d+%d", sc.k, sc.m), through, direct)
		})
	}
}

// BenchmarkReconstruct reads a whole object with two data shards missing.
// The direct reedsolomon baseline reads the pieces of k surviving shards of
// each stripe from in-memory readers, calls ReconstructData and writes the
// data out; depot does the same through NewReader and a ShardOpener serving
// the same shards from memory.
func BenchmarkReconstruct(b *testing.B) {
	data := randBytes(rand.New(rand.NewPCG(2, 2)), benchSize)
	for _, sc := range benchSchemes {
		c := MustCodec(b, sc.k, sc.m, 0)
		k, m, unit := sc.k, sc.m, int64(c.Unit())
		shards := MustEncode(b, c, bytes.NewReader(data), benchSize)
		lost := map[int]fault{0: {kind: missing}, 1: {kind: missing}}
		var direct, through time.Duration
		b.Run(fmt.Sprintf("%d+%d/reedsolomon", k, m), func(b *testing.B) {
			rs, err := reedsolomon.New(k, m, reedsolomon.WithAutoGoroutines(int(unit)))
			if err != nil {
				b.Fatal(err)
			}
			bufs := make([][]byte, k+m)
			for i := range bufs {
				bufs[i] = make([]byte, unit)
			}
			stripe := make([][]byte, k+m)
			readers := make([]*bytes.Reader, k+m)
			b.SetBytes(benchSize)
			direct = perOp(b, func() {
				for i := range readers {
					readers[i] = bytes.NewReader(shards[i])
				}
				left := int64(benchSize)
				for t := int64(0); left > 0; t++ {
					l := unit
					if left < int64(k)*unit {
						l = (left + int64(k) - 1) / int64(k)
					}
					have := 0
					for i := range stripe {
						stripe[i] = nil
						if _, gone := lost[i]; gone || have == k {
							if i < k {
								stripe[i] = bufs[i][:0]
							}
							continue
						}
						stripe[i] = bufs[i][:l]
						if _, err := io.ReadFull(readers[i], stripe[i]); err != nil {
							b.Fatal(err)
						}
						have++
					}
					if err := rs.ReconstructData(stripe); err != nil {
						b.Fatal(err)
					}
					for i := range k {
						piece := stripe[i][:min(l, left)]
						io.Discard.Write(piece)
						left -= int64(len(piece))
					}
				}
			})
		})
		b.Run(fmt.Sprintf("%d+%d/depot", k, m), func(b *testing.B) {
			src := &memOpener{tb: b, shards: shards, faults: lost}
			b.SetBytes(benchSize)
			through = perOp(b, func() {
				rd := c.NewReader(context.Background(), src, benchSize, 0, benchSize, erasure.ReadOptions{})
				if n, err := io.Copy(io.Discard, rd); err != nil || n != benchSize {
					b.Fatalf("read %d bytes: %v", n, err)
				}
				rd.Close()
			})
			ratio(b, fmt.Sprintf("Reconstruct %d+%d", k, m), through, direct)
		})
	}
}

// BenchmarkRead reads a whole object from healthy data shards.
func BenchmarkRead(b *testing.B) {
	data := randBytes(rand.New(rand.NewPCG(3, 3)), benchSize)
	c := MustCodec(b, 4, 2, 0)
	src := &memOpener{tb: b, shards: MustEncode(b, c, bytes.NewReader(data), benchSize)}
	b.SetBytes(benchSize)
	for b.Loop() {
		rd := c.NewReader(context.Background(), src, benchSize, 0, benchSize, erasure.ReadOptions{})
		if n, err := io.Copy(io.Discard, rd); err != nil || n != benchSize {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		rd.Close()
	}
}
