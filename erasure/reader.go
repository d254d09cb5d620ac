package erasure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// ShardOpener opens a byte range [off, off+n) of one shard (index 0 to
// k+m−1) of one stored object. The client implements it with HTTP range
// requests to the dataservers.
//
// A read error at any time, including mid-stream (a checksum failure on the
// server arrives as a read error), and a stream that ends before n bytes,
// mark the shard failed. Reads must return once ctx is done, as the bodies
// of HTTP requests made with ctx do: that is how a reader stops the shards
// it no longer needs. OpenShard may be called from several goroutines at
// once.
type ShardOpener interface {
	OpenShard(ctx context.Context, shard int, off, n int64) (io.ReadCloser, error)
}

// ReadOptions tune a reader. The zero value is a reader without hedging.
type ReadOptions struct {
	// HedgeAfter, when > 0: if a stripe has not arrived within this delay
	// of the reader asking for it, the reader also starts reading another
	// shard (a parity shard first) for the rest of the range and uses
	// whichever k shards answer first. This keeps tail latency down when
	// one disk is slow. A stripe that is still missing after another
	// HedgeAfter gets one more shard, up to all k+m. 0 disables hedging.
	//
	// A healthy read that hedges becomes a degraded one from that stripe
	// on: it reopens the working data shards for the degraded read's
	// column windows (see NewReader) and adds a parity shard, k+1 streams
	// in all, the slow shard among them.
	HedgeAfter time.Duration
}

// pipeline is the number of stripe pieces each shard stream may read ahead
// of the caller: two give double buffering.
const pipeline = 2

var errClosed = errors.New("erasure: read from closed reader")

// NewReader returns the bytes [off, off+n) of an object of size bytes whose
// shards are opened through src.
//
// While every shard it needs answers, the reader opens only the data shards
// that hold the range, each once for its whole contiguous span, and hands
// out their bytes stripe by stripe with no decoding. When a shard fails (an
// open error, a read error or a short read at any point) the reader switches,
// from the stripe it was reading on, to reading the same columns of every
// stripe from k working shards, parity included, and rebuilds the data it
// needs with Reed-Solomon. With more than m failed shards, Read returns an
// error wrapping ErrTooFewShards that says how many shards were needed and
// how many were found. See ReadOptions for hedged reads.
//
// Memory is bounded by a few stripe units per opened shard, whatever n is.
// Nothing is opened before the first Read (or WriteTo). Read returns an error
// wrapping ErrRange if the range does not lie within [0, size), and an error
// wrapping ctx.Err() once ctx is done. Close stops every background read,
// closes every opened shard and waits for both; it may be called more than
// once, and concurrently with Read. The reader reaches io.EOF after n bytes.
func (c *Codec) NewReader(ctx context.Context, src ShardOpener, size, off, n int64, opts ReadOptions) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	r := &reader{
		c: c, src: src, opts: opts,
		size: size, off: off, n: n,
		ctx: ctx, cancel: cancel,
	}
	switch {
	case src == nil:
		r.err = errors.New("erasure: NewReader: nil ShardOpener")
	case !validRange(size, off, n):
		r.err = fmt.Errorf("%w: %d bytes at %d of a %d-byte object", ErrRange, n, off, size)
	case n == 0:
		r.err = io.EOF
	default:
		r.t = off / c.stripeCap()
		r.last = (off + n - 1) / c.stripeCap()
	}
	if r.err != nil {
		cancel()
	}
	return r
}

// reader is the io.ReadCloser of NewReader. Its fields are owned by the
// goroutine calling Read, except mu, closed, done and wg, which Close shares.
type reader struct {
	c            *Codec
	src          ShardOpener
	opts         ReadOptions
	size, off, n int64
	ctx          context.Context
	cancel       context.CancelFunc

	mu     sync.Mutex
	closed bool           // under mu; no stream starts once set
	done   atomic.Bool    // Close was called
	wg     sync.WaitGroup // stream goroutines; Add under mu

	started  bool
	t, last  int64     // next stripe to hand out; last stripe of the range
	maxLen   int64     // longest stripe window of the range
	degraded bool      // reading windows of k shards instead of data pieces
	streams  []*stream // by shard; nil when the shard is not being read
	failed   []bool    // by shard; a failed shard is never read again
	nfailed  int
	lastErr  error      // the latest shard failure
	events   chan piece // every stream's pieces and errors, in order per stream
	timer    *time.Timer

	out    [][]byte // the current stripe's bytes not yet handed out
	outBuf [][]byte
	held   []piece  // pieces out refers to, to recycle once handed out
	recon  [][]byte // by data shard: buffers for rebuilt pieces
	shards [][]byte // scratch for ReconstructSome
	need   []bool   // scratch for ReconstructSome
	err    error    // sticky: io.EOF at the end, or the failure
}

// stream reads a contiguous span of one shard, one stripe piece at a time,
// in a goroutine of its own.
type stream struct {
	shard   int
	t0, t1  int64 // stripes read
	window  bool  // read each stripe's window (degraded) instead of the shard's own piece
	maxLen  int64 // largest piece
	free    chan []byte
	cancel  context.CancelFunc
	pending []piece // received by the consumer, not yet used; in stripe order
}

// pop removes and returns the first pending piece, keeping the slice's
// storage for the next ones.
func (s *stream) pop() piece {
	p := s.pending[0]
	n := copy(s.pending, s.pending[1:])
	s.pending[n] = piece{}
	s.pending = s.pending[:n]
	return p
}

// piece is one stripe's bytes from one stream, or the stream's failure.
type piece struct {
	s   *stream
	t   int64
	buf []byte
	err error
}

// Read implements io.Reader.
func (r *reader) Read(p []byte) (int, error) {
	if r.done.Load() {
		return 0, errClosed
	}
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.advance()
	}
	n := 0
	for n < len(p) && len(r.out) > 0 {
		c := copy(p[n:], r.out[0])
		n += c
		r.consume(c)
	}
	return n, nil
}

// WriteTo implements io.WriterTo: it writes the rest of the range to w
// straight from the shard buffers.
func (r *reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if r.done.Load() {
			return total, errClosed
		}
		for len(r.out) > 0 {
			n, err := w.Write(r.out[0])
			total += int64(n)
			r.consume(n)
			if err == nil && len(r.out) > 0 && n == 0 {
				err = io.ErrShortWrite
			}
			if err != nil {
				return total, err
			}
		}
		if r.err == io.EOF {
			return total, nil
		}
		if r.err != nil {
			return total, r.err
		}
		r.advance()
	}
}

// consume drops n handed-out bytes from the head of r.out.
func (r *reader) consume(n int) {
	r.out[0] = r.out[0][n:]
	if len(r.out[0]) == 0 {
		r.out = r.out[1:]
	}
}

// Close implements io.Closer.
func (r *reader) Close() error {
	r.done.Store(true)
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return nil
}

// advance assembles the next stripe into r.out, or sets r.err. On the end
// or a failure it stops every stream.
func (r *reader) advance() {
	err := r.next()
	if err == nil {
		return
	}
	r.err = err
	r.cancel()
	r.wg.Wait()
	r.release()
}

// release hands the buffers of a finished reader back to the codec. The
// stream goroutines must have stopped and no bytes be left to hand out.
func (r *reader) release() {
	r.recycle()
	for _, s := range r.streams {
		if s == nil {
			continue
		}
		for _, p := range s.pending {
			r.c.putBuf(p.buf)
		}
		s.pending = nil
		for len(s.free) > 0 {
			r.c.putBuf(<-s.free)
		}
	}
	for len(r.events) > 0 {
		r.c.putBuf((<-r.events).buf)
	}
	for i, b := range r.recon {
		r.c.putBuf(b)
		r.recon[i] = nil
	}
}

// next assembles stripe r.t into r.out.
func (r *reader) next() error {
	r.recycle()
	if r.t > r.last {
		return io.EOF
	}
	if !r.started {
		if err := r.start(); err != nil {
			return err
		}
	}
	g := r.c.stripe(r.size, r.off, r.n, r.t)
	waiting := false
	defer func() {
		if waiting {
			r.timer.Stop()
		}
	}()
	for {
		done, err := r.assemble(&g)
		if err != nil {
			return err
		}
		if done {
			r.t++
			return nil
		}
		var hedge <-chan time.Time
		if r.opts.HedgeAfter > 0 {
			if !waiting {
				waiting = true
				if r.timer == nil {
					r.timer = time.NewTimer(r.opts.HedgeAfter)
				} else {
					r.timer.Reset(r.opts.HedgeAfter)
				}
			}
			hedge = r.timer.C
		}
		select {
		case p := <-r.events:
			if err := r.receive(p); err != nil {
				return err
			}
		case <-hedge:
			if err := r.hedge(); err != nil {
				return err
			}
			r.timer.Reset(r.opts.HedgeAfter)
		case <-r.ctx.Done():
			return r.ctxErr()
		}
	}
}

// ctxErr returns why r.ctx is done.
func (r *reader) ctxErr() error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return errClosed
	}
	return fmt.Errorf("erasure: reading stripe %d: %w", r.t, context.Cause(r.ctx))
}

// start opens, in the background, every data shard that holds the range,
// each for its whole span.
func (r *reader) start() error {
	r.started = true
	total := r.c.k + r.c.m
	r.streams = make([]*stream, total)
	r.failed = make([]bool, total)
	r.events = make(chan piece, total*(pipeline+1))
	first := r.c.stripe(r.size, r.off, r.n, r.t)
	last := r.c.stripe(r.size, r.off, r.n, r.last)
	lo, hi := first.window()
	r.maxLen = hi - lo
	if lo, hi = last.window(); hi-lo > r.maxLen {
		r.maxLen = hi - lo
	}
	if r.last-r.t >= 2 {
		r.maxLen = r.c.unit
	}
	for i := range r.c.k {
		t0, t1 := r.t, r.last
		if !first.holds(i) {
			t0++
		}
		if !last.holds(i) {
			t1--
		}
		if t0 <= t1 {
			if err := r.open(i, t0, t1, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// open starts a stream reading shard i for stripes t0 to t1.
func (r *reader) open(i int, t0, t1 int64, window bool) error {
	ctx, cancel := context.WithCancel(r.ctx)
	s := &stream{shard: i, t0: t0, t1: t1, window: window, cancel: cancel, free: make(chan []byte, pipeline)}
	for range pipeline {
		s.free <- nil
	}
	s.maxLen = r.cols(s, t0).len()
	if t1 > t0 {
		s.maxLen = max(s.maxLen, r.cols(s, t1).len())
	}
	if t1-t0 >= 2 {
		s.maxLen = r.c.unit
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		cancel()
		return errClosed
	}
	r.streams[i] = s
	r.wg.Add(1)
	go r.run(ctx, s)
	return nil
}

// cols is a range of columns within a stripe's piece of a shard.
type cols struct{ lo, hi int64 }

func (c cols) len() int64 { return c.hi - c.lo }

// cols returns the columns stream s reads of stripe t.
func (r *reader) cols(s *stream, t int64) cols {
	g := r.c.stripe(r.size, r.off, r.n, t)
	if s.window {
		lo, hi := g.window()
		return cols{lo, hi}
	}
	lo, hi := g.piece(s.shard)
	return cols{lo, hi}
}

// run is the goroutine of stream s: it opens the shard's span and sends its
// pieces, or its failure, to r.events. It stops when ctx is done.
func (r *reader) run(ctx context.Context, s *stream) {
	defer r.wg.Done()
	defer s.cancel()
	send := func(p piece) bool {
		select {
		case r.events <- p:
			return true
		case <-ctx.Done():
			return false
		}
	}
	first, last := r.cols(s, s.t0), r.cols(s, s.t1)
	off := s.t0*r.c.unit + first.lo
	n := s.t1*r.c.unit + last.hi - off
	rc, err := r.src.OpenShard(ctx, s.shard, off, n)
	if err == nil && rc == nil {
		err = errors.New("no stream and no error")
	}
	if err != nil {
		send(piece{s: s, t: s.t0, err: fmt.Errorf("opening shard %d [%d, +%d): %w", s.shard, off, n, err)})
		return
	}
	defer rc.Close()
	for t := s.t0; t <= s.t1; t++ {
		var buf []byte
		select {
		case buf = <-s.free:
		case <-ctx.Done():
			return
		}
		cl := r.cols(s, t)
		if int64(cap(buf)) < cl.len() {
			buf = r.c.getBuf(s.maxLen)
		}
		buf = buf[:cl.len()]
		if _, err := io.ReadFull(rc, buf); err != nil {
			send(piece{s: s, t: t, err: fmt.Errorf("reading shard %d at %d: %w", s.shard, t*r.c.unit+cl.lo, err)})
			return
		}
		if !send(piece{s: s, t: t, buf: buf}) {
			return
		}
	}
}

// receive files a piece that arrived from a stream.
func (r *reader) receive(p piece) error {
	s := p.s
	if r.streams[s.shard] != s {
		r.c.putBuf(p.buf) // from a stream already stopped
		return nil
	}
	if p.err != nil {
		if r.ctx.Err() != nil {
			return r.ctxErr()
		}
		r.fail(s, p.err)
		return nil
	}
	if p.t < r.t {
		r.free(p) // a lagging stream's piece for a stripe already handed out
		return nil
	}
	s.pending = append(s.pending, p)
	return nil
}

// fail marks the shard of stream s failed and stops the stream. Its pieces
// not yet handed out are dropped.
func (r *reader) fail(s *stream, err error) {
	s.cancel()
	for _, p := range s.pending {
		r.c.putBuf(p.buf)
	}
	s.pending = nil
	r.streams[s.shard] = nil
	r.failed[s.shard] = true
	r.nfailed++
	r.lastErr = err
}

// assemble tries to put stripe g together from the pieces received so far.
// It starts the streams a degraded read needs.
func (r *reader) assemble(g *stripeRange) (bool, error) {
	if !r.degraded {
		for i := g.first; i <= g.last; i++ {
			s := r.streams[i]
			if s == nil {
				// A data shard failed: read this stripe and the rest from
				// k shards and rebuild.
				return false, r.degrade(0)
			}
			if len(s.pending) == 0 {
				return false, nil
			}
		}
		r.out = r.outBuf[:0]
		for i := g.first; i <= g.last; i++ {
			s := r.streams[i]
			p := s.pop()
			r.out = append(r.out, p.buf)
			r.held = append(r.held, p)
		}
		r.outBuf = r.out
		return true, nil
	}

	if err := r.enough(0); err != nil {
		return false, err
	}
	have := 0
	for _, s := range r.streams {
		if s != nil && len(s.pending) > 0 && s.pending[0].t == g.t {
			have++
		}
	}
	if have < r.c.k {
		return false, nil
	}

	// Take the first k shards that answered, data shards first.
	k := r.c.k
	if r.shards == nil {
		r.shards = make([][]byte, k+r.c.m)
		r.need = make([]bool, k)
		r.recon = make([][]byte, k)
	}
	lo, hi := g.window()
	took := 0
	for i, s := range r.streams {
		r.shards[i] = nil
		if s == nil || len(s.pending) == 0 || s.pending[0].t != g.t {
			continue
		}
		p := s.pop()
		if took == k {
			r.free(p)
			continue
		}
		took++
		r.shards[i] = p.buf
		r.held = append(r.held, p)
	}
	for i := range k {
		r.need[i] = false
		if r.shards[i] == nil && g.holds(i) {
			if int64(cap(r.recon[i])) < hi-lo {
				r.c.putBuf(r.recon[i])
				r.recon[i] = r.c.getBuf(r.maxLen)
			}
			r.shards[i], r.need[i] = r.recon[i][:0], true
		}
	}
	if err := r.c.rs.ReconstructSome(r.shards, r.need); err != nil {
		return false, fmt.Errorf("erasure: rebuilding stripe %d: %w", g.t, err)
	}
	r.out = r.outBuf[:0]
	for i := g.first; i <= g.last; i++ {
		plo, phi := g.piece(i)
		r.out = append(r.out, r.shards[i][plo-lo:phi-lo])
	}
	r.outBuf = r.out
	return true, nil
}

// degrade switches the reader to degraded reads from stripe r.t on: it stops
// the data shard streams, whose pieces do not line up with a degraded read's
// windows, and starts k+extra streams of working shards, data shards first.
func (r *reader) degrade(extra int) error {
	for i, s := range r.streams {
		if s != nil {
			s.cancel()
			for _, p := range s.pending {
				r.c.putBuf(p.buf)
			}
			r.streams[i] = nil
		}
	}
	r.degraded = true
	return r.enough(extra)
}

// enough makes sure that k+extra working shards are being read (as many as
// there are, at least k), starting new streams at stripe r.t.
func (r *reader) enough(extra int) error {
	live := 0
	for _, s := range r.streams {
		if s != nil {
			live++
		}
	}
	want := min(r.c.k+extra, r.c.k+r.c.m-r.nfailed)
	for i := 0; live < want && i < len(r.streams); i++ {
		if r.streams[i] != nil || r.failed[i] {
			continue
		}
		if err := r.open(i, r.t, r.last, true); err != nil {
			return err
		}
		live++
	}
	if live < r.c.k {
		return fmt.Errorf("%w: stripe %d: needed %d, found %d: %w",
			ErrTooFewShards, r.t, r.c.k, r.c.k+r.c.m-r.nfailed, r.lastErr)
	}
	return nil
}

// hedge adds one more shard to the reads of the current stripe.
func (r *reader) hedge() error {
	if !r.degraded {
		return r.degrade(1)
	}
	live := 0
	for _, s := range r.streams {
		if s != nil {
			live++
		}
	}
	return r.enough(live + 1 - r.c.k)
}

// recycle hands the buffers of the stripe just handed out back to their
// streams.
func (r *reader) recycle() {
	for i, p := range r.held {
		r.free(p)
		r.held[i] = piece{}
	}
	r.held = r.held[:0]
}

// free gives p's buffer back to its stream, or to the codec if the stream
// has stopped. It never blocks: a stream owns at most pipeline buffers.
func (r *reader) free(p piece) {
	if r.streams[p.s.shard] != p.s {
		r.c.putBuf(p.buf)
		return
	}
	select {
	case p.s.free <- p.buf:
	default:
		r.c.putBuf(p.buf)
	}
}
