package dataserver

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"depot"
)

// This file holds what bulk repair uses: unsynced writes with one Sync
// for many needles, and runs of whole needles streamed in one response
// (GET /shard/{vol}/{idx}/needles, doc.go).

// WriteNoSync is Write without waiting for the needle to be durable: it
// returns once the record is appended (and visible to reads). Sync makes
// every needle so written to the shard file durable; a crash before it may
// lose them. Like Write it refuses a needle id live with another cookie.
// Repair writes rebuilt needles this way (RewriteNoSync) and syncs before
// it reports its cursor, so one fdatasync covers many needles.
func (s *Store) WriteNoSync(ctx context.Context, vol depot.VolumeID, idx int, id depot.NeedleID, cookie depot.Cookie, r io.Reader, size int64) (int64, error) {
	f, err := s.writeTarget(ctx, vol, idx, id, size)
	if err != nil {
		return 0, err
	}
	return f.write(ctx, id, cookie, r, size, false, false)
}

// RewriteNoSync is Rewrite without waiting for durability, as
// WriteNoSync is Write: repair's bulk rebuild writes with it.
func (s *Store) RewriteNoSync(ctx context.Context, vol depot.VolumeID, idx int, id depot.NeedleID, cookie depot.Cookie, r io.Reader, size int64) (int64, error) {
	f, err := s.writeTarget(ctx, vol, idx, id, size)
	if err != nil {
		return 0, err
	}
	return f.write(ctx, id, cookie, r, size, false, true)
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
	if err := h.syncTo(ctx, h.seq.Load(), nil); err != nil {
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
	// FrameRecord carries a needle's record as the shard file holds it
	// (header, data and block checksums, padding), unverified: a
	// RecordExtSize-byte extension and then Size bytes of record follow
	// the header. The receiver verifies it (FrameReader). Raw runs send
	// these.
	FrameRecord uint32 = 3
)

// RecordExtSize is the length of a FrameRecord's extension: the needle's
// data size (8 bytes), the generation its header checksum is seeded with
// (8) and the shard file's block size (8), little-endian.
const RecordExtSize = 24

// maxBlock bounds the block size a raw frame may declare.
const maxBlock = 16 << 20

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

// FrameReader reads a needle run. Record frames (FrameRecord) come out as
// needle frames: Body verifies the record and returns its data, and
// Current then holds the cookie from the record's header.
type FrameReader struct {
	r    *bufio.Reader
	max  int64
	cur  Frame
	left int64 // body bytes of cur not yet read
	end  bool

	raw      bool // cur came as a record frame
	rawGen   uint64
	rawBlock int64
}

// NewFrameReader reads frames from r; a needle larger than maxSize is an
// error.
func NewFrameReader(r io.Reader, maxSize int64) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 4<<10), max: maxSize}
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
	var b [FrameHeaderSize + RecordExtSize]byte
	if _, err := io.ReadFull(fr.r, b[:FrameHeaderSize]); err != nil {
		return Frame{}, unexpected(err)
	}
	f := Frame{
		ID:     depot.NeedleID(binary.LittleEndian.Uint64(b[0:])),
		Cookie: depot.Cookie(binary.LittleEndian.Uint32(b[8:])),
		Kind:   binary.LittleEndian.Uint32(b[12:]),
		Size:   int64(binary.LittleEndian.Uint64(b[16:])),
	}
	fr.raw = false
	left := f.Size
	switch {
	case f.Kind == FrameEnd:
		fr.end = true
		return Frame{}, io.EOF
	case f.Kind == FrameCorrupt:
		f.Size, left = 0, 0
	case f.Kind == FrameRecord:
		ext := b[FrameHeaderSize:]
		if _, err := io.ReadFull(fr.r, ext); err != nil {
			return Frame{}, unexpected(err)
		}
		size := int64(binary.LittleEndian.Uint64(ext[0:]))
		fr.rawGen = binary.LittleEndian.Uint64(ext[8:])
		fr.rawBlock = int64(binary.LittleEndian.Uint64(ext[16:]))
		if size < 0 || size > fr.max || fr.rawBlock <= 0 || fr.rawBlock > maxBlock || f.Size != recordLen(size, fr.rawBlock) {
			return Frame{}, fmt.Errorf("%w: needle run: record of needle %x: %d bytes for %d of data in blocks of %d",
				depot.ErrCorrupt, uint64(f.ID), f.Size, size, fr.rawBlock)
		}
		fr.raw = true
		f.Kind, f.Cookie, f.Size = FrameNeedle, 0, size
	case f.Kind != FrameNeedle:
		return Frame{}, fmt.Errorf("%w: needle run: frame kind %d", depot.ErrCorrupt, f.Kind)
	case f.Size < 0 || f.Size > fr.max:
		return Frame{}, fmt.Errorf("%w: needle run: needle %x of %d bytes", depot.ErrCorrupt, uint64(f.ID), f.Size)
	}
	fr.cur, fr.left = f, left
	return f, nil
}

// Current returns the frame Next returned last, as Body left it: with the
// cookie a record frame's header holds once Body verified it, or as a
// corrupt frame when it failed.
func (fr *FrameReader) Current() Frame { return fr.cur }

// BufferSize is the capacity Body needs for the current frame's body.
func (fr *FrameReader) BufferSize() int64 {
	if fr.raw {
		return recordLen(fr.cur.Size, fr.rawBlock)
	}
	return fr.cur.Size
}

// Body reads the body of the frame Next returned into buf, grown if it is
// too small, and returns the needle's bytes. A record frame is verified
// here, header and blocks, as Store.Run verifies on the sender: one that
// fails is read whole, so the run can go on, and Body returns an error
// wrapping depot.ErrCorrupt with Current a corrupt frame.
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
	if !fr.raw {
		return buf, nil
	}
	cookie, data, err := verifyRecord(buf, fr.cur.ID, fr.cur.Size, fr.rawGen, fr.rawBlock)
	if err != nil {
		fr.cur = Frame{ID: fr.cur.ID, Cookie: cookie, Kind: FrameCorrupt}
		return buf[:0], fmt.Errorf("needle %x: %w", uint64(fr.cur.ID), err)
	}
	fr.cur.Cookie = cookie
	return data, nil
}

// verifyRecord checks a whole record of needle id with size bytes of data
// (header, then each block), moves the data to the front of rec and
// returns the cookie and the data.
func verifyRecord(rec []byte, id depot.NeedleID, size int64, gen uint64, block int64) (depot.Cookie, []byte, error) {
	hd, err := decodeHeader(rec, gen)
	if err == nil && (hd.Needle != id || hd.Size != size || hd.tombstone()) {
		err = fmt.Errorf("%w: header is not this needle's", depot.ErrCorrupt)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", depot.ErrCorrupt, err)
	}
	at := int64(headerSize)
	for i := int64(0); i*block < size; i++ {
		bl := min(block, size-i*block)
		data := rec[at : at+bl]
		if blockCRC(id, i, data) != binary.LittleEndian.Uint32(rec[at+bl:]) {
			return hd.Cookie, nil, fmt.Errorf("%w: block %d", depot.ErrCorrupt, i)
		}
		copy(rec[i*block:], data)
		at += bl + crcSize
	}
	return hd.Cookie, rec[:size], nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// runPool holds the record buffers of Run; one larger than maxPooledRun
// (a needle beyond what repair of the default segment size sends) is not
// kept.
var runPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

const maxPooledRun = 16 << 20

// Run calls fn, in id order, for every live needle of shard file idx of vol
// with from <= id <= until, as the index holds it when Run reaches it (a
// needle deleted since Run began is skipped, one replaced is passed as it
// now is). Each needle's record is read whole, in one read, and verified
// block by block; fn gets a FrameNeedle with the needle's bytes in data,
// valid only until it returns, or, for a record that failed verification
// (counted and logged as a checksum failure), a FrameCorrupt without data
// (cookie 0 when the header itself is damaged). Run stops at fn's first
// error and returns it. An unknown shard file is ErrNotFound, before fn
// is called; a shard file dropped or a store closed while Run goes on ends
// it with that error.
func (s *Store) Run(ctx context.Context, vol depot.VolumeID, idx int, from, until depot.NeedleID, fn func(fr Frame, data []byte) error) error {
	k, err := checkKey(vol, idx)
	if err != nil {
		return err
	}
	f, err := s.shard(k)
	if err != nil {
		return err
	}
	ids := f.liveIDs(from, until)
	bp := runPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledRun {
			runPool.Put(bp)
		}
	}()
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		// The file as it is now: compaction may have swapped it.
		if f, err = s.shard(k); err != nil {
			return err
		}
		fr, data, err := f.readRecord(id, bp)
		if errors.Is(err, depot.ErrNotFound) {
			continue // deleted since
		}
		if err != nil {
			fr = Frame{ID: id, Cookie: fr.Cookie, Kind: FrameCorrupt}
		}
		if err := fn(fr, data); err != nil {
			return err
		}
	}
	return nil
}

// liveIDs returns the ids of the live needles with from <= id <= until,
// sorted.
func (f *shardFile) liveIDs(from, until depot.NeedleID) []depot.NeedleID {
	f.mu.RLock()
	ids := make([]depot.NeedleID, 0, f.idx.Len())
	f.idx.each(func(id depot.NeedleID, l loc) {
		if !l.deleted() && id >= from && id <= until {
			ids = append(ids, id)
		}
	})
	f.mu.RUnlock()
	slices.Sort(ids)
	return ids
}

// readRecord reads the current record of needle id whole into *bp (grown
// as needed), verifies its header and every block, and returns the frame
// describing it and its data, moved to the front of the buffer. A needle
// that is not live is ErrNotFound; a record that fails verification is
// counted and wraps ErrCorrupt, with the cookie in the frame when the
// header was sound.
func (f *shardFile) readRecord(id depot.NeedleID, bp *[]byte) (Frame, []byte, error) {
	l, h, gen, ok := f.pin(id)
	if !ok {
		return Frame{}, nil, f.needleErr(id, depot.ErrNotFound)
	}
	defer h.unref()
	size := l.size()
	n := recordLen(size, f.block)
	if int64(cap(*bp)) < n {
		*bp = make([]byte, n)
	}
	rec := (*bp)[:n]
	if _, err := h.f.ReadAt(rec, l.offset()); err != nil {
		return Frame{}, nil, f.corrupt(id, fmt.Errorf("%w: short record: %w", depot.ErrCorrupt, err))
	}
	cookie, data, err := verifyRecord(rec, id, size, gen, f.block)
	if err != nil {
		return Frame{ID: id, Cookie: cookie}, nil, f.corrupt(id, fmt.Errorf("record at %d: %w", l.offset(), err))
	}
	return Frame{ID: id, Cookie: cookie, Kind: FrameNeedle, Size: size}, data, nil
}

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
// sent (Store.Run). See doc.go.
func (s *Server) handleNeedles(w http.ResponseWriter, r *http.Request) {
	vol, idx, err := parseShard(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	from, err := parseRunBound(r, "after", 0)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	empty := false
	if r.URL.Query().Has("after") {
		empty = from == ^uint64(0)
		from++
	}
	until, err := parseRunBound(r, "until", ^uint64(0))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if empty {
		from, until = 1, 0 // nothing after the last id
	}
	if r.URL.Query().Get("format") == "raw" && r.TLS == nil {
		if conn, handled := s.hijackRun(w, r, vol, idx); handled {
			if conn != nil {
				s.sendRawRun(r.Context(), conn, vol, idx, depot.NeedleID(from), depot.NeedleID(until))
			}
			return
		}
	}
	var (
		hdr     [FrameHeaderSize]byte
		started bool
		werr    error // the client's side failed: nothing to log
	)
	start := func() {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-depot-needle-run")
			w.WriteHeader(http.StatusOK)
		}
	}
	err = s.store.Run(r.Context(), vol, idx, depot.NeedleID(from), depot.NeedleID(until), func(fr Frame, data []byte) error {
		start()
		fr.put(hdr[:])
		if _, werr = w.Write(hdr[:]); werr != nil {
			return werr
		}
		if len(data) > 0 {
			if _, werr = w.Write(data); werr != nil {
				return werr
			}
			s.bytesOut.Add(float64(len(data)))
		}
		return nil
	})
	switch {
	case err != nil && !started:
		s.fail(w, r, err)
		return
	case err != nil:
		// Closing, or the client went away: cut the run short, which the
		// client sees as a missing end frame.
		if werr == nil {
			s.log.Warn("needle run cut short", "path", r.URL.Path, "err", err)
		}
		return
	}
	start()
	Frame{Kind: FrameEnd}.put(hdr[:])
	w.Write(hdr[:])
}

// A raw run (GET .../needles?format=raw over plain HTTP) sends each
// needle's record as the file holds it, in a FrameRecord, straight from
// the page cache to the socket (sendfile), and the receiver verifies it:
// the sender neither reads nor copies the bytes. The response takes over
// the connection (it has no length and is not chunked; the connection
// closes after the end frame), so a run over TLS, or where the connection
// cannot be taken over, is an ordinary run.

// rawRunHead is the response head of a raw run.
const rawRunHead = "HTTP/1.1 200 OK\r\nContent-Type: application/x-depot-needle-run\r\nConnection: close\r\n\r\n"

// hijackRun checks that the shard file exists and takes the connection
// over for a raw run, writing the response head. It returns the
// connection, or nil when the request was answered otherwise (an error
// response, a connection closed); handled is false when the connection
// cannot be taken over and an ordinary run must answer.
func (s *Server) hijackRun(w http.ResponseWriter, r *http.Request, vol depot.VolumeID, idx int) (conn net.Conn, handled bool) {
	k, err := checkKey(vol, idx)
	if err == nil {
		_, err = s.store.shard(k)
	}
	if err != nil {
		s.fail(w, r, err)
		return nil, true // answered
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, false
	}
	if brw.Reader.Buffered() > 0 {
		// A pipelined request behind this one: not for a raw run.
		conn.Close()
		return nil, true
	}
	if !s.trackRaw(conn, true) {
		conn.Close()
		return nil, true
	}
	conn.SetWriteDeadline(time.Now().Add(rawRunIdle))
	if _, err := io.WriteString(conn, rawRunHead); err != nil {
		s.trackRaw(conn, false)
		conn.Close()
		return nil, true
	}
	return conn, true
}

// rawRunIdle bounds how long one write of a raw run may wait for the
// receiver.
const rawRunIdle = time.Minute

// trackRaw adds a connection taken over by a raw run to those Close ends,
// or removes it; adding fails once the server is closing.
func (s *Server) trackRaw(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.raw, c)
		return true
	}
	if s.closed.Load() {
		return false
	}
	if s.raw == nil {
		s.raw = make(map[net.Conn]struct{})
	}
	s.raw[c] = struct{}{}
	return true
}

// sendRawRun writes the frames of a raw run to conn and closes it. A
// failure cuts the run short, which the receiver sees as a missing end
// frame.
func (s *Server) sendRawRun(ctx context.Context, conn net.Conn, vol depot.VolumeID, idx int, from, until depot.NeedleID) {
	defer func() {
		s.trackRaw(conn, false)
		conn.Close()
	}()
	k, _ := checkKey(vol, idx)
	f, err := s.store.shard(k)
	if err != nil {
		return
	}
	var hdr [FrameHeaderSize + RecordExtSize]byte
	for _, id := range f.liveIDs(from, until) {
		if ctx.Err() != nil {
			return
		}
		// The file as it is now: compaction may have swapped it.
		if f, err = s.store.shard(k); err != nil {
			return
		}
		l, h, gen, ok := f.pin(id)
		if !ok {
			continue // deleted since
		}
		size := l.size()
		n := recordLen(size, f.block)
		Frame{ID: id, Kind: FrameRecord, Size: n}.put(hdr[:])
		binary.LittleEndian.PutUint64(hdr[FrameHeaderSize:], uint64(size))
		binary.LittleEndian.PutUint64(hdr[FrameHeaderSize+8:], gen)
		binary.LittleEndian.PutUint64(hdr[FrameHeaderSize+16:], uint64(f.block))
		conn.SetWriteDeadline(time.Now().Add(rawRunIdle))
		_, err := conn.Write(hdr[:])
		if err == nil {
			err = sendRange(conn, h.f, l.offset(), n)
		}
		h.unref()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Debug("raw needle run cut short", "volume", vol, "index", idx, "err", err)
			}
			return
		}
		s.bytesOut.Add(float64(size))
	}
	Frame{Kind: FrameEnd}.put(hdr[:])
	conn.Write(hdr[:FrameHeaderSize])
}

// copyRange writes n bytes of f from offset off to w, through a buffer.
func copyRange(w io.Writer, f *os.File, off, n int64) error {
	m, err := io.Copy(w, io.NewSectionReader(f, off, n))
	if err == nil && m < n {
		err = io.ErrUnexpectedEOF
	}
	return err
}
