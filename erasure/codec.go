package erasure

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/reedsolomon"
)

// Limits of a codec's configuration.
const (
	// DefaultUnit is the stripe unit used when New is given 0: the number of
	// bytes each shard holds of one full stripe.
	DefaultUnit = 1 << 20
	// MaxUnit is the largest stripe unit New accepts.
	MaxUnit = 64 << 20
	// MaxShards is the largest k+m New accepts.
	MaxShards = 32
)

var (
	// ErrConfig is returned by New when k, m or the unit is out of range.
	ErrConfig = errors.New("erasure: bad configuration")
	// ErrTooFewShards is returned by a reader when more than m shards are
	// missing or failed, so that fewer than k remain to rebuild a stripe.
	// The error's text says how many shards were needed and how many were
	// found.
	ErrTooFewShards = errors.New("erasure: too few shards")
	// ErrRange is returned by a reader whose byte range does not lie within
	// the object.
	ErrRange = errors.New("erasure: range outside object")
)

// Codec encodes objects into k data and m parity shards and reads them back.
// A Codec is immutable and safe for concurrent use.
type Codec struct {
	k, m int
	unit int64
	rs   reedsolomon.Encoder

	// Full-stripe buffers for encoders (k×unit data, m×unit parity bytes),
	// kept between objects so that a busy writer does not allocate a stripe
	// per object.
	dataBufs, parityBufs sync.Pool
	// Unit-sized buffers for readers' shard pieces.
	unitBufs sync.Pool
}

// New returns a codec for k data shards and m parity shards with a stripe
// unit of unit bytes (0 means DefaultUnit). It returns an error wrapping
// ErrConfig unless 1 ≤ k, 1 ≤ m, k+m ≤ MaxShards and 0 ≤ unit ≤ MaxUnit.
func New(k, m, unit int) (*Codec, error) {
	if unit == 0 {
		unit = DefaultUnit
	}
	switch {
	case k < 1:
		return nil, fmt.Errorf("%w: k=%d: need at least 1 data shard", ErrConfig, k)
	case m < 1:
		return nil, fmt.Errorf("%w: m=%d: need at least 1 parity shard", ErrConfig, m)
	case k > MaxShards || m > MaxShards || k+m > MaxShards:
		return nil, fmt.Errorf("%w: k=%d m=%d: k+m must be at most %d", ErrConfig, k, m, MaxShards)
	case unit < 0 || unit > MaxUnit:
		return nil, fmt.Errorf("%w: unit=%d: must be between 1 and %d bytes", ErrConfig, unit, MaxUnit)
	}
	rs, err := reedsolomon.New(k, m, reedsolomon.WithAutoGoroutines(unit))
	if err != nil {
		return nil, fmt.Errorf("%w: k=%d m=%d: %w", ErrConfig, k, m, err)
	}
	c := &Codec{k: k, m: m, unit: int64(unit), rs: rs}
	c.dataBufs.New = func() any { b := make([]byte, k*unit); return &b }
	c.parityBufs.New = func() any { b := make([]byte, m*unit); return &b }
	c.unitBufs.New = func() any { b := make([]byte, unit); return &b }
	return c, nil
}

// K returns the number of data shards.
func (c *Codec) K() int { return c.k }

// M returns the number of parity shards.
func (c *Codec) M() int { return c.m }

// Unit returns the stripe unit: the bytes each shard holds of a full stripe.
func (c *Codec) Unit() int { return int(c.unit) }

// String returns the scheme as "k+m/unit", for example "4+2/1048576".
func (c *Codec) String() string { return fmt.Sprintf("%d+%d/%d", c.k, c.m, c.unit) }

// stripeCap returns the object bytes of a full stripe.
func (c *Codec) stripeCap() int64 { return int64(c.k) * c.unit }

// Stripes returns the number of stripes of an object of size bytes: 0 for an
// empty object (or a negative size).
func (c *Codec) Stripes(size int64) int64 {
	if size <= 0 {
		return 0
	}
	return (size-1)/c.stripeCap() + 1
}

// ShardSize returns the bytes every shard, data and parity alike, holds for
// an object of size bytes (see the package documentation for the layout).
// It is 0 for an empty object (or a negative size).
func (c *Codec) ShardSize(size int64) int64 {
	if size <= 0 {
		return 0
	}
	full, rest := size/c.stripeCap(), size%c.stripeCap()
	return full*c.unit + ceilDiv(rest, int64(c.k))
}

// stripeLen returns the per-shard length of stripe t of an object of size
// bytes: the unit for a full stripe, less for the last, partial one.
func (c *Codec) stripeLen(size, t int64) int64 {
	if rest := size - t*c.stripeCap(); rest < c.stripeCap() {
		return ceilDiv(rest, int64(c.k))
	}
	return c.unit
}

// getBuf returns a buffer of n bytes (n ≤ unit), from the codec's pool when
// n is a whole unit.
func (c *Codec) getBuf(n int64) []byte {
	if n != c.unit {
		return make([]byte, n)
	}
	return *c.unitBufs.Get().(*[]byte)
}

// putBuf gives a buffer from getBuf back to the pool if it is a whole unit.
func (c *Codec) putBuf(b []byte) {
	if int64(cap(b)) == c.unit {
		b = b[:c.unit]
		c.unitBufs.Put(&b)
	}
}

// Extent is a piece of a data shard: Len bytes at offset Off of shard Shard.
type Extent struct {
	Shard int
	Off   int64
	Len   int64
}

// Map returns where the bytes [off, off+n) of an object of size bytes are
// stored: pieces of data shards which, read in order and concatenated, give
// the range. Pieces of one shard that are adjacent in both the object and
// the shard are merged (which happens only when k = 1). Map returns nil when
// n is 0 or when the range does not lie within [0, size). A range covers
// about n/Unit()+2 extents.
func (c *Codec) Map(size, off, n int64) []Extent {
	if !validRange(size, off, n) || n == 0 {
		return nil
	}
	var out []Extent
	end := off + n
	for t := off / c.stripeCap(); t*c.stripeCap() < end; t++ {
		g := c.stripe(size, off, n, t)
		for i := g.first; i <= g.last; i++ {
			lo, hi := g.piece(i)
			e := Extent{Shard: i, Off: t*c.unit + lo, Len: hi - lo}
			if last := len(out) - 1; last >= 0 && out[last].Shard == e.Shard && out[last].Off+out[last].Len == e.Off {
				out[last].Len += e.Len
				continue
			}
			out = append(out, e)
		}
	}
	return out
}

// stripeRange is the part of a byte range that falls in one stripe.
type stripeRange struct {
	t           int64 // stripe index
	l           int64 // per-shard length of the stripe
	a, b        int64 // the range's bytes within the stripe: [a, b), relative to its start
	first, last int   // data shards holding [a, b)
}

// stripe returns the part of the range [off, off+n) of an object of size
// bytes that falls in stripe t. The range must be valid, non-empty and
// overlap the stripe.
func (c *Codec) stripe(size, off, n, t int64) stripeRange {
	base := t * c.stripeCap()
	l := c.stripeLen(size, t)
	a := max(off-base, 0)
	b := min(off+n-base, int64(c.k)*l)
	return stripeRange{t: t, l: l, a: a, b: b, first: int(a / l), last: int((b - 1) / l)}
}

// holds reports whether data shard i holds bytes of the range in the stripe.
func (g *stripeRange) holds(i int) bool { return g.first <= i && i <= g.last }

// piece returns the columns [lo, hi) of data shard i, relative to the start
// of the stripe's piece in that shard, that hold bytes of the range.
// i must satisfy g.holds(i).
func (g *stripeRange) piece(i int) (lo, hi int64) {
	start := int64(i) * g.l
	return max(g.a, start) - start, min(g.b, start+g.l) - start
}

// window returns the smallest columns [lo, hi) that cover the pieces of all
// data shards holding the range in the stripe: what a degraded read fetches
// of every shard it uses.
func (g *stripeRange) window() (lo, hi int64) {
	if g.first == g.last {
		return g.piece(g.first)
	}
	// The tail of one piece and the head of a later one: the whole stripe.
	return 0, g.l
}

// validRange reports whether [off, off+n) lies within [0, size).
func validRange(size, off, n int64) bool {
	return size >= 0 && off >= 0 && n >= 0 && off <= size && n <= size-off
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
