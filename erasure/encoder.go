package erasure

import (
	"fmt"
	"io"
)

// firstRead is how many bytes an encoder reads before it takes a full
// stripe buffer: an object smaller than this (most product images) costs
// buffers of its own size, not k+m stripe units.
const firstRead = 64 << 10

// Encoder cuts an object into stripes and encodes them, one stripe per call
// to Next. It holds one stripe in memory, whatever the object's length. An
// Encoder is not safe for concurrent use.
type Encoder struct {
	c      *Codec
	r      io.Reader
	shards [][]byte

	data, parity   []byte  // the current stripe's data and parity bytes
	dataP, parityP *[]byte // data and parity when they came from the codec's pools

	size int64
	eof  bool  // r is exhausted: the stripe returned last was the last one
	err  error // sticky: io.EOF after the last stripe, or a failure
}

// NewEncoder returns an encoder that reads the object from r. The length of
// the object need not be known: the encoder reads until r returns io.EOF.
func (c *Codec) NewEncoder(r io.Reader) *Encoder {
	return &Encoder{c: c, r: r}
}

// Next reads the next stripe from r and returns its k+m shards: the k data
// shards first, then the m parity shards, all of the same length (the unit,
// or less for the last stripe; see the package documentation). The slices
// stay valid until the next call to Next.
//
// Next returns io.EOF, and no shards, after the last stripe; an empty object
// yields io.EOF at once. An error from r is returned wrapped, with the
// object offset at which it happened. Once Next has returned an error it
// returns the same error again.
func (e *Encoder) Next() ([][]byte, error) {
	if e.err != nil {
		return nil, e.err
	}
	if e.eof {
		return nil, e.fail(io.EOF)
	}
	n, err := e.fill()
	if err != nil {
		return nil, e.fail(fmt.Errorf("erasure: reading object at byte %d: %w", e.size+int64(n), err))
	}
	if n == 0 {
		return nil, e.fail(io.EOF)
	}
	e.size += int64(n)

	k, m := e.c.k, e.c.m
	l := int(e.c.unit)
	if int64(n) < e.c.stripeCap() {
		l = int(ceilDiv(int64(n), int64(k)))
		clear(e.data[n : k*l]) // padding
	}
	if need := m * l; cap(e.parity) < need {
		if e.dataP == nil {
			e.parity = make([]byte, need)
		} else {
			e.parityP = e.c.parityBufs.Get().(*[]byte)
			e.parity = *e.parityP
		}
	}
	if e.shards == nil {
		e.shards = make([][]byte, k+m)
	}
	for i := range k {
		e.shards[i] = e.data[i*l : (i+1)*l : (i+1)*l]
	}
	for j := range m {
		e.shards[k+j] = e.parity[j*l : (j+1)*l : (j+1)*l]
	}
	if err := e.c.rs.Encode(e.shards); err != nil {
		return nil, e.fail(fmt.Errorf("erasure: encoding stripe: %w", err))
	}
	return e.shards, nil
}

// Size returns the number of object bytes consumed so far: after Next has
// returned io.EOF, the size of the object.
func (e *Encoder) Size() int64 { return e.size }

// fill reads the next stripe's object bytes into e.data and returns how many
// it read: a full stripe, or less when r ended, which sets e.eof.
func (e *Encoder) fill() (int, error) {
	want := int(e.c.stripeCap())
	if e.data == nil {
		e.data = make([]byte, min(want, firstRead))
	}
	n := 0
	for {
		got, eof, err := readFull(e.r, e.data[n:])
		n += got
		if err != nil {
			return n, err
		}
		if eof {
			e.eof = true
			return n, nil
		}
		if len(e.data) == want {
			return n, nil
		}
		// The object is larger than the first read: move to a full stripe.
		p := e.c.dataBufs.Get().(*[]byte)
		copy(*p, e.data[:n])
		e.data, e.dataP = *p, p
	}
}

// readFull reads into buf until it is full or r returns io.EOF, reported as
// eof. Unlike io.ReadFull it does not turn any error into the end of the
// object: an io.ErrUnexpectedEOF from r, such as a truncated HTTP body, is
// an error, not a short object.
func readFull(r io.Reader, buf []byte) (n int, eof bool, err error) {
	for n < len(buf) {
		got, err := r.Read(buf[n:])
		n += got
		if err == io.EOF {
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}

// fail makes err sticky and hands the buffers back.
func (e *Encoder) fail(err error) error {
	e.err = err
	if e.dataP != nil {
		e.c.dataBufs.Put(e.dataP)
	}
	if e.parityP != nil {
		e.c.parityBufs.Put(e.parityP)
	}
	e.data, e.parity, e.dataP, e.parityP, e.shards = nil, nil, nil, nil, nil
	return err
}
