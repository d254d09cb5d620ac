package dataserver

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"depot"
)

// This file holds what bulk repair uses: unsynced writes with one Sync
// for many needles, and runs of whole needles streamed in one response
// (GET /shard/{vol}/{idx}/needles, doc.go).

// WriteNoSync is Write without waiting for the needle to be durable: it
// returns once the record is appended (and visible to reads). Sync makes
// every needle so written to the shard file durable; a crash before it may
// lose them. Repair writes rebuilt needles this way and syncs before it
// reports its cursor, so one fdatasync covers many needles.
func (s *Store) WriteNoSync(ctx context.Context, vol depot.VolumeID, idx int, id depot.NeedleID, cookie depot.Cookie, r io.Reader, size int64) (int64, error) {
	f, err := s.writeTarget(ctx, vol, idx, id, size)
	if err != nil {
		return 0, err
	}
	return f.write(ctx, id, cookie, r, size, false)
}

// Sync makes everything appended to the shard file so far durable under
// the fsync policy (nothing to do under FsyncNone). A compaction that
// swapped the file meanwhile synced what it copied, so syncing the
// current file covers every earlier write.
func (s *Store) Sync(ctx context.Context, vol depot.VolumeID, idx int) error {
	k, err := checkKey(vol, idx)
	if err != nil {
		return err
	}
	f, err := s.shard(k)
	if err != nil {
		return err
	}
	if s.cfg.Fsync == FsyncNone {
		return nil
	}
	f.mu.RLock()
	h := f.h
	h.ref()
	f.mu.RUnlock()
	defer h.unref()
	if err := h.syncTo(ctx, h.appended.Load(), nil); err != nil {
		return fmt.Errorf("%v: %w", k, err)
	}
	return nil
}

// Frame kinds of a needle run (GET /shard/{vol}/{idx}/needles).
const (
	// FrameNeedle carries a whole needle: Size bytes follow the header.
	FrameNeedle uint32 = 0
	// FrameCorrupt names a needle that failed its checksums on the
	// sender; no bytes follow.
	FrameCorrupt uint32 = 1
	// FrameEnd ends a complete run; nothing follows.
	FrameEnd uint32 = 2
)

// FrameHeaderSize is the length of a frame header.
const FrameHeaderSize = 24

// Frame is the header of one frame of a needle run: needle id (8 bytes),
// cookie (4), kind (4), size (8), little-endian.
type Frame struct {
	ID     depot.NeedleID
	Cookie depot.Cookie
	Kind   uint32
	Size   int64
}

func (fr Frame) put(b []byte) {
	binary.LittleEndian.PutUint64(b[0:], uint64(fr.ID))
	binary.LittleEndian.PutUint32(b[8:], uint32(fr.Cookie))
	binary.LittleEndian.PutUint32(b[12:], fr.Kind)
	binary.LittleEndian.PutUint64(b[16:], uint64(fr.Size))
}

// FrameReader reads a needle run.
type FrameReader struct {
	r    *bufio.Reader
	max  int64
	cur  Frame
	left int64 // body bytes of cur not yet read
	end  bool
}

// NewFrameReader reads frames from r; a needle larger than maxSize is an
// error.
func NewFrameReader(r io.Reader, maxSize int64) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10), max: maxSize}
}

// Next returns the next needle or corrupt frame, skipping the body of the
// previous frame if it was not read. After the end frame it returns
// io.EOF; a run cut short before it is io.ErrUnexpectedEOF.
func (fr *FrameReader) Next() (Frame, error) {
	if fr.end {
		return Frame{}, io.EOF
	}
	if fr.left > 0 {
		if _, err := io.CopyN(io.Discard, fr.r, fr.left); err != nil {
			return Frame{}, unexpected(err)
		}
		fr.left = 0
	}
	var b [FrameHeaderSize]byte
	if _, err := io.ReadFull(fr.r, b[:]); err != nil {
		return Frame{}, unexpected(err)
	}
	f := Frame{
		ID:     depot.NeedleID(binary.LittleEndian.Uint64(b[0:])),
		Cookie: depot.Cookie(binary.LittleEndian.Uint32(b[8:])),
		Kind:   binary.LittleEndian.Uint32(b[12:]),
		Size:   int64(binary.LittleEndian.Uint64(b[16:])),
	}
	switch {
	case f.Kind == FrameEnd:
		fr.end = true
		return Frame{}, io.EOF
	case f.Kind == FrameCorrupt:
		f.Size = 0
	case f.Kind != FrameNeedle:
		return Frame{}, fmt.Errorf("%w: needle run: frame kind %d", depot.ErrCorrupt, f.Kind)
	case f.Size < 0 || f.Size > fr.max:
		return Frame{}, fmt.Errorf("%w: needle run: needle %x of %d bytes", depot.ErrCorrupt, uint64(f.ID), f.Size)
	}
	fr.cur, fr.left = f, f.Size
	return f, nil
}

// Body reads the body of the frame Next returned into buf, grown if it is
// too small, and returns it.
func (fr *FrameReader) Body(buf []byte) ([]byte, error) {
	n := int(fr.left)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(fr.r, buf); err != nil {
		return nil, unexpected(err)
	}
	fr.left = 0
	return buf, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// bufWriter collects a needle's verified bytes in a reused buffer.
type bufWriter struct{ b []byte }

func (w *bufWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

var runBufs = sync.Pool{New: func() any { return &bufWriter{b: make([]byte, 0, 1<<20)} }}

// parseRunBound parses the optional hex needle id in query parameter
// name; def when absent.
func parseRunBound(r *http.Request, name string, def uint64) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	id, err := strconv.ParseUint(v, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not a hex needle id", depot.ErrBadRequest, name, v)
	}
	return id, nil
}

// handleNeedles streams the live needles of a shard file with after < id
// <= until, in id order, each read whole and verified before its frame is
// sent. See doc.go.
func (s *Server) handleNeedles(w http.ResponseWriter, r *http.Request) {
	vol, idx, err := parseShard(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	after, err := parseRunBound(r, "after", 0)
	lower := r.URL.Query().Has("after")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	until, err := parseRunBound(r, "until", ^uint64(0))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	list, err := s.store.List(ctx, vol, idx)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-depot-needle-run")
	w.WriteHeader(http.StatusOK)
	bw := runBufs.Get().(*bufWriter)
	defer runBufs.Put(bw)
	var hdr [FrameHeaderSize]byte
	for _, in := range list {
		if (lower && uint64(in.ID) <= after) || in.Deleted {
			continue
		}
		if uint64(in.ID) > until {
			break
		}
		fr := Frame{ID: in.ID, Cookie: in.Cookie}
		bw.b = bw.b[:0]
		nd, err := s.store.Open(ctx, vol, idx, in.ID, in.Cookie)
		if err == nil {
			fr.Size = nd.Size()
			_, err = nd.ReadRange(ctx, bw, 0, nd.Size())
			nd.Close()
		}
		switch {
		case errors.Is(err, depot.ErrNotFound):
			continue // deleted or replaced since the listing
		case errors.Is(err, depot.ErrCorrupt):
			fr.Kind, fr.Size = FrameCorrupt, 0
		case err != nil:
			// Closing, or the client went away: cut the run short, which
			// the client sees as a missing end frame.
			s.log.Warn("needle run cut short", "path", r.URL.Path, "err", err)
			return
		}
		fr.put(hdr[:])
		if _, err := w.Write(hdr[:]); err != nil {
			return
		}
		if fr.Kind == FrameNeedle {
			if _, err := w.Write(bw.b); err != nil {
				return
			}
			s.bytesOut.Add(float64(len(bw.b)))
		}
	}
	Frame{Kind: FrameEnd}.put(hdr[:])
	w.Write(hdr[:])
}
