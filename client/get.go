package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"depot"
	"depot/erasure"
	"depot/internal/httpx"
)

// Get returns the bytes [off, off+n) of the object made of segs, in order.
// n < 0 means to the end. Segments are opened one after another as the
// reader reaches them; within a segment the data shards are read in
// parallel. A range over several segments holds them on their members
// while it is read (readHold), so that an overwrite or delete of the
// object meanwhile does not cut it. The caller must Close the reader.
func (c *Client) Get(ctx context.Context, segs []depot.Segment, off, n int64) (io.ReadCloser, error) {
	var total int64
	for _, s := range segs {
		total += s.Size
	}
	if off < 0 || off > total {
		return nil, fmt.Errorf("%w: offset %d outside object of %d bytes", depot.ErrBadRequest, off, total)
	}
	if n < 0 || off+n > total {
		n = total - off
	}
	return &objectReader{ctx: ctx, c: c, segs: segs, off: off, left: n, span: spanned(segs, off, n)}, nil
}

// spanned returns the segments that hold [off, off+n).
func spanned(segs []depot.Segment, off, n int64) []depot.Segment {
	var out []depot.Segment
	var pos int64
	for _, s := range segs {
		if pos+s.Size > off && pos < off+n {
			out = append(out, s)
		}
		pos += s.Size
	}
	return out
}

// objectReader walks the segments of an object range.
type objectReader struct {
	ctx  context.Context
	c    *Client
	segs []depot.Segment
	off  int64 // offset of the next byte within the remaining segments
	left int64
	cur  io.ReadCloser
	// curLeft is how many bytes cur has still to deliver.
	curLeft int64
	err     error
	// span is the segments of the range; when there are several, hold
	// keeps them held from the first open to Close.
	span []depot.Segment
	hold *readHold
}

func (r *objectReader) Read(p []byte) (int, error) {
	for {
		if r.err != nil {
			return 0, r.err
		}
		if r.left == 0 {
			return 0, io.EOF
		}
		if r.cur == nil {
			if err := r.next(); err != nil {
				r.err = err
				return 0, err
			}
		}
		if int64(len(p)) > r.curLeft {
			p = p[:r.curLeft]
		}
		nr, err := r.cur.Read(p)
		r.left -= int64(nr)
		r.curLeft -= int64(nr)
		if r.curLeft == 0 {
			r.cur.Close()
			r.cur = nil
			if errors.Is(err, io.EOF) {
				err = nil
			}
		} else if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: segment ended %d bytes early", io.ErrUnexpectedEOF, r.curLeft)
		}
		if err != nil {
			r.err = err
		}
		if nr > 0 || err != nil {
			return nr, err
		}
	}
}

// WriteTo hands each segment's bytes to w as the erasure reader holds
// them, in stripe-sized writes rather than through a small copy buffer.
func (r *objectReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.left > 0 {
		if r.err != nil {
			return total, r.err
		}
		if r.cur == nil {
			if err := r.next(); err != nil {
				r.err = err
				return total, err
			}
		}
		// The segment reader was opened for exactly curLeft bytes; io.Copy
		// uses its WriteTo.
		n, err := io.Copy(w, r.cur)
		total += n
		r.left -= n
		r.curLeft -= n
		if err == nil && r.curLeft > 0 {
			err = fmt.Errorf("%w: segment ended %d bytes early", io.ErrUnexpectedEOF, r.curLeft)
		}
		if err != nil {
			r.err = err
			return total, err
		}
		r.cur.Close()
		r.cur = nil
	}
	return total, nil
}

// next opens the segment that holds r.off.
func (r *objectReader) next() error {
	for len(r.segs) > 0 && r.off >= r.segs[0].Size {
		r.off -= r.segs[0].Size
		r.segs = r.segs[1:]
	}
	if len(r.segs) == 0 {
		return fmt.Errorf("%w: object shorter than its segments claim", depot.ErrCorrupt)
	}
	if r.hold == nil && len(r.span) > 1 {
		r.hold = r.c.startHold(r.ctx, r.span)
	}
	seg := r.segs[0]
	fid, err := depot.ParseFid(seg.Fid)
	if err != nil {
		return err
	}
	n := min(seg.Size-r.off, r.left)
	rc, err := r.c.openSegment(r.ctx, fid, seg.Size, r.off, n)
	if err != nil {
		return err
	}
	r.cur, r.curLeft = rc, n
	r.segs = r.segs[1:]
	r.off = 0
	return nil
}

func (r *objectReader) Close() error {
	if r.cur != nil {
		r.cur.Close()
		r.cur = nil
	}
	if r.hold != nil {
		r.hold.close(r.ctx)
		r.hold = nil
	}
	if r.err == nil {
		r.err = errors.New("client: read after Close")
	}
	return nil
}

// openSegment reads [off, off+n) of the segment fid of size bytes.
func (c *Client) openSegment(ctx context.Context, fid depot.Fid, size, off, n int64) (io.ReadCloser, error) {
	vol, err := c.volume(ctx, fid.Volume, time.Time{})
	if err != nil {
		return nil, err
	}
	codec, err := c.codec(vol.K, vol.M, vol.Unit)
	if err != nil {
		return nil, err
	}
	src := &needleSource{c: c, vol: vol, fid: fid}
	hedge := c.cfg.HedgeAfter
	if hedge < 0 {
		hedge = 0
	}
	return codec.NewReader(ctx, src, size, off, n, erasure.ReadOptions{HedgeAfter: hedge}), nil
}

// needleSource reads shards of one needle from the volume's members.
type needleSource struct {
	c   *Client
	vol depot.Volume
	fid depot.Fid
}

var _ erasure.ShardOpener = (*needleSource)(nil)

func (s *needleSource) member(shard int) (depot.Member, error) {
	for _, m := range s.vol.Members {
		if m.Index == shard {
			return m, nil
		}
	}
	return depot.Member{}, fmt.Errorf("volume %d has no member for shard %d", s.vol.ID, shard)
}

// OpenShard opens [off, off+n) of one shard with a range request.
func (s *needleSource) OpenShard(ctx context.Context, shard int, off, n int64) (io.ReadCloser, error) {
	m, err := s.member(shard)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.c.shardURL(m.Addr, s.fid, shard), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	sent := time.Now()
	resp, err := s.c.http.Do(req)
	if err != nil && ctx.Err() == nil {
		// The member may have restarted elsewhere: look the volume up
		// afresh and retry once when its address changed.
		if vol, verr := s.c.volume(ctx, s.fid.Volume, sent); verr == nil {
			for _, nm := range vol.Members {
				if nm.Index == shard && nm.Addr != m.Addr {
					m = nm
					req = req.Clone(ctx)
					req.URL, _ = url.Parse(s.c.shardURL(m.Addr, s.fid, shard))
					req.Host = ""
					resp, err = s.c.http.Do(req)
				}
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("shard %d of %s on %s: %w", shard, s.fid, m.Node, err)
	}
	if resp.StatusCode != http.StatusPartialContent && resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, fmt.Errorf("shard %d of %s on %s: %w", shard, s.fid, m.Node, httpx.ReadError(resp))
	}
	if resp.ContentLength >= 0 && resp.ContentLength != n {
		resp.Body.Close()
		return nil, fmt.Errorf("shard %d of %s on %s: %w: got %d bytes, want %d",
			shard, s.fid, m.Node, depot.ErrCorrupt, resp.ContentLength, n)
	}
	return resp.Body, nil
}

// BlobInfo describes a blob stored with PutBlob.
type BlobInfo struct {
	Fid         depot.Fid
	Size        int64
	ETag        string
	ContentType string
	segments    []depot.Segment
}

// StatBlob returns what the blob fid is, from its tag (cached, since a
// fid's bytes never change). An unknown fid, a wrong cookie or a segment
// of the S3 namespace is an error wrapping depot.ErrNotFound.
//
// Segments stored for S3 are not blobs: their tags carry the Pending mark
// (PutOptions.Pending, set on every S3 write), and who may read them is
// the S3 API's to decide (bucket and identity policies), so the native
// API, for which the fid's cookie is the capability, must not serve them.
// The mark is in the tag StatBlob reads anyway: telling them apart costs
// no request to the nameserver.
func (c *Client) StatBlob(ctx context.Context, fid depot.Fid) (*BlobInfo, error) {
	tag, err := c.tag(ctx, fid)
	if err != nil {
		return nil, err
	}
	if tag.Pending {
		// Worded as an unknown fid: the answer must not tell a private
		// object's fid from a wrong guess.
		return nil, fmt.Errorf("%s: %w", fid, depot.ErrNotFound)
	}
	info := &BlobInfo{Fid: fid, Size: tag.Size, ETag: tag.ETag, ContentType: tag.ContentType,
		segments: []depot.Segment{{Fid: fid.String(), Size: tag.Size}}}
	if !tag.Manifest {
		return info, nil
	}
	rc, err := c.openSegment(ctx, fid, tag.Size, 0, tag.Size)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var man manifest
	if err := json.NewDecoder(io.LimitReader(rc, tag.Size)).Decode(&man); err != nil {
		return nil, fmt.Errorf("%w: manifest of %s: %v", depot.ErrCorrupt, fid, err)
	}
	info.Size, info.ETag, info.segments = man.Size, man.ETag, man.Segments
	return info, nil
}

// GetBlob returns [off, off+n) of a blob (n < 0: to the end).
func (c *Client) GetBlob(ctx context.Context, info *BlobInfo, off, n int64) (io.ReadCloser, error) {
	return c.Get(ctx, info.segments, off, n)
}

// tag fetches the tag of fid from the first member that answers: the last
// bytes of its shard hold it.
func (c *Client) tag(ctx context.Context, fid depot.Fid) (Tag, error) {
	if t, ok := c.tags.Get(fid); ok {
		return t, nil
	}
	vol, err := c.volume(ctx, fid.Volume, time.Time{})
	if err != nil {
		return Tag{}, err
	}
	var lastErr error
	notFound := 0
	for _, m := range vol.Members {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.shardURL(m.Addr, fid, m.Index), nil)
		if err != nil {
			return Tag{}, err
		}
		req.Header.Set("Range", fmt.Sprintf("bytes=-%d", maxTagBytes+tagTrailer))
		resp, err := c.http.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		if resp.StatusCode == http.StatusNotFound {
			resp.Body.Close()
			notFound++
			lastErr = fmt.Errorf("%s: %w", fid, depot.ErrNotFound)
			// Absent on more than m members means it cannot be read: it
			// does not exist (or the cookie is wrong).
			if notFound > vol.M {
				break
			}
			continue
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
			lastErr = fmt.Errorf("stat %s on %s: %w", fid, m.Node, httpx.ReadError(resp))
			resp.Body.Close()
			continue
		}
		tail, err := io.ReadAll(io.LimitReader(resp.Body, maxTagBytes+tagTrailer+1))
		resp.Body.Close()
		if err != nil {
			lastErr = err
			continue
		}
		t, err := decodeTag(tail)
		if err != nil {
			lastErr = fmt.Errorf("tag of %s on %s: %w", fid, m.Node, err)
			continue
		}
		c.tags.Add(fid, t)
		return t, nil
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("%s: %w", fid, depot.ErrNotFound)
	}
	return Tag{}, lastErr
}

// DeleteBlob deletes a blob and, for a manifest, its segments.
func (c *Client) DeleteBlob(ctx context.Context, fid depot.Fid) error {
	info, err := c.StatBlob(ctx, fid)
	if err != nil {
		return err
	}
	if len(info.segments) > 1 || info.segments[0].Fid != fid.String() {
		if err := c.Delete(ctx, info.segments); err != nil {
			return err
		}
	}
	return c.Delete(ctx, []depot.Segment{{Fid: fid.String(), Size: info.Size}})
}

// Delete removes the needles of segs from every member. A segment counts
// as deleted once more than m members removed it (fewer than k copies of
// shards remain, so it can no longer be read); members that could not be
// reached keep a stray shard that compaction's orphan sweep reclaims.
func (c *Client) Delete(ctx context.Context, segs []depot.Segment) error {
	for _, s := range segs {
		fid, err := depot.ParseFid(s.Fid)
		if err != nil {
			return err
		}
		if err := c.deleteNeedle(ctx, fid); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) deleteNeedle(ctx context.Context, fid depot.Fid) error {
	vol, err := c.volume(ctx, fid.Volume, time.Time{})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(vol.Members))
	for i, m := range vol.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.shardURL(m.Addr, fid, m.Index), nil)
			if err != nil {
				errs[i] = err
				return
			}
			resp, err := c.http.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
				errs[i] = httpx.ReadError(resp)
			}
		}()
	}
	wg.Wait()
	c.tags.Remove(fid)
	ok := 0
	var first error
	for _, e := range errs {
		if e == nil {
			ok++
		} else if first == nil {
			first = e
		}
	}
	if ok <= vol.M {
		return fmt.Errorf("delete %s: only %d of %d members answered: %w", fid, ok, len(vol.Members), first)
	}
	return nil
}
