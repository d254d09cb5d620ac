package dataserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"depot"
)

// offsetWriter buffers writes to a file at increasing offsets. A record
// that fails half-way is dropped by rewinding to its start.
type offsetWriter struct {
	f       *os.File
	off     int64 // file offset of buf[0]
	buf     []byte
	limit   func(end int64) error
	flushed int64 // highest offset written to the file
}

func (w *offsetWriter) pos() int64 { return w.off + int64(len(w.buf)) }

func (w *offsetWriter) write(b []byte) error {
	w.buf = append(w.buf, b...)
	if len(w.buf) >= 1<<20 {
		return w.flush()
	}
	return nil
}

func (w *offsetWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if err := w.limit(w.pos()); err != nil {
		return err
	}
	if _, err := w.f.WriteAt(w.buf, w.off); err != nil {
		return diskFullErr(err)
	}
	w.off += int64(len(w.buf))
	w.flushed = max(w.flushed, w.off)
	w.buf = w.buf[:0]
	return nil
}

// rewind moves the write position back to to (the start of a record that
// failed); bytes already flushed past it are overwritten or cut later.
func (w *offsetWriter) rewind(to int64) {
	if to >= w.off {
		w.buf = w.buf[:to-w.off]
		return
	}
	w.buf = w.buf[:0]
	w.off = to
}

// compactor copies verified records from the old file to the new one.
type compactor struct {
	f       *shardFile
	src     *os.File
	oldGen  uint64
	newGen  uint64
	rr      *recordReader
	w       *offsetWriter
	idx     *index
	dropped int
}

// copyRecord copies the record at off (at most limit bytes long) and
// returns its length. A record that fails verification is dropped and
// counted; then it returns the error.
func (c *compactor) copyRecord(off, limit int64) (int64, error) {
	c.rr.br.Reset(io.NewSectionReader(c.src, off, limit))
	start := c.w.pos()
	h, rl, err := c.rr.next(limit, func(hdr, b []byte) error {
		if hdr != nil {
			h, err := decodeHeader(hdr, c.oldGen)
			if err != nil {
				return err
			}
			var nb [headerSize]byte
			h.put(nb[:], c.newGen)
			return c.w.write(nb[:])
		}
		return c.w.write(b)
	})
	if err != nil {
		c.w.rewind(start)
		return 0, err
	}
	c.idx.put(h.Needle, makeLoc(start, h.Size, h.tombstone()))
	return rl, nil
}

// compact rewrites f without the records no index entry refers to. Reads
// go on from the old file throughout; writes go on until the final
// catch-up, which copies what they published meanwhile under the append
// lock and swaps the files. What was published meanwhile is taken from
// the log publishLocked keeps while a compaction runs, not by walking the
// file's tail: the tail may hold regions of writes still receiving their
// bodies, or abandoned. A write whose region was not published at the swap
// finds its region gone at publish and copies its record into the new
// file (appendStreamed).
func (f *shardFile) compact(ctx context.Context) (CompactResult, error) {
	f.ckptMu.Lock()
	defer f.ckptMu.Unlock()

	f.appendMu.Lock()
	if f.closed {
		f.appendMu.Unlock()
		return CompactResult{}, ErrClosed
	}
	if f.compacting {
		f.appendMu.Unlock()
		return CompactResult{}, fmt.Errorf("%v: compact: internal error: already compacting", f.key)
	}
	f.compacting, f.clog = true, nil
	defer func() {
		f.appendMu.Lock()
		f.compacting, f.clog = false, nil
		f.appendMu.Unlock()
	}()
	e0 := f.end
	f.mu.RLock()
	h, oldGen := f.h, f.gen
	h.ref()
	type ent struct {
		id depot.NeedleID
		l  loc
	}
	ents := make([]ent, 0, f.idx.Len())
	f.idx.each(func(id depot.NeedleID, l loc) { ents = append(ents, ent{id, l}) })
	f.mu.RUnlock()
	f.appendMu.Unlock()
	defer h.unref()
	slices.SortFunc(ents, func(a, b ent) int { return cmp.Compare(a.l.offset(), b.l.offset()) })

	tmp := f.path + ".compact"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return CompactResult{}, fmt.Errorf("%v: compact: %w", f.key, diskFullErr(err))
	}
	swapped := false
	defer func() {
		if !swapped {
			out.Close()
			os.Remove(tmp)
		}
	}()
	c := &compactor{
		f: f, src: h.f, oldGen: oldGen, newGen: randGen(),
		rr:  newRecordReader(oldGen, f.block),
		idx: newIndex(len(ents)),
	}
	limit := func(end int64) error {
		if lim := f.s.cfg.MaxDirBytes; lim > 0 && f.dir.used.Load()+end > lim {
			return fmt.Errorf("%w: %s holds more than its %d-byte limit", depot.ErrDiskFull, f.dir.path, lim)
		}
		return nil
	}
	c.w = &offsetWriter{f: out, limit: limit, buf: make([]byte, 0, 2<<20)}
	sb := superblock{Version: formatV1, BlockSize: uint32(f.block), Volume: f.key.vol, Index: uint32(f.key.idx), Gen: c.newGen}
	if err := c.w.write(sb.encode()); err != nil {
		return CompactResult{}, err
	}
	fail := func(err error) (CompactResult, error) {
		return CompactResult{}, fmt.Errorf("%v: compact: %w", f.key, err)
	}
	for i, e := range ents {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return fail(err)
			}
		}
		if _, err := c.copyRecord(e.l.offset(), e0-e.l.offset()); err != nil {
			if !errors.Is(err, depot.ErrCorrupt) {
				return fail(err)
			}
			c.dropped++
			f.corrupt(e.id, fmt.Errorf("dropped by compaction: %w", err))
		}
	}
	// Catch up with what writers published meanwhile: first without the
	// append lock, then, for the last stretch, with it.
	copyLogged := func(recs []loggedRecord) (int64, error) {
		var n int64
		for _, r := range recs {
			rl := recordLen(r.l.size(), f.block)
			if _, err := c.copyRecord(r.l.offset(), rl); err != nil {
				return 0, err // published by this process: whole
			}
			n += rl
		}
		return n, nil
	}
	for round := 0; round < 3; round++ {
		f.appendMu.Lock()
		recs := f.clog
		f.clog = nil
		f.appendMu.Unlock()
		n, err := copyLogged(recs)
		if err != nil {
			return fail(err)
		}
		if n < 1<<20 {
			break
		}
	}
	f.appendMu.Lock()
	defer f.appendMu.Unlock()
	if f.closed {
		return CompactResult{}, ErrClosed
	}
	f.mu.RLock()
	same := f.h == h
	f.mu.RUnlock()
	if !same {
		return fail(errors.New("shard file changed under compaction"))
	}
	before := f.end
	if _, err := copyLogged(f.clog); err != nil {
		return fail(err)
	}
	if err := c.w.flush(); err != nil {
		return fail(err)
	}
	after := c.w.pos()
	if c.w.flushed > after {
		if err := out.Truncate(after); err != nil {
			return fail(err)
		}
	}
	if err := fdatasync(out); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fail(err)
	}
	swapped = true
	if err := syncDir(f.dir.path); err != nil {
		// The rename happened; the new file is in place either way.
		f.s.log.Error("compaction: directory sync failed", "dir", f.dir.path, "err", err)
	}
	nh := newHandle(out)
	f.mu.Lock()
	f.idx, f.h, f.gen = c.idx, nh, c.newGen
	f.fileBytes = after
	f.liveN, f.liveBytes, f.keptBytes = 0, 0, 0
	f.idx.each(func(_ depot.NeedleID, l loc) { f.account(l, 1) })
	f.mu.Unlock()
	f.end = after
	// Regions still awaiting their bodies stayed in the old file; their
	// writes move to the new one when they complete.
	clear(f.pending)
	f.compacting, f.clog = false, nil
	f.dir.used.Add(after - before)
	// Everything appended to the old file is now durable in the new one.
	h.markSynced()
	h.unref() // the shard file's own reference
	res := CompactResult{Before: before, After: after, Reclaimed: before - after, Needles: c.idx.Len(), Dropped: c.dropped}
	if res.Reclaimed > 0 && f.dir.readOnly.Swap(false) {
		f.s.log.Info("data directory writable again after compaction", "dir", f.dir.path)
	}
	f.s.log.Info("compacted shard file", "path", f.path, "before", before, "after", after, "needles", c.idx.Len(), "dropped", c.dropped)
	return res, nil
}
