package erasure_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/klauspost/reedsolomon"

	"depot/erasure"
)

// MustCodec returns a codec or fails the test.
func MustCodec(tb testing.TB, k, m, unit int) *erasure.Codec {
	tb.Helper()
	c, err := erasure.New(k, m, unit)
	if err != nil {
		tb.Fatalf("New(%d, %d, %d): %v", k, m, unit, err)
	}
	return c
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(rng *rand.Rand, n int64) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= len(b); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := len(b) &^ 7; i < len(b); i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// MustEncode encodes data through an Encoder and returns the k+m shards,
// each the concatenation of its pieces of every stripe. It checks the
// shards' sizes, the Encoder's Size, and that every stripe's parity is what
// reedsolomon computes.
func MustEncode(tb testing.TB, c *erasure.Codec, r io.Reader, size int64) [][]byte {
	tb.Helper()
	rs, err := reedsolomon.New(c.K(), c.M())
	if err != nil {
		tb.Fatal(err)
	}
	shards := make([][]byte, c.K()+c.M())
	for i := range shards {
		shards[i] = make([]byte, 0, c.ShardSize(size))
	}
	enc := c.NewEncoder(r)
	stripes := int64(0)
	for {
		stripe, err := enc.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatalf("Next after %d stripes: %v", stripes, err)
		}
		stripes++
		if len(stripe) != c.K()+c.M() {
			tb.Fatalf("stripe %d: %d shards, want %d", stripes, len(stripe), c.K()+c.M())
		}
		if ok, err := rs.Verify(stripe); !ok || err != nil {
			tb.Fatalf("stripe %d: parity does not verify (%v)", stripes, err)
		}
		for i, s := range stripe {
			shards[i] = append(shards[i], s...)
		}
	}
	if _, err := enc.Next(); err != io.EOF {
		tb.Fatalf("Next after io.EOF: %v, want io.EOF again", err)
	}
	if enc.Size() != size {
		tb.Fatalf("Size() = %d, want %d", enc.Size(), size)
	}
	if got, want := stripes, c.Stripes(size); got != want {
		tb.Fatalf("%d stripes, Stripes(%d) = %d", got, size, want)
	}
	for i, s := range shards {
		if int64(len(s)) != c.ShardSize(size) {
			tb.Fatalf("shard %d: %d bytes, ShardSize(%d) = %d", i, len(s), size, c.ShardSize(size))
		}
	}
	return shards
}

// locate is the layout of doc.go, written out independently of the package:
// where object byte o of a size-byte object lives.
func locate(k, unit, size, o int64) (shard int, off int64) {
	capacity := k * unit
	t := o / capacity
	l := unit
	if rest := size - t*capacity; rest < capacity {
		l = (rest + k - 1) / k
	}
	w := o - t*capacity
	return int(w / l), t*unit + w%l
}

// checkLayout checks every byte of data against where doc.go says it is, and
// that the padding is zero.
func checkLayout(tb testing.TB, c *erasure.Codec, data []byte, shards [][]byte) {
	tb.Helper()
	k, unit, size := int64(c.K()), int64(c.Unit()), int64(len(data))
	var fromData int64
	for o := range size {
		i, off := locate(k, unit, size, o)
		if shards[i][off] != data[o] {
			tb.Fatalf("object byte %d: want it at shard %d offset %d, differs", o, i, off)
		}
	}
	for i := range k {
		fromData += int64(len(shards[i]))
	}
	// Padding: the data shards hold size bytes plus fewer than k zeros, at
	// the end of the last stripe.
	pad := fromData - size
	if size == 0 {
		pad = 0
	}
	if pad < 0 || pad >= k {
		tb.Fatalf("data shards hold %d bytes for %d object bytes", fromData, size)
	}
	if pad > 0 {
		l := c.ShardSize(size) - (c.Stripes(size)-1)*unit
		for j := range pad {
			// The padding is the last pad bytes of the last stripe, in
			// object order.
			w := k*l - pad + j
			if b := shards[w/l][(c.Stripes(size)-1)*unit+w%l]; b != 0 {
				tb.Fatalf("padding byte %d is %#x, want 0", j, b)
			}
		}
	}
}

// fault is a failure injected into one shard of a memOpener.
type fault struct {
	kind  faultKind
	after int64 // bytes delivered by each opened stream before the fault
}

type faultKind int

const (
	healthy  faultKind = iota
	missing            // OpenShard fails
	readErr            // Read fails after `after` bytes
	short              // the stream ends (io.EOF) after `after` bytes
	slow               // Read blocks after `after` bytes until ctx is done
	slowOpen           // OpenShard blocks until ctx is done
)

func (f fault) String() string {
	return fmt.Sprintf("%s@%d", [...]string{"healthy", "missing", "readErr", "short", "slow", "slowOpen"}[f.kind], f.after)
}

var errInjected = errors.New("injected failure")

// openCall is one call to memOpener.OpenShard.
type openCall struct {
	Shard  int
	Off, N int64
}

// memOpener serves shards from memory, with failures injected per shard. It
// records every open and counts the streams not yet closed.
type memOpener struct {
	tb     testing.TB
	shards [][]byte
	faults map[int]fault

	mu      sync.Mutex
	calls   []openCall
	open    int
	blocked chan int // if not nil, receives the shard of each slow read or open as it blocks
}

var _ erasure.ShardOpener = (*memOpener)(nil)

func (o *memOpener) OpenShard(ctx context.Context, shard int, off, n int64) (io.ReadCloser, error) {
	o.mu.Lock()
	o.calls = append(o.calls, openCall{shard, off, n})
	o.mu.Unlock()
	if shard < 0 || shard >= len(o.shards) || off < 0 || n <= 0 || off+n > int64(len(o.shards[shard])) {
		o.tb.Errorf("OpenShard(%d, %d, %d): outside the shard of %d bytes", shard, off, n, len(o.shards[shard]))
		return nil, errors.New("bad range")
	}
	f := o.faults[shard]
	switch f.kind {
	case missing:
		return nil, fmt.Errorf("shard %d: %w", shard, errInjected)
	case slowOpen:
		o.signal(shard)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	o.mu.Lock()
	o.open++
	o.mu.Unlock()
	return &memStream{o: o, ctx: ctx, shard: shard, data: o.shards[shard][off : off+n], f: f}, nil
}

func (o *memOpener) signal(shard int) {
	if o.blocked != nil {
		select {
		case o.blocked <- shard:
		default:
		}
	}
}

// Calls returns the opens so far.
func (o *memOpener) Calls() []openCall {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]openCall(nil), o.calls...)
}

// Open returns the number of streams opened and not closed.
func (o *memOpener) Open() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.open
}

type memStream struct {
	o      *memOpener
	ctx    context.Context
	shard  int
	data   []byte
	read   int64
	f      fault
	closed bool
}

func (s *memStream) Read(p []byte) (int, error) {
	if s.closed {
		s.o.tb.Errorf("shard %d: Read after Close", s.shard)
		return 0, errors.New("closed")
	}
	limit := int64(len(s.data))
	if s.f.kind == readErr || s.f.kind == short || s.f.kind == slow {
		limit = min(limit, s.f.after)
	}
	if s.read >= limit {
		switch {
		case s.read == int64(len(s.data)):
			return 0, io.EOF
		case s.f.kind == readErr:
			return 0, fmt.Errorf("shard %d at %d: %w", s.shard, s.read, errInjected)
		case s.f.kind == short:
			return 0, io.EOF
		case s.f.kind == slow:
			s.o.signal(s.shard)
			<-s.ctx.Done()
			return 0, s.ctx.Err()
		}
	}
	n := copy(p, s.data[s.read:limit])
	s.read += int64(n)
	return n, nil
}

func (s *memStream) Close() error {
	if s.closed {
		s.o.tb.Errorf("shard %d: closed twice", s.shard)
		return nil
	}
	s.closed = true
	s.o.mu.Lock()
	s.o.open--
	s.o.mu.Unlock()
	return nil
}

// readAll reads the range through NewReader, by Read calls of varying
// sizes when small is set, otherwise through io.Copy (WriteTo), and closes
// the reader.
func readAll(c *erasure.Codec, src erasure.ShardOpener, size, off, n int64, opts erasure.ReadOptions, small bool) ([]byte, error) {
	rd := c.NewReader(context.Background(), src, size, off, n, opts)
	defer rd.Close()
	var buf bytes.Buffer
	if !small {
		_, err := io.Copy(&buf, rd)
		return buf.Bytes(), err
	}
	p := make([]byte, 1000)
	for i := 1; ; i++ {
		m, err := rd.Read(p[:1+i*37%len(p)])
		buf.Write(p[:m])
		if err == io.EOF {
			return buf.Bytes(), nil
		}
		if err != nil {
			return buf.Bytes(), err
		}
	}
}
