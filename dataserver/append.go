package dataserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"depot"
)

// This file holds the write path of a shard file. A record whose bytes
// are all at hand (a body of up to bufBlocks blocks, read before any lock
// is taken, or a tombstone) is written under the append lock in one
// piece. A longer body is never read under the lock: its record's place
// is reserved under the lock (a region of the file, its length known from
// the declared size, or, for a body of unknown length, once the body has
// been spooled to a temporary file), the lock is released while the body
// fills the region, and the record is published under the lock again: its
// header written last, then the index updated. Until then its header is
// zero, so neither a reader, a crash recovery nor a compaction ever takes
// it for a record; a region whose write fails is left as such garbage (or
// cut off when it is the file's last).

// ErrCookieConflict is returned by Write for a needle id that is live
// with another cookie: two needles were given the same id, and only
// repair, rebuilding what the nameserver records, may replace one
// (Store.Rewrite). It wraps depot.ErrExists (409 on the wire).
var ErrCookieConflict = fmt.Errorf("%w: needle id is live with another cookie", depot.ErrExists)

// errMoved is returned by publish when a compaction swapped the file
// while the region's body arrived: the region went with the old file.
var errMoved = errors.New("shard file compacted under the write")

// maxMoves bounds how often one write follows its file through
// compactions before it gives up.
const maxMoves = 4

// region is the place of one record reserved in a shard file for a body
// still arriving. It holds a reference on the handle it was reserved in.
type region struct {
	h          *handle
	gen        uint64 // generation of h's file, which seeds the header
	start, end int64
}

// loggedRecord is a record published while a compaction runs, which the
// compaction copies to the new file after its first pass.
type loggedRecord struct {
	id depot.NeedleID
	l  loc
}

// current returns the open file generation and its header seed.
func (f *shardFile) current() (*handle, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.h, f.gen
}

// setEnd moves the offset of the next record. appendMu must be held.
func (f *shardFile) setEnd(end int64) {
	f.end = end
	f.mu.Lock()
	f.fileBytes = end
	f.mu.Unlock()
}

// grow allocates n bytes at the end of the file, applying the directory
// byte limit and the largest offset the index can describe. appendMu must
// be held.
func (f *shardFile) grow(n int64) error {
	if f.end+n > maxFileOffset {
		return fmt.Errorf("%w: shard file reached its maximum size", depot.ErrDiskFull)
	}
	if err := f.room(n); err != nil {
		return err
	}
	f.dir.used.Add(n)
	f.setEnd(f.end + n)
	return nil
}

// room reports ErrDiskFull, turning the directory read-only, when n more
// bytes would take it past MaxDirBytes.
func (f *shardFile) room(n int64) error {
	if lim := f.s.cfg.MaxDirBytes; lim > 0 && f.dir.used.Load()+n > lim {
		return f.full(fmt.Errorf("%w: %s holds more than its %d-byte limit", depot.ErrDiskFull, f.dir.path, lim))
	}
	return nil
}

// full classifies a write error; a full disk turns the directory
// read-only.
func (f *shardFile) full(err error) error {
	if err = diskFullErr(err); errors.Is(err, depot.ErrDiskFull) {
		if !f.dir.readOnly.Swap(true) {
			f.s.log.Error("data directory full, now read-only", "dir", f.dir.path, "err", err)
		}
	}
	return err
}

// shrink cuts the file back to end, removing a failed append that was
// the last thing in it. appendMu must be held.
func (f *shardFile) shrink(h *handle, end int64) {
	if err := h.f.Truncate(end); err != nil {
		f.broken = err
		f.s.log.Error("cannot remove failed append, shard file is read-only", "path", f.path, "err", err)
		return
	}
	f.dir.used.Add(end - f.end)
	f.setEnd(end)
}

// writeAt writes b at off through h, applying the test fault hook.
func (f *shardFile) writeAt(h *handle, b []byte, off int64) error {
	if hook := f.s.cfg.writeFault; hook != nil {
		if err := hook(f.path, off, len(b)); err != nil {
			return f.full(err)
		}
	}
	_, err := h.f.WriteAt(b, off)
	return f.full(err)
}

// checkAppend reports why f takes no appends. appendMu must be held.
func (f *shardFile) checkAppend(tombstone bool) error {
	switch {
	case f.closed:
		return ErrClosed
	case f.broken != nil:
		return fmt.Errorf("%v: %w: %w", f.key, depot.ErrReadOnly, f.broken)
	case f.dir.readOnly.Load() && !tombstone:
		return fmt.Errorf("%v: %w: data directory %s is read-only after it filled up", f.key, depot.ErrDiskFull, f.dir.path)
	}
	return nil
}

// conflict reports ErrCookieConflict when id is live in f with a cookie
// other than cookie, and the error of a live record whose header cannot
// be read.
func (f *shardFile) conflict(id depot.NeedleID, cookie depot.Cookie) error {
	l, h, gen, ok := f.pin(id)
	if !ok {
		return nil
	}
	defer h.unref()
	hd, err := f.readHeader(h, gen, id, l)
	if err != nil {
		return err
	}
	if hd.Cookie != cookie {
		return fmt.Errorf("%w (cookie %08x, not %08x)", ErrCookieConflict, uint32(hd.Cookie), uint32(cookie))
	}
	return nil
}

func (f *shardFile) appendDone() {
	f.inflight.Add(-1)
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// gather waits, for at most the group commit delay, while other appends
// are under way, so that one fsync covers them too.
func (f *shardFile) gather() {
	if f.inflight.Load() == 0 {
		return
	}
	t := time.NewTimer(f.s.cfg.GroupCommitDelay)
	defer t.Stop()
	for f.inflight.Load() > 0 {
		select {
		case <-f.kick:
		case <-t.C:
			return
		}
	}
}

// durable waits until record seq of h is durable, under the fsync policy.
func (f *shardFile) durable(ctx context.Context, h *handle, seq int64) error {
	switch f.s.cfg.Fsync {
	case FsyncNone:
		return nil
	case FsyncAlways:
		return h.syncTo(ctx, seq, nil)
	}
	return h.syncTo(ctx, seq, f.gather)
}

func (f *shardFile) needleErr(id depot.NeedleID, err error) error {
	return fmt.Errorf("%v needle %x: %w", f.key, uint64(id), err)
}

// publishLocked points the index at a record completely written at start
// through h and returns its sequence number. appendMu must be held.
func (f *shardFile) publishLocked(h *handle, hdr header, start int64) int64 {
	f.mu.Lock()
	f.apply(hdr, start)
	f.mu.Unlock()
	f.pubs++
	if f.compacting {
		f.clog = append(f.clog, loggedRecord{hdr.Needle, makeLoc(start, hdr.Size, hdr.tombstone())})
	}
	return h.seq.Add(1)
}

// write stores a needle record; with wait it returns once the record is
// durable under the fsync policy, else once it is published (Store.Sync
// makes it durable later). Without replace, a needle id live with another
// cookie is ErrCookieConflict.
func (f *shardFile) write(ctx context.Context, id depot.NeedleID, cookie depot.Cookie, r io.Reader, size int64, wait, replace bool) (int64, error) {
	if !replace {
		// Refuse before reading a body that could not be stored; publish
		// checks again, under the lock.
		if err := f.conflict(id, cookie); err != nil {
			return 0, f.needleErr(id, err)
		}
	}
	e := newEncoder(id, f.block, size, f.s.cfg.MaxNeedleSize)
	defer e.release()
	if err := e.fill(r); err != nil {
		return 0, f.needleErr(id, err)
	}
	var (
		h   *handle
		seq int64
		err error
	)
	if e.eof {
		h, seq, err = f.appendWhole(id, cookie, e, replace)
	} else {
		h, seq, err = f.appendStreamed(ctx, id, cookie, e, r, replace)
	}
	if err != nil {
		return 0, f.needleErr(id, err)
	}
	defer h.unref()
	if wait {
		if err := f.durable(ctx, h, seq); err != nil {
			return 0, f.needleErr(id, err)
		}
	}
	return e.size, nil
}

// appendWhole writes a record whose bytes are all in e, in one piece under
// the append lock (a local write of at most bufBlocks blocks, nothing
// awaited from a client). It returns the handle written, referenced, and
// the record's sequence number.
func (f *shardFile) appendWhole(id depot.NeedleID, cookie depot.Cookie, e *encoder, replace bool) (*handle, int64, error) {
	f.inflight.Add(1)
	defer f.appendDone()
	f.appendMu.Lock()
	defer f.appendMu.Unlock()
	if err := f.checkAppend(false); err != nil {
		return nil, 0, err
	}
	if !replace {
		if err := f.conflict(id, cookie); err != nil {
			return nil, 0, err
		}
	}
	h, gen := f.current()
	hdr := header{Needle: id, Cookie: cookie, Size: e.size}
	rec, _ := e.finish(hdr, gen)
	start := f.end
	if err := f.grow(int64(len(rec))); err != nil {
		return nil, 0, err
	}
	if err := f.writeAt(h, rec, start); err != nil {
		f.shrink(h, start)
		return nil, 0, err
	}
	seq := f.publishLocked(h, hdr, start)
	h.ref()
	return h, seq, nil
}

// appendStreamed stores a record longer than e's buffer without holding
// the append lock while its body arrives: into a region reserved for its
// declared length, or, for a body of unknown length, into a spool file
// first and then into a region reserved for it. It returns as appendWhole.
func (f *shardFile) appendStreamed(ctx context.Context, id depot.NeedleID, cookie depot.Cookie, e *encoder, r io.Reader, replace bool) (*handle, int64, error) {
	var rg *region
	var err error
	if e.want >= 0 {
		if rg, err = f.reserve(recordLen(e.want, f.block)); err != nil {
			return nil, 0, err
		}
		var n int64
		n, err = f.receive(ctx, e, r, rg.start, func(b []byte, off int64) error { return f.writeAt(rg.h, b, off) })
		if err == nil && n != rg.end-rg.start {
			err = fmt.Errorf("internal error: wrote %d bytes into a %d-byte region", n, rg.end-rg.start)
		}
	} else {
		rg, err = f.spoolIn(ctx, e, r)
	}
	if err != nil {
		if rg != nil {
			f.abandon(rg)
		}
		return nil, 0, err
	}
	f.inflight.Add(1)
	defer f.appendDone()
	hdr := header{Needle: id, Cookie: cookie, Size: e.size}
	for moves := 0; ; moves++ {
		seq, err := f.publish(rg, hdr, replace)
		if err == nil {
			return rg.h, seq, nil // rg's reference goes to the caller
		}
		if !errors.Is(err, errMoved) || moves == maxMoves {
			f.abandon(rg)
			return nil, 0, err
		}
		// A compaction replaced the file while the body arrived: copy the
		// record's bytes from the old file into a region of the new one.
		nrg, err := f.reserve(rg.end - rg.start)
		if err == nil {
			err = f.copyIn(rg.h.f, rg.start, nrg, rg.end-rg.start)
		}
		rg.h.unref()
		if err != nil {
			if nrg != nil {
				f.abandon(nrg)
			}
			return nil, 0, err
		}
		rg = nrg
	}
}

// receive writes e's record, all but its header, through put from offset
// at on, reading the rest of the body from r, and returns the bytes the
// record takes. The first bytes put are the zero placeholder of the
// header.
func (f *shardFile) receive(ctx context.Context, e *encoder, r io.Reader, at int64, put func(b []byte, off int64) error) (int64, error) {
	off := at
	for !e.eof {
		if err := put(e.bytes(), off); err != nil {
			return 0, err
		}
		off += int64(len(e.bytes()))
		e.reset()
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := e.fill(r); err != nil {
			return 0, err
		}
	}
	tail, _ := e.finish(header{}, 0) // the header is written on publish
	if err := put(tail, off); err != nil {
		return 0, err
	}
	return off + int64(len(tail)) - at, nil
}

// spoolIn reads a body of unknown length into a spool file, unlinked at
// once so a crash leaves nothing, then reserves a region of the shard
// file for it and copies it there.
func (f *shardFile) spoolIn(ctx context.Context, e *encoder, r io.Reader) (*region, error) {
	sp, err := os.CreateTemp(f.dir.path, "spool-*.tmp")
	if err != nil {
		return nil, f.full(err)
	}
	os.Remove(sp.Name())
	defer sp.Close()
	n, err := f.receive(ctx, e, r, 0, func(b []byte, off int64) error {
		// The spool counts against the directory's limit while it grows.
		if err := f.room(off + int64(len(b))); err != nil {
			return err
		}
		_, err := sp.WriteAt(b, off)
		return f.full(err)
	})
	if err != nil {
		return nil, err
	}
	rg, err := f.reserve(n)
	if err != nil {
		return nil, err
	}
	if err := f.copyIn(sp, 0, rg, n); err != nil {
		f.abandon(rg)
		return nil, err
	}
	f.s.spooled.Add(float64(n))
	return rg, nil
}

// copyIn copies the n-byte record at off in src, all but its header, into
// region rg.
func (f *shardFile) copyIn(src *os.File, off int64, rg *region, n int64) error {
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	for done := int64(headerSize); done < n; {
		m := min(int64(len(buf)), n-done)
		if _, err := src.ReadAt(buf[:m], off+done); err != nil {
			return fmt.Errorf("copying a record: %w", err)
		}
		if err := f.writeAt(rg.h, buf[:m], rg.start+done); err != nil {
			return err
		}
		done += m
	}
	return nil
}

// reserve allocates a region of n bytes at the end of the file for a
// record whose body is still to be written.
func (f *shardFile) reserve(n int64) (*region, error) {
	f.appendMu.Lock()
	defer f.appendMu.Unlock()
	if err := f.checkAppend(false); err != nil {
		return nil, err
	}
	h, gen := f.current()
	start := f.end
	if err := f.grow(n); err != nil {
		return nil, err
	}
	h.ref()
	rg := &region{h: h, gen: gen, start: start, end: start + n}
	f.pending[rg] = struct{}{}
	return rg, nil
}

// publish completes the record written into rg: it writes the header and
// points the index at it. It returns the record's sequence number, or
// errMoved when a compaction replaced the file meanwhile.
func (f *shardFile) publish(rg *region, hdr header, replace bool) (int64, error) {
	f.appendMu.Lock()
	defer f.appendMu.Unlock()
	if _, ok := f.pending[rg]; !ok {
		return 0, errMoved
	}
	// The region is allocated: a directory that filled up meanwhile does
	// not refuse it.
	if err := f.checkAppend(true); err != nil {
		return 0, err
	}
	if !replace {
		if err := f.conflict(hdr.Needle, hdr.Cookie); err != nil {
			return 0, err
		}
	}
	var hb [headerSize]byte
	hdr.put(hb[:], rg.gen)
	if err := f.writeAt(rg.h, hb[:], rg.start); err != nil {
		// Part of it may be there: make sure it never passes for a header.
		if _, zerr := rg.h.f.WriteAt(make([]byte, headerSize), rg.start); zerr != nil {
			f.broken = zerr
			f.s.log.Error("cannot clear a failed record header, shard file is read-only", "path", f.path, "err", zerr)
		}
		return 0, err
	}
	delete(f.pending, rg)
	return f.publishLocked(rg.h, hdr, rg.start), nil
}

// abandon gives up region rg of a write that failed and releases its
// reference. Its header was never written, so the region is garbage that
// recovery skips and compaction drops; when it is the last thing in the
// file it is cut off at once.
func (f *shardFile) abandon(rg *region) {
	defer rg.h.unref()
	f.appendMu.Lock()
	defer f.appendMu.Unlock()
	if _, ok := f.pending[rg]; !ok {
		return // it went with a file that compaction replaced
	}
	delete(f.pending, rg)
	switch {
	case f.closed || f.broken != nil:
	case rg.end == f.end:
		f.shrink(rg.h, rg.start)
	default:
		// Give the region its full length on disk, so that the file is
		// never shorter than the records and checkpoints after it claim.
		rg.h.f.WriteAt([]byte{0}, rg.end-1)
	}
}

func (f *shardFile) delete(ctx context.Context, id depot.NeedleID, cookie depot.Cookie) error {
	seq, h, err := f.appendTombstone(id, cookie)
	if err != nil {
		return err
	}
	defer h.unref()
	if err := f.durable(ctx, h, seq); err != nil {
		return f.needleErr(id, err)
	}
	return nil
}

// appendTombstone writes a tombstone for a live needle with cookie, under
// the append lock, and returns its sequence number and the handle
// written, referenced.
func (f *shardFile) appendTombstone(id depot.NeedleID, cookie depot.Cookie) (int64, *handle, error) {
	f.appendMu.Lock()
	defer f.appendMu.Unlock()
	if err := f.checkAppend(true); err != nil {
		return 0, nil, err
	}
	l, h, gen, ok := f.pin(id)
	if !ok {
		return 0, nil, f.needleErr(id, depot.ErrNotFound)
	}
	defer h.unref()
	hd, err := f.readHeader(h, gen, id, l)
	if err == nil && hd.Cookie != cookie {
		err = f.needleErr(id, depot.ErrNotFound)
	}
	if err != nil {
		return 0, nil, err
	}
	tomb := header{Flags: flagTombstone, Needle: id, Cookie: cookie}
	var hb [headerSize]byte
	tomb.put(hb[:], gen)
	start := f.end
	if err := f.grow(headerSize); err != nil {
		return 0, nil, f.needleErr(id, err)
	}
	if err := f.writeAt(h, hb[:], start); err != nil {
		f.shrink(h, start)
		return 0, nil, f.needleErr(id, err)
	}
	seq := f.publishLocked(h, tomb, start)
	h.ref()
	return seq, h, nil
}
