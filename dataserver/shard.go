package dataserver

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"depot"
)

// handle is one open generation of a shard file. Readers and waiting
// writers hold a reference, so a compaction can swap in a new file while
// they finish with the old one. It also carries the group-commit state.
//
// Durability is counted in records, not bytes: records are completed out
// of file order (a slow body fills its reserved region while later ones
// complete), so an fsync covers the records completed before it started,
// wherever they lie. Each completed record takes the next sequence number;
// an fsync that read seq = n before it started makes records 1..n durable.
type handle struct {
	f    *os.File
	refs atomic.Int64
	seq  atomic.Int64 // records completed through it

	mu      sync.Mutex
	synced  int64         // records known durable (a seq value)
	running bool          // an fsync (or its gathering delay) is under way
	done    chan struct{} // closed when the running fsync ends
	err     error         // a failed fsync: nothing more is acknowledged
}

func newHandle(f *os.File) *handle {
	h := &handle{f: f, done: make(chan struct{})}
	h.refs.Store(1)
	return h
}

func (h *handle) ref() { h.refs.Add(1) }

func (h *handle) unref() {
	if h.refs.Add(-1) == 0 {
		h.f.Close()
	}
}

// markSynced declares everything durable (after a compaction copied it
// into a file that was synced) and wakes waiters.
func (h *handle) markSynced() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.synced = math.MaxInt64
	if !h.running {
		close(h.done)
		h.done = make(chan struct{})
	}
}

// syncTo returns once records up to sequence number seq are durable. If no
// fsync is running it becomes the leader: it calls gather (which may wait
// for companions), then fsyncs everything completed so far for all
// waiters.
func (h *handle) syncTo(ctx context.Context, seq int64, gather func()) error {
	for {
		h.mu.Lock()
		if h.synced >= seq {
			h.mu.Unlock()
			return nil
		}
		if h.err != nil {
			err := h.err
			h.mu.Unlock()
			return err
		}
		if !h.running {
			h.running = true
			h.mu.Unlock()
			if gather != nil {
				gather()
			}
			target := h.seq.Load()
			err := fdatasync(h.f)
			h.mu.Lock()
			h.running = false
			if err != nil {
				h.err = fmt.Errorf("%w: fsync failed, file is read-only: %w", depot.ErrReadOnly, err)
			} else if target > h.synced {
				h.synced = target
			}
			close(h.done)
			h.done = make(chan struct{})
			h.mu.Unlock()
			continue
		}
		ch := h.done
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// shardFile is one shard file: shard idx of volume vol.
type shardFile struct {
	s     *Store
	key   shardKey
	dir   *dataDir
	path  string
	block int64

	// appendMu serialises the allocation of file space, the publication
	// of records and the compaction swap. It is never held while a
	// client's bytes are awaited (append.go).
	appendMu   sync.Mutex
	end        int64                // appendMu: offset of the next record
	closed     bool                 // appendMu
	broken     error                // appendMu: a failed truncate left the tail unknown
	pending    map[*region]struct{} // appendMu: regions reserved for bodies still arriving
	pubs       int64                // appendMu: records published, for checkpoints
	compacting bool                 // appendMu: a compaction is copying the file
	clog       []loggedRecord       // appendMu: records published while compacting

	mu        sync.RWMutex // guards the fields below
	idx       *index
	h         *handle
	gen       uint64
	fileBytes int64
	liveN     int64 // live needles
	liveBytes int64 // their data bytes
	keptBytes int64 // record bytes the index refers to (live and tombstones)

	inflight atomic.Int32  // writes between start and end of their append
	kick     chan struct{} // nudged when an append ends

	ckptMu    sync.Mutex // serialises checkpoints and compactions
	ckptEnd   int64      // ckptMu: end covered by the last checkpoint
	ckptGen   uint64     // ckptMu: its generation
	ckptBytes int64      // ckptMu: its size on disk
	ckptPubs  int64      // ckptMu: records published when it was taken
}

func (f *shardFile) idxPath() string {
	return filepath.Join(f.dir.path, fmt.Sprintf("%d_%d.idx", f.key.vol, f.key.idx))
}

func randGen() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}

func newShardFile(s *Store, d *dataDir, k shardKey, path string, block int64) *shardFile {
	return &shardFile{s: s, key: k, dir: d, path: path, block: block, kick: make(chan struct{}, 1), idx: newIndex(0),
		pending: make(map[*region]struct{})}
}

// createShardFile makes a new, empty shard file: the superblock is
// written to a temporary name, synced and renamed, so a crash never
// leaves a shard file without a whole superblock.
func createShardFile(s *Store, d *dataDir, k shardKey, block int) (*shardFile, error) {
	path := filepath.Join(d.path, shardName(k))
	sb := superblock{Version: formatV1, BlockSize: uint32(block), Volume: k.vol, Index: uint32(k.idx), Gen: randGen()}
	tmp := path + ".new"
	err := func() error {
		fh, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := fh.Write(sb.encode()); err != nil {
			fh.Close()
			return err
		}
		if err := fdatasync(fh); err != nil {
			fh.Close()
			return err
		}
		if err := fh.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
		return syncDir(d.path)
	}()
	if err != nil {
		os.Remove(tmp)
		err = diskFullErr(err)
		if errors.Is(err, depot.ErrDiskFull) {
			d.readOnly.Store(true)
		}
		return nil, fmt.Errorf("create %v: %w", k, err)
	}
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("create %v: %w", k, err)
	}
	f := newShardFile(s, d, k, path, int64(block))
	f.gen = sb.Gen
	f.end, f.fileBytes = superSize, superSize
	f.h = newHandle(fh)
	d.used.Add(superSize)
	s.log.Info("created shard file", "path", path)
	return f, nil
}

// openShardFile opens an existing shard file and recovers its index. A
// file whose superblock cannot be read is an error wrapping ErrCorrupt.
func openShardFile(s *Store, d *dataDir, k shardKey, path string) (*shardFile, error) {
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open %v: %w", k, err)
	}
	f, err := recoverShardFile(s, d, k, path, fh)
	if err != nil {
		fh.Close()
		return nil, err
	}
	return f, nil
}

func recoverShardFile(s *Store, d *dataDir, k shardKey, path string, fh *os.File) (*shardFile, error) {
	fi, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	sbb := make([]byte, superSize)
	if _, err := fh.ReadAt(sbb, 0); err != nil {
		return nil, fmt.Errorf("%v: %s: %w: superblock: %w", k, path, depot.ErrCorrupt, err)
	}
	sb, err := decodeSuperblock(sbb)
	if err != nil {
		return nil, fmt.Errorf("%v: %s: %w", k, path, err)
	}
	if sb.Volume != k.vol || int(sb.Index) != k.idx {
		return nil, fmt.Errorf("%v: %s: %w: superblock names shard %d/%d", k, path, depot.ErrCorrupt, sb.Volume, sb.Index)
	}
	f := newShardFile(s, d, k, path, int64(sb.BlockSize))
	f.gen = sb.Gen
	covered := f.loadCheckpoint(size)
	start := time.Now()
	end, err := f.scan(fh, covered, size)
	if err != nil {
		return nil, err
	}
	if end != size || covered != end {
		// Make what recovery kept durable before anything builds on it.
		if err := fdatasync(fh); err != nil {
			return nil, err
		}
	}
	s.log.Info("opened shard file", "path", path, "needles", f.liveN, "checkpoint", covered, "scanned", end-covered, "took", time.Since(start))
	f.end, f.fileBytes = end, end
	f.h = newHandle(fh)
	d.used.Add(end)
	return f, nil
}

// loadCheckpoint loads the .idx checkpoint into f.idx if it is valid and
// matches the file, and returns the offset it covers (superSize if none).
func (f *shardFile) loadCheckpoint(fileSize int64) int64 {
	f.idx = newIndex(0)
	b, err := os.ReadFile(f.idxPath())
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			f.s.log.Warn("index checkpoint unreadable, scanning whole file", "path", f.idxPath(), "err", err)
		}
		return superSize
	}
	fail := func(why string) int64 {
		f.s.log.Warn("index checkpoint unusable, scanning whole file", "path", f.idxPath(), "reason", why)
		f.idx = newIndex(0)
		return superSize
	}
	const fixed = 40
	if len(b) < fixed+4 || string(b[:8]) != indexMagic {
		return fail("bad magic or short")
	}
	if crc32c(b[:len(b)-4]) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return fail("checksum mismatch")
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != formatV1 {
		return fail(fmt.Sprintf("unknown version %d", v))
	}
	gen := binary.LittleEndian.Uint64(b[16:])
	covered := int64(binary.LittleEndian.Uint64(b[24:]))
	n := binary.LittleEndian.Uint64(b[32:])
	switch {
	case gen != f.gen:
		return fail("belongs to another generation of the shard file")
	case covered < superSize || covered > fileSize || covered%recordAlign != 0:
		return fail(fmt.Sprintf("covers %d bytes of a %d-byte file", covered, fileSize))
	case n > uint64(len(b))/16 || uint64(len(b)) != fixed+4+16*n: // n first: 16*n may wrap
		return fail("length does not match entry count")
	}
	f.idx = newIndex(int(n))
	for p := fixed; p < len(b)-4; p += 16 {
		id := depot.NeedleID(binary.LittleEndian.Uint64(b[p:]))
		l := loc(binary.LittleEndian.Uint64(b[p+8:]))
		if !l.valid() || l.offset() >= covered {
			return fail("entry outside the covered range")
		}
		f.idx.put(id, l)
	}
	f.idx.each(func(_ depot.NeedleID, l loc) { f.account(l, 1) })
	f.ckptEnd, f.ckptGen, f.ckptBytes = covered, gen, int64(len(b))
	return covered
}

// account adds (sign 1) or removes (sign -1) l from the file's counters.
func (f *shardFile) account(l loc, sign int64) {
	f.keptBytes += sign * recordLen(l.size(), f.block)
	if !l.deleted() {
		f.liveN += sign
		f.liveBytes += sign * l.size()
	}
}

// apply points the index at the record h found at off.
func (f *shardFile) apply(h header, off int64) {
	l := makeLoc(off, h.Size, h.tombstone())
	if old, ok := f.idx.put(h.Needle, l); ok {
		f.account(old, -1)
	}
	f.account(l, 1)
}

// recordReader reads and verifies needle records from a byte stream.
type recordReader struct {
	br    *bufio.Reader
	gen   uint64
	block int64
	buf   []byte
}

func newRecordReader(gen uint64, block int64) *recordReader {
	return &recordReader{br: bufio.NewReaderSize(nil, 1<<20), gen: gen, block: block, buf: make([]byte, block+crcSize)}
}

// next reads one record of at most limit bytes: the header and then every
// block, checking each checksum. Verified bytes (the header as read, then
// blocks with their checksums and the padding) go to body when not nil.
func (rr *recordReader) next(limit int64, body func(hdr, b []byte) error) (header, int64, error) {
	hb := rr.buf[:headerSize]
	if _, err := io.ReadFull(rr.br, hb); err != nil {
		return header{}, 0, fmt.Errorf("%w: header: %w", depot.ErrCorrupt, err)
	}
	h, err := decodeHeader(hb, rr.gen)
	if err != nil {
		return header{}, 0, err
	}
	rl := recordLen(h.Size, rr.block)
	if rl > limit {
		return header{}, 0, fmt.Errorf("%w: record of %d bytes runs past the end of the file", depot.ErrCorrupt, rl)
	}
	if body != nil {
		if err := body(hb, nil); err != nil {
			return header{}, 0, err
		}
	}
	n := headerSize
	for i, left := int64(0), h.Size; left > 0; i++ {
		bl := min(left, rr.block)
		b := rr.buf[:bl+crcSize]
		if _, err := io.ReadFull(rr.br, b); err != nil {
			return header{}, 0, fmt.Errorf("%w: needle %x block %d: %w", depot.ErrCorrupt, uint64(h.Needle), i, err)
		}
		if blockCRC(h.Needle, i, b[:bl]) != binary.LittleEndian.Uint32(b[bl:]) {
			return header{}, 0, fmt.Errorf("%w: needle %x block %d", depot.ErrCorrupt, uint64(h.Needle), i)
		}
		if body != nil {
			if err := body(nil, b); err != nil {
				return header{}, 0, err
			}
		}
		left -= bl
		n += int(bl + crcSize)
	}
	if pad := rl - int64(n); pad > 0 {
		p := rr.buf[:pad]
		if _, err := io.ReadFull(rr.br, p); err != nil {
			return header{}, 0, fmt.Errorf("%w: padding: %w", depot.ErrCorrupt, err)
		}
		if body != nil {
			if err := body(nil, p); err != nil {
				return header{}, 0, err
			}
		}
	}
	return h, rl, nil
}

// scan applies the records in [from, size) to the index, verifying every
// block. A damaged record followed by a valid one is skipped and
// reported; a damaged record with nothing valid after it is a torn tail
// and is cut off. A record whose header is all zeros was never finished
// (its header is written last: a body that failed, or was still arriving
// at a crash, while later records completed): it is skipped as garbage,
// not counted as damage. It returns the end of the last valid record.
func (f *shardFile) scan(fh *os.File, from, size int64) (int64, error) {
	rr := newRecordReader(f.gen, f.block)
	off := from
	rr.br.Reset(io.NewSectionReader(fh, off, size-off))
	for off < size {
		h, rl, err := rr.next(size-off, nil)
		if err == nil {
			f.apply(h, off)
			off += rl
			continue
		}
		next, rerr := f.resync(fh, off+recordAlign, size)
		if rerr != nil {
			return 0, fmt.Errorf("%v: recovery: %w", f.key, rerr)
		}
		if next < 0 {
			f.s.log.Warn("cutting torn tail off shard file", "path", f.path, "offset", off, "bytes", size-off, "reason", err)
			if err := fh.Truncate(off); err != nil {
				return 0, fmt.Errorf("%v: cut torn tail: %w", f.key, err)
			}
			return off, nil
		}
		if unfinished(fh, off) {
			f.s.log.Info("skipping unfinished record in shard file", "path", f.path, "from", off, "to", next)
		} else {
			f.s.countFailure()
			f.s.log.Error("skipping damaged region of shard file", "path", f.path, "from", off, "to", next, "reason", err)
		}
		off = next
		rr.br.Reset(io.NewSectionReader(fh, off, size-off))
	}
	return off, nil
}

// unfinished reports whether the record at off has an all-zero header:
// the place of a record whose header was never written.
func unfinished(fh *os.File, off int64) bool {
	var hb [headerSize]byte
	if _, err := fh.ReadAt(hb[:], off); err != nil {
		return false
	}
	return hb == [headerSize]byte{}
}

// resync returns the offset of the first valid record at or after from,
// or -1 if there is none.
func (f *shardFile) resync(fh *os.File, from, size int64) (int64, error) {
	const window = 1 << 20
	buf := make([]byte, window+headerSize)
	rr := newRecordReader(f.gen, f.block)
	for base := from; base < size; base += window {
		n, err := fh.ReadAt(buf[:min(int64(len(buf)), size-base)], base)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for p := 0; p+headerSize <= n && p < window; p += recordAlign {
			if string(buf[p:p+4]) != needleMagic {
				continue
			}
			if _, err := decodeHeader(buf[p:p+headerSize], f.gen); err != nil {
				continue
			}
			at := base + int64(p)
			rr.br.Reset(io.NewSectionReader(fh, at, size-at))
			if _, _, err := rr.next(size-at, nil); err == nil {
				return at, nil
			}
		}
	}
	return -1, nil
}

// readHeader reads and decodes the record header at l.
func (f *shardFile) readHeader(h *handle, gen uint64, id depot.NeedleID, l loc) (header, error) {
	var hb [headerSize]byte
	if _, err := h.f.ReadAt(hb[:], l.offset()); err != nil {
		return header{}, f.corrupt(id, fmt.Errorf("%w: header: %w", depot.ErrCorrupt, err))
	}
	hd, err := decodeHeader(hb[:], gen)
	if err == nil && (hd.Needle != id || hd.Size != l.size() || hd.tombstone() != l.deleted()) {
		err = fmt.Errorf("%w: header at %d is not this needle's", depot.ErrCorrupt, l.offset())
	}
	if err != nil {
		return header{}, f.corrupt(id, err)
	}
	return hd, nil
}

func (f *shardFile) corrupt(id depot.NeedleID, err error) error {
	f.s.countFailure()
	f.s.log.Error("checksum failure", "shard", f.key.String(), "needle", fmt.Sprintf("%x", uint64(id)), "err", err)
	return f.needleErr(id, err)
}

// pin looks needle id up and, when it is live, takes a reference on the
// file handle that holds its record (the caller unrefs it), so that a
// compaction swapping the file meanwhile cannot close it under the
// caller. It returns the record's location and the generation its header
// checksum is seeded with; ok is false for a needle that is not live.
func (f *shardFile) pin(id depot.NeedleID) (l loc, h *handle, gen uint64, ok bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	l, ok = f.idx.get(id)
	if !ok || l.deleted() {
		return 0, nil, 0, false
	}
	f.h.ref()
	return l, f.h, f.gen, true
}

// open pins the needle's record; with readFirst it reads the header and
// the first block in one read, else the header alone.
func (f *shardFile) open(id depot.NeedleID, cookie depot.Cookie, readFirst bool) (*Needle, error) {
	l, h, gen, ok := f.pin(id)
	if !ok {
		return nil, f.needleErr(id, depot.ErrNotFound)
	}
	n := &Needle{f: f, h: h, id: id, off: l.offset(), size: l.size()}
	length := int64(headerSize)
	if readFirst && n.size > 0 {
		length += min(n.size, f.block) + crcSize
	}
	var buf []byte
	if length <= firstBufSize {
		n.pbuf = firstPool.Get().(*[]byte)
		buf = (*n.pbuf)[:length]
	} else {
		buf = make([]byte, length)
	}
	if _, err := h.f.ReadAt(buf, n.off); err != nil {
		n.Close()
		return nil, f.corrupt(id, fmt.Errorf("%w: short record: %w", depot.ErrCorrupt, err))
	}
	hd, err := decodeHeader(buf, gen)
	if err == nil && (hd.Needle != id || hd.Size != n.size || hd.tombstone()) {
		err = fmt.Errorf("%w: header at %d is not this needle's", depot.ErrCorrupt, n.off)
	}
	if err != nil {
		n.Close()
		return nil, f.corrupt(id, err)
	}
	if hd.Cookie != cookie {
		n.Close()
		return nil, f.needleErr(id, depot.ErrNotFound)
	}
	if length > headerSize {
		n.first = buf[headerSize:]
	}
	return n, nil
}

// Needle is an open needle whose cookie and header were checked. It pins
// the shard file generation it was found in, so reads stay consistent
// even if a compaction or an overwrite happens meanwhile.
type Needle struct {
	f     *shardFile
	h     *handle
	id    depot.NeedleID
	off   int64 // record offset
	size  int64
	first []byte  // block 0 and its checksum, when read by Open
	pbuf  *[]byte // pooled buffer holding first
	done  atomic.Bool
}

// firstPool holds buffers for a header and the first block.
const firstBufSize = headerSize + defaultBlock + crcSize

var firstPool = sync.Pool{New: func() any { b := make([]byte, firstBufSize); return &b }}

// Size returns the needle's size in bytes.
func (n *Needle) Size() int64 { return n.size }

// Close releases the needle. Safe to call twice.
func (n *Needle) Close() {
	if n.done.Swap(true) {
		return
	}
	n.first = nil
	if n.pbuf != nil {
		firstPool.Put(n.pbuf)
		n.pbuf = nil
	}
	n.h.unref()
}

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 64*(defaultBlock+crcSize)); return &b }}

// ReadRange writes length bytes from off to w, verifying each block
// touched before writing any of its bytes. A block that fails its
// checksum stops the read with an error wrapping ErrCorrupt; the bytes
// already written were all verified.
func (n *Needle) ReadRange(ctx context.Context, w io.Writer, off, length int64) (int64, error) {
	if off < 0 || length < 0 || off+length > n.size {
		return 0, fmt.Errorf("%w: range %d+%d outside a %d-byte needle", depot.ErrBadRequest, off, length, n.size)
	}
	if length == 0 {
		return 0, nil
	}
	B := n.f.block
	first, last := off/B, (off+length-1)/B
	var written int64
	var buf []byte
	for i := first; i <= last; {
		if i == 0 && n.first != nil {
			m, err := n.emit(w, 0, n.first, off, length)
			written += m
			if err != nil {
				return written, err
			}
			i++
			continue
		}
		if err := ctx.Err(); err != nil {
			return written, err
		}
		if buf == nil {
			bp := chunkPool.Get().(*[]byte)
			defer chunkPool.Put(bp)
			buf = *bp
			if int64(len(buf)) < B+crcSize {
				buf = make([]byte, B+crcSize)
			}
		}
		span := int64(0)
		j := i
		for ; j <= last && span+n.blockLen(j)+crcSize <= int64(len(buf)); j++ {
			span += n.blockLen(j) + crcSize
		}
		if _, err := n.h.f.ReadAt(buf[:span], n.off+headerSize+i*(B+crcSize)); err != nil {
			return written, n.f.corrupt(n.id, fmt.Errorf("%w: short read: %w", depot.ErrCorrupt, err))
		}
		p := int64(0)
		for ; i < j; i++ {
			bl := n.blockLen(i) + crcSize
			m, err := n.emit(w, i, buf[p:p+bl], off, length)
			written += m
			if err != nil {
				return written, err
			}
			p += bl
		}
	}
	return written, nil
}

func (n *Needle) blockLen(i int64) int64 { return min(n.f.block, n.size-i*n.f.block) }

// emit verifies block i (data then checksum in blk) and writes the part
// of it inside [off, off+length) to w.
func (n *Needle) emit(w io.Writer, i int64, blk []byte, off, length int64) (int64, error) {
	B := n.f.block
	bl := int64(len(blk)) - crcSize
	data := blk[:bl]
	if blockCRC(n.id, i, data) != binary.LittleEndian.Uint32(blk[bl:]) {
		return 0, n.f.corrupt(n.id, fmt.Errorf("%w: block %d", depot.ErrCorrupt, i))
	}
	lo, hi := max(off-i*B, 0), min(off+length-i*B, bl)
	m, err := w.Write(data[lo:hi])
	return int64(m), err
}

func (f *shardFile) list(ctx context.Context) ([]NeedleInfo, error) {
	type ent struct {
		id depot.NeedleID
		l  loc
	}
	f.mu.RLock()
	ents := make([]ent, 0, f.idx.Len())
	f.idx.each(func(id depot.NeedleID, l loc) { ents = append(ents, ent{id, l}) })
	h, gen := f.h, f.gen
	h.ref()
	f.mu.RUnlock()
	defer h.unref()
	slices.SortFunc(ents, func(a, b ent) int { return cmpU64(uint64(a.id), uint64(b.id)) })
	out := make([]NeedleInfo, 0, len(ents))
	for i, e := range ents {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		hd, err := f.readHeader(h, gen, e.id, e.l)
		if err != nil {
			continue // counted and logged; repair will notice it missing
		}
		out = append(out, NeedleInfo{ID: e.id, Cookie: hd.Cookie, Size: hd.Size, Deleted: hd.tombstone(), Record: e.l.offset()})
	}
	return out, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (f *shardFile) status() FileStatus {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return FileStatus{
		Volume: f.key.vol, Index: f.key.idx, Dir: f.dir.path,
		Needles: f.liveN, LiveBytes: f.liveBytes, FileBytes: f.fileBytes,
		GarbageBytes: f.fileBytes - superSize - f.keptBytes,
		MaxNeedle:    f.idx.top,
	}
}

// checkpoint writes f's index to its .idx file if it changed.
func (f *shardFile) checkpoint() error {
	f.ckptMu.Lock()
	defer f.ckptMu.Unlock()
	return f.checkpointLocked()
}

func (f *shardFile) checkpointLocked() error {
	f.appendMu.Lock()
	if f.closed {
		f.appendMu.Unlock()
		return ErrClosed
	}
	// A checkpoint covers the file up to the first region still awaiting
	// its body: a record completed there later must be found by the scan
	// that follows the checkpoint on open. Records published beyond it are
	// left out; that scan finds them.
	end := f.end
	for rg := range f.pending {
		end = min(end, rg.start)
	}
	pubs := f.pubs
	f.mu.RLock()
	h, gen := f.h, f.gen
	if end == f.ckptEnd && gen == f.ckptGen && pubs == f.ckptPubs {
		f.mu.RUnlock()
		f.appendMu.Unlock()
		return nil
	}
	b := make([]byte, 40, 40+16*f.idx.Len()+4)
	copy(b, indexMagic)
	binary.LittleEndian.PutUint16(b[8:], formatV1)
	binary.LittleEndian.PutUint64(b[16:], gen)
	binary.LittleEndian.PutUint64(b[24:], uint64(end))
	n := 0
	f.idx.each(func(id depot.NeedleID, l loc) {
		if l.offset() < end {
			b = binary.LittleEndian.AppendUint64(b, uint64(id))
			b = binary.LittleEndian.AppendUint64(b, uint64(l))
			n++
		}
	})
	binary.LittleEndian.PutUint64(b[32:], uint64(n))
	seq := h.seq.Load()
	h.ref()
	f.mu.RUnlock()
	f.appendMu.Unlock()
	defer h.unref()
	b = binary.LittleEndian.AppendUint32(b, crc32c(b))
	// The checkpoint may only claim what is durable: every record
	// published when it was taken.
	if err := h.syncTo(context.Background(), seq, nil); err != nil {
		return fmt.Errorf("%v: checkpoint: %w", f.key, err)
	}
	path := f.idxPath()
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, b); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%v: checkpoint: %w", f.key, diskFullErr(err))
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("%v: checkpoint: %w", f.key, err)
	}
	if err := syncDir(f.dir.path); err != nil {
		return fmt.Errorf("%v: checkpoint: %w", f.key, err)
	}
	f.dir.used.Add(int64(len(b)) - f.ckptBytes)
	f.ckptEnd, f.ckptGen, f.ckptBytes, f.ckptPubs = end, gen, int64(len(b)), pubs
	return nil
}

func writeFileSync(path string, b []byte) error {
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := fh.Write(b); err != nil {
		fh.Close()
		return err
	}
	if err := fdatasync(fh); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// close makes f durable and releases its file. Appends under way finish
// first; a write still receiving its body fails when it completes.
func (f *shardFile) close() error {
	f.appendMu.Lock()
	defer f.appendMu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	f.mu.RLock()
	h := f.h
	f.mu.RUnlock()
	err := h.syncTo(context.Background(), h.seq.Load(), nil)
	h.unref()
	if err != nil {
		return fmt.Errorf("%v: close: %w", f.key, err)
	}
	return nil
}
