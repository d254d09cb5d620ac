package sse

import (
	"crypto/cipher"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"depot"
)

// DefaultChunkSize is the plaintext size of a sealed chunk.
const DefaultChunkSize = 64 << 10

// maxChunkSize bounds the chunk size a stream record may name, and so the
// buffer a read allocates.
const maxChunkSize = 16 << 20

const nonceSize = 12

func chunkNonce(base []byte, i uint64) []byte {
	n := make([]byte, nonceSize)
	copy(n, base)
	var c [8]byte
	binary.BigEndian.PutUint64(c[:], i)
	for j := range c {
		n[nonceSize-8+j] ^= c[j]
	}
	return n
}

func chunkAD(i uint64, last bool) []byte {
	ad := append([]byte("depot sse chunk v1\x00"), 0, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint64(ad[len(ad)-9:], i)
	if last {
		ad[len(ad)-1] = 1
	}
	return ad
}

// Encrypter reads a plaintext stream from r and returns its sealed form.
// It reads exactly Stream().Size bytes of r.
type Encrypter struct {
	r      io.Reader
	st     depot.Stream
	aead   cipher.AEAD
	chunks uint64
	next   uint64 // index of the next chunk to seal
	left   int64  // plaintext bytes still to read
	buf    []byte
	out    []byte // sealed bytes not yet returned
	sum    hash.Hash
	err    error
}

// NewEncrypter returns an Encrypter of size plaintext bytes of r, under a
// new data key sealed by kek, in chunks of chunkSize bytes (0:
// DefaultChunkSize).
func NewEncrypter(kek KEK, r io.Reader, size int64, chunkSize int) (*Encrypter, error) {
	if chunkSize <= 0 {
		chunkSize = DefaultChunkSize
	}
	if chunkSize > maxChunkSize || size < 0 {
		return nil, fmt.Errorf("%w: chunk size %d, size %d", depot.ErrBadRequest, chunkSize, size)
	}
	dk := make([]byte, KeySize)
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(dk); err != nil {
		return nil, err
	}
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	id, sealed, err := kek.seal(dk)
	if err != nil {
		return nil, err
	}
	st := depot.Stream{Size: size, ChunkSize: chunkSize, KeyID: id, Key: sealed, Nonce: nonce}
	return &Encrypter{r: r, st: st, aead: newGCM(dk), chunks: uint64(st.Chunks()), left: size,
		buf: make([]byte, chunkSize+depot.StreamOverhead), sum: md5.New()}, nil
}

// Stream returns the record of the stream being sealed: what a reader
// needs, with the data key sealed.
func (e *Encrypter) Stream() depot.Stream { return e.st }

// StoredSize returns how many bytes Read returns in all.
func (e *Encrypter) StoredSize() int64 { return e.st.StoredSize() }

// MD5 returns the MD5 of the plaintext read so far: of the whole stream
// once Read returned io.EOF.
func (e *Encrypter) MD5() []byte { return e.sum.Sum(nil) }

// Read returns sealed bytes. An error of the plaintext reader, including a
// stream shorter than its size (io.ErrUnexpectedEOF), is returned as is.
func (e *Encrypter) Read(p []byte) (int, error) {
	for len(e.out) == 0 {
		if e.err != nil {
			return 0, e.err
		}
		if e.next == e.chunks {
			return 0, io.EOF
		}
		n := int(min(int64(e.st.ChunkSize), e.left))
		plain := e.buf[:n]
		if _, err := io.ReadFull(e.r, plain); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			e.err = err
			return 0, err
		}
		e.sum.Write(plain)
		e.left -= int64(n)
		i := e.next
		e.next++
		e.out = e.aead.Seal(plain[:0], chunkNonce(e.st.Nonce, i), plain, chunkAD(i, e.next == e.chunks))
	}
	n := copy(p, e.out)
	e.out = e.out[n:]
	return n, nil
}

// Fetch returns n stored bytes of an object from offset off of its
// segments.
type Fetch func(off, n int64) (io.ReadCloser, error)

// NewReader returns the plaintext bytes [off, off+n) of an object encrypted
// as streams, whose stored bytes fetch reads. Data keys are opened by kek,
// the first one here and the others as the reader reaches their streams,
// so that memory does not grow with the number of streams; every chunk the
// range touches, and only those, is fetched and opened.
// Errors: depot.ErrBadRequest for a range outside the object; wrapping
// ErrUnknownKey or depot.ErrCorrupt when a data key does not open. A chunk
// that does not open makes Read fail with depot.ErrCorrupt, before any of
// its bytes are returned.
func NewReader(kek KEK, streams []depot.Stream, off, n int64, fetch Fetch) (io.ReadCloser, error) {
	var total int64
	for _, st := range streams {
		if st.ChunkSize <= 0 || st.ChunkSize > maxChunkSize || st.Size < 0 || len(st.Nonce) != nonceSize {
			return nil, fmt.Errorf("%w: malformed stream record", depot.ErrCorrupt)
		}
		total += st.Size
	}
	if off < 0 || n < 0 || off+n > total {
		return nil, fmt.Errorf("%w: range %d+%d outside %d bytes", depot.ErrBadRequest, off, n, total)
	}
	r := &reader{kek: kek, fetch: fetch, left: n}
	var stored int64
	for _, st := range streams {
		start, end := max(off, 0), min(off+n, st.Size)
		if n > 0 && start < end {
			r.parts = append(r.parts, part{st: st, storedAt: stored, from: start, to: end})
		}
		off -= st.Size
		stored += st.StoredSize()
	}
	if len(r.parts) > 0 {
		if err := r.parts[0].openKey(kek); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// part is the run of one stream that a reader returns: plaintext [from,
// to) of the stream, whose stored bytes begin at storedAt in the object.
type part struct {
	st       depot.Stream
	aead     cipher.AEAD // nil until openKey
	storedAt int64
	from, to int64
}

func (p *part) openKey(kek KEK) error {
	dk, err := kek.open(p.st.KeyID, p.st.Key)
	if err != nil {
		return err
	}
	p.aead = newGCM(dk)
	return nil
}

type reader struct {
	kek   KEK
	fetch Fetch
	parts []part
	left  int64

	rc     io.ReadCloser // stored bytes of the current part's chunks
	chunk  uint64        // index of the next chunk of the current part
	buf    []byte
	out    []byte
	err    error
	closed bool
}

func (r *reader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.left == 0 {
			return 0, io.EOF
		}
		if err := r.fill(); err != nil {
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	r.left -= int64(n)
	return n, nil
}

// fill opens the next chunk into r.out.
func (r *reader) fill() error {
	pt := &r.parts[0]
	cs := int64(pt.st.ChunkSize)
	sealed := cs + depot.StreamOverhead
	if pt.aead == nil {
		if err := pt.openKey(r.kek); err != nil {
			return err
		}
	}
	if r.rc == nil {
		first, last := pt.from/cs, (pt.to-1)/cs
		rc, err := r.fetch(pt.storedAt+first*sealed, (last-first)*sealed+min(sealed, pt.st.StoredSize()-last*sealed))
		if err != nil {
			return err
		}
		r.rc, r.chunk = rc, uint64(first)
		if cap(r.buf) < int(sealed) {
			r.buf = make([]byte, sealed)
		}
	}
	i := r.chunk
	start := int64(i) * cs
	plainLen := min(cs, pt.st.Size-start)
	b := r.buf[:plainLen+depot.StreamOverhead]
	if _, err := io.ReadFull(r.rc, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: stored stream cut short at chunk %d", depot.ErrCorrupt, i)
		}
		return err
	}
	plain, err := pt.aead.Open(b[:0], chunkNonce(pt.st.Nonce, i), b, chunkAD(i, uint64(pt.st.Chunks()) == i+1))
	if err != nil {
		return fmt.Errorf("%w: encrypted chunk %d does not open", depot.ErrCorrupt, i)
	}
	lo, hi := max(pt.from-start, 0), min(pt.to-start, int64(len(plain)))
	r.out = plain[lo:hi]
	r.chunk++
	if start+cs >= pt.to { // the part's last chunk
		err := r.rc.Close()
		r.rc = nil
		r.parts = r.parts[1:]
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.rc != nil {
		return r.rc.Close()
	}
	return nil
}
