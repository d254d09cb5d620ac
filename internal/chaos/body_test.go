package chaos

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
)

// Bodies. Every write of the run has its own id, and its body is a pure
// function of (run seed, write id, size): a header naming the write,
//
//	"<write id, 16 hex> chaos <size> bytes\n"
//
// cut to the size when the body is smaller, then pseudo-random bytes from
// ChaCha8 seeded by the run seed, the write id and the 4 KiB block number.
// So any byte range of any write can be regenerated to check a ranged
// read, and any read can be traced to the write that produced it (by the
// SHA-256 of the whole body, or by its header).

const genBlock = 4096

// bodyGen produces the bytes of one write.
type bodyGen struct {
	seed uint64
	id   uint64
	size int64
	hdr  []byte
}

func newBody(seed, id uint64, size int64) *bodyGen {
	return &bodyGen{seed: seed, id: id, size: size, hdr: []byte(fmt.Sprintf("%016x chaos %d bytes\n", id, size))}
}

// block fills b (genBlock bytes) with block i of the body's random part.
func (g *bodyGen) block(i int64, b []byte) {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[0:], g.seed)
	binary.LittleEndian.PutUint64(s[8:], g.id)
	binary.LittleEndian.PutUint64(s[16:], uint64(i))
	copy(s[24:], "chaosblk")
	c := rand.NewChaCha8(s)
	c.Read(b)
}

// readAt fills p with the body's bytes from off (p must lie inside it).
func (g *bodyGen) readAt(p []byte, off int64) {
	var blk [genBlock]byte
	for len(p) > 0 {
		if off < int64(len(g.hdr)) {
			n := copy(p, g.hdr[off:])
			p, off = p[n:], off+int64(n)
			continue
		}
		g.block(off/genBlock, blk[:])
		n := copy(p, blk[off%genBlock:])
		p, off = p[n:], off+int64(n)
	}
}

// slice returns the body's bytes [off, off+n), cut at its end.
func (g *bodyGen) slice(off, n int64) []byte {
	if off >= g.size {
		return nil
	}
	n = min(n, g.size-off)
	p := make([]byte, n)
	g.readAt(p, off)
	return p
}

// reader streams the body.
func (g *bodyGen) reader() io.Reader { return &genReader{g: g} }

type genReader struct {
	g   *bodyGen
	off int64
}

func (r *genReader) Read(p []byte) (int, error) {
	if r.off >= r.g.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.g.size-r.off, 1<<20)
	r.g.readAt(p[:n], r.off)
	r.off += n
	return int(n), nil
}

// sum returns the SHA-256 of the whole body.
func (g *bodyGen) sum() [32]byte {
	h := sha256.New()
	io.CopyBuffer(h, g.reader(), make([]byte, 256<<10))
	var s [32]byte
	h.Sum(s[:0])
	return s
}
