package dataserver

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"depot"
)

const (
	bufBlocks = 64 // blocks buffered before a streaming write flushes
	// exactRecord: records up to this size get a buffer of their own;
	// larger ones take a pooled buffer of bufBlocks blocks (at most 16
	// times their size), so writes of large needles allocate nothing and
	// many small ones in flight do not each hold a large buffer.
	exactRecord = 64 << 10
)

var encPool = sync.Pool{New: func() any {
	b := make([]byte, headerSize+bufBlocks*(defaultBlock+crcSize)+recordAlign)
	return &b
}}

// encoder turns a needle's bytes into its record: header placeholder, then
// blocks each followed by its checksum, then padding. It buffers up to
// bufBlocks blocks; a longer needle is flushed in pieces and its header is
// written last.
type encoder struct {
	id    depot.NeedleID
	block int
	want  int64 // declared size, -1 unknown
	max   int64
	pool  *[]byte
	buf   []byte
	n     int  // bytes used in buf
	hdrIn bool // buf starts with the header placeholder
	nblk  int64
	size  int64 // data bytes read so far
	eof   bool  // all bytes read
}

func newEncoder(id depot.NeedleID, block, want, maxSize int64) *encoder {
	e := &encoder{id: id, block: int(block), want: want, max: maxSize, hdrIn: true, n: headerSize}
	if want >= 0 && recordLen(want, block) <= exactRecord {
		e.buf = make([]byte, recordLen(want, block)+recordAlign)
	} else if block == defaultBlock {
		e.pool = encPool.Get().(*[]byte)
		e.buf = *e.pool
	} else {
		e.buf = make([]byte, headerSize+bufBlocks*(int(block)+crcSize)+recordAlign)
	}
	clear(e.buf[:headerSize])
	return e
}

func (e *encoder) release() {
	if e.pool != nil {
		encPool.Put(e.pool)
		e.pool = nil
	}
}

// fill reads blocks from r until the buffer is full or the body ends.
func (e *encoder) fill(r io.Reader) error {
	for !e.eof {
		chunk := int64(e.block)
		if e.want >= 0 {
			chunk = min(chunk, e.want-e.size)
		}
		need := int(chunk) + recordAlign
		if chunk > 0 {
			need += crcSize
		}
		if e.n+need > len(e.buf) {
			return nil // full: flush first
		}
		var m int
		var err error
		if chunk > 0 {
			m, err = readBlock(r, e.buf[e.n:e.n+int(chunk)])
		}
		if m > 0 {
			binary.LittleEndian.PutUint32(e.buf[e.n+m:], blockCRC(e.id, e.nblk, e.buf[e.n:e.n+m]))
			e.n += m + crcSize
			e.size += int64(m)
			e.nblk++
			if e.size > e.max {
				return fmt.Errorf("%w: body exceeds the %d-byte needle limit", depot.ErrTooLarge, e.max)
			}
		}
		switch {
		case err == nil && e.want >= 0 && e.size == e.want:
			var one [1]byte
			k, err := io.ReadFull(r, one[:])
			if k > 0 {
				return fmt.Errorf("%w: body longer than its declared %d bytes", depot.ErrBadRequest, e.want)
			}
			if err != io.EOF {
				return fmt.Errorf("%w: reading body: %w", depot.ErrBadRequest, err)
			}
			e.eof = true
		case err == io.EOF:
			// Only the reader's own io.EOF ends a body. io.ErrUnexpectedEOF
			// is a body cut short (a chunked body without its last chunk,
			// a connection closed before Content-Length bytes), and like
			// any other error it stores nothing.
			if e.want >= 0 && e.size < e.want {
				return fmt.Errorf("%w: truncated body: %d of %d bytes", depot.ErrBadRequest, e.size, e.want)
			}
			e.eof = true
		case err != nil:
			return fmt.Errorf("%w: reading body: %w", depot.ErrBadRequest, err)
		}
	}
	return nil
}

// readBlock reads into b until it is full or r fails. Unlike io.ReadFull
// it returns r's own error unchanged: io.EOF is the body's end, and
// io.ErrUnexpectedEOF from r (a cut stream) is never mistaken for it. A
// reader that keeps returning nothing without an error ends with
// io.ErrNoProgress, as bufio does.
func readBlock(r io.Reader, b []byte) (int, error) {
	n, empty := 0, 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
		if m > 0 {
			empty = 0
		} else if empty++; empty >= 100 {
			return n, io.ErrNoProgress
		}
	}
	return n, nil
}

// bytes returns the buffered record bytes to flush.
func (e *encoder) bytes() []byte { return e.buf[:e.n] }

// reset empties the buffer after a flush.
func (e *encoder) reset() {
	e.n = 0
	e.hdrIn = false
}

// finish pads the record and, if the header placeholder is still in the
// buffer, fills it in. It returns the bytes left to write and whether they
// include the header.
func (e *encoder) finish(h header, gen uint64) ([]byte, bool) {
	total := headerSize + e.size + crcSize*e.nblk
	pad := int(recordLen(e.size, int64(e.block)) - total)
	clear(e.buf[e.n : e.n+pad])
	e.n += pad
	if e.hdrIn {
		h.put(e.buf[:headerSize], gen)
	}
	return e.buf[:e.n], e.hdrIn
}
