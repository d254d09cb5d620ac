package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"depot"
	"depot/erasure"
	"depot/internal/httpx"
)

// Tag is the small description stored with every shard of a segment; see
// the package documentation.
type Tag struct {
	Size        int64  `json:"s"`
	ETag        string `json:"e,omitempty"`
	ContentType string `json:"t,omitempty"`
	Manifest    bool   `json:"m,omitempty"`
	// Pending marks a segment stored for the S3 namespace: it is garbage
	// unless the namespace comes to reference its fid (PutOptions.Pending).
	// Tags without it (native blobs, segments written before the field
	// existed) are never swept.
	Pending bool `json:"n,omitempty"`
	// Written is when a pending segment or a native blob's segment was
	// written, in Unix seconds (the writer's clock); the orphan sweep
	// counts its grace period from it.
	Written int64 `json:"w,omitempty"`
	// Owner is the fid of the manifest of the blob a segment belongs to,
	// on every segment of a blob of several segments (PutBlob reserves
	// the manifest's fid before the first segment's tag is written): the
	// segment is the leftover of a failed write unless its owner can be
	// read. See the package documentation, "Failed writes".
	Owner string `json:"o,omitempty"`
}

// maxContentType bounds the content type kept in a tag.
const maxContentType = 128

// Tag suffix layout, at the end of every shard of a segment: the tag's
// JSON, its length (uint16, little-endian) and the magic "DT".
const (
	tagMagic    = "DT"
	tagTrailer  = 4   // length and magic
	maxTagBytes = 508 // so that the last 512 bytes of a shard hold the suffix
)

// encodeTag returns the shard suffix that carries t.
func encodeTag(t Tag) []byte {
	b, _ := json.Marshal(t)
	if len(b) > maxTagBytes {
		t.ContentType = ""
		b, _ = json.Marshal(t)
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(b)))
	return append(b, tagMagic...)
}

// decodeTag finds the tag at the end of tail, the last bytes of a shard.
func decodeTag(tail []byte) (Tag, error) {
	var t Tag
	n := len(tail)
	if n < tagTrailer || string(tail[n-2:]) != tagMagic {
		return t, fmt.Errorf("%w: shard has no tag suffix", depot.ErrCorrupt)
	}
	l := int(binary.LittleEndian.Uint16(tail[n-4:]))
	if l > n-tagTrailer || l > maxTagBytes {
		return t, fmt.Errorf("%w: tag length %d", depot.ErrCorrupt, l)
	}
	if err := json.Unmarshal(tail[n-tagTrailer-l:n-tagTrailer], &t); err != nil {
		return t, fmt.Errorf("%w: tag: %v", depot.ErrCorrupt, err)
	}
	if t.Size < 0 {
		return t, fmt.Errorf("%w: tag size %d", depot.ErrCorrupt, t.Size)
	}
	return t, nil
}

// PutOptions describe a body being stored.
type PutOptions struct {
	// ContentType is kept in the tags of blobs (PutBlob); the namespace
	// keeps it for S3 objects.
	ContentType string
	// Progress, when set, is called with the number of body bytes read so
	// far, after every stripe.
	Progress func(n int64)
	// Pending marks the segments as awaiting a commit to the namespace (the
	// S3 gateway sets it for PutObject, CopyObject and UploadPart): their
	// tags carry "n" and the write time "w", and the orphan sweep (package
	// repair) deletes them once they are older than its grace period and
	// the nameserver references none of them. Never set it for segments
	// that nothing will commit, such as native blobs.
	Pending bool
}

// Stored describes a body that Put stored.
type Stored struct {
	Size     int64
	ETag     string // MD5 of the body, lower-case hex
	Segments []depot.Segment
}

// Put stores the body r, of size bytes (-1 when unknown), as one or more
// segments. It returns the segments in order, the size and the MD5 of the
// body. Nothing is recorded in the namespace: the caller keeps the
// segments (the S3 gateway commits them under a key).
func (c *Client) Put(ctx context.Context, r io.Reader, size int64, opts PutOptions) (*Stored, error) {
	st, _, err := c.put(ctx, r, size, opts, false)
	return st, err
}

// target is a needle id reserved for a segment not yet written: the
// manifest of a blob of several segments, whose fid its segments name.
type target struct {
	vol depot.Volume
	fid depot.Fid
}

// reserve takes a needle id from a lease for a later write.
func (c *Client) reserve(ctx context.Context) (*target, error) {
	vol, needle, err := c.leases.take(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	return &target{vol: vol, fid: depot.Fid{Volume: vol.ID, Needle: needle, Cookie: depot.NewCookie()}}, nil
}

// put stores the body; for a blob of several segments it also returns the
// manifest's reserved fid, which every segment's tag names. A failure
// deletes the segments already stored (discard): the caller never learns
// their fids, so they are garbage.
func (c *Client) put(ctx context.Context, r io.Reader, size int64, opts PutOptions, blob bool) (*Stored, *target, error) {
	st, owner, err := c.putSegments(ctx, r, size, opts, blob, &Stored{})
	if err != nil {
		c.discard(ctx, st.Segments)
		return nil, nil, err
	}
	return st, owner, nil
}

func (c *Client) putSegments(ctx context.Context, r io.Reader, size int64, opts PutOptions, blob bool, st *Stored) (*Stored, *target, error) {
	whole := md5.New()
	br := bufio.NewReaderSize(io.TeeReader(r, whole), 64<<10)
	var owner *target
	var done int64
	for {
		segLen := int64(-1)
		if size >= 0 {
			segLen = min(size-done, c.cfg.SegmentSize)
		}
		lr := &io.LimitedReader{R: br, N: c.cfg.SegmentSize}
		last := func(n int64) bool {
			if size >= 0 {
				return done+n >= size
			}
			_, err := br.Peek(1)
			return err != nil
		}
		tagFor := func(n int64) (Tag, error) {
			t := Tag{Size: n}
			if opts.Pending || blob {
				t.Pending, t.Written = opts.Pending, time.Now().Unix()
			}
			switch {
			case blob && len(st.Segments) == 0 && last(n):
				// The only segment of a blob: its tag describes the blob.
				t.ETag = hex.EncodeToString(whole.Sum(nil))
				t.ContentType = clip(opts.ContentType)
			case blob:
				// A segment of a blob of several: it names the manifest
				// that will commit it.
				if owner == nil {
					var err error
					if owner, err = c.reserve(ctx); err != nil {
						return t, fmt.Errorf("reserve the manifest: %w", err)
					}
				}
				t.Owner = owner.fid.String()
			}
			return t, nil
		}
		progress := func(n int64) {
			if opts.Progress != nil {
				opts.Progress(done + n)
			}
		}
		seg, err := c.putSegment(ctx, nil, lr, segLen, tagFor, progress)
		if err != nil {
			return st, nil, err
		}
		st.Segments = append(st.Segments, seg)
		if segLen >= 0 && seg.Size != segLen {
			return st, nil, fmt.Errorf("%w: body ended after %d of %d bytes", depot.ErrBadRequest, done+seg.Size, size)
		}
		done += seg.Size
		if size >= 0 && done >= size {
			break
		}
		if _, err := br.Peek(1); size < 0 && err != nil {
			break
		}
	}
	if size >= 0 {
		// A body longer than declared is an error, not a silent cut.
		if _, err := br.Peek(1); err == nil {
			return st, nil, fmt.Errorf("%w: body longer than the declared %d bytes", depot.ErrBadRequest, size)
		}
	}
	st.Size = done
	st.ETag = hex.EncodeToString(whole.Sum(nil))
	return st, owner, nil
}

// discard deletes segments of a failed write from their members, best
// effort: the write was refused to its caller, so nothing references
// them. What a member down or a crash leaves, the orphan sweep (package
// repair) reclaims.
func (c *Client) discard(ctx context.Context, segs []depot.Segment) {
	if len(segs) == 0 {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := c.Delete(dctx, segs); err != nil {
		c.cfg.Logger.Warn("delete segments of a failed write", "segments", len(segs), "err", err)
	}
}

func clip(s string) string {
	if len(s) > maxContentType {
		return s[:maxContentType]
	}
	return s
}

// PutBlob stores r under a single fid (see the package documentation on
// manifests) and returns the fid and what was stored.
func (c *Client) PutBlob(ctx context.Context, r io.Reader, size int64, opts PutOptions) (depot.Fid, *Stored, error) {
	start := time.Now()
	st, owner, err := c.put(ctx, r, size, opts, true)
	if err != nil {
		return depot.Fid{}, nil, err
	}
	if len(st.Segments) == 1 {
		fid, err := depot.ParseFid(st.Segments[0].Fid)
		return fid, st, err
	}
	man, err := json.Marshal(manifest{Size: st.Size, ETag: st.ETag, Segments: st.Segments})
	if err != nil {
		return depot.Fid{}, nil, err
	}
	tag := Tag{Size: int64(len(man)), ETag: st.ETag, ContentType: clip(opts.ContentType), Manifest: true,
		Written: time.Now().Unix()}
	// The orphan sweep deletes segments whose manifest is not readable
	// once they are its grace period old; a manifest written later than
	// MaxBlobWrite after the first segment could name swept segments.
	if d := time.Since(start); d > c.cfg.MaxBlobWrite {
		c.discard(ctx, st.Segments)
		return depot.Fid{}, nil, fmt.Errorf("%w: blob took %v to write, over the %v limit", depot.ErrTooLarge, d.Round(time.Second), c.cfg.MaxBlobWrite)
	}
	// The manifest goes to the fid its segments name, or nowhere.
	seg, err := c.putSegment(ctx, owner, bytes.NewReader(man), int64(len(man)), func(int64) (Tag, error) { return tag, nil }, nil)
	if err != nil {
		c.discard(ctx, st.Segments)
		return depot.Fid{}, nil, fmt.Errorf("store manifest: %w", err)
	}
	fid, err := depot.ParseFid(seg.Fid)
	return fid, st, err
}

// manifest lists the segments of a blob longer than one segment.
type manifest struct {
	Size     int64           `json:"size"`
	ETag     string          `json:"etag"`
	Segments []depot.Segment `json:"segments"`
}

// putSegment stores the bytes of r (n bytes, -1 when unknown) as one needle
// and returns its segment. tagFor gives the tag once the length is known.
// With fixed set, the needle goes to that reserved fid, in one attempt.
// A failed attempt's needle is deleted (discard).
func (c *Client) putSegment(ctx context.Context, fixed *target, r io.Reader, n int64, tagFor func(int64) (Tag, error), progress func(int64)) (depot.Segment, error) {
	avoid := make(map[depot.VolumeID]bool)
	var enc *erasure.Encoder
	var shards [][]byte
	var lastErr error
	for attempt := 0; attempt < c.cfg.Attempts; attempt++ {
		var vol depot.Volume
		var needle depot.NeedleID
		var cookie depot.Cookie
		var err error
		if fixed != nil {
			if attempt > 0 {
				break
			}
			vol, needle, cookie = fixed.vol, fixed.fid.Needle, fixed.fid.Cookie
		} else {
			if vol, needle, err = c.leases.take(ctx, avoid); err != nil {
				return depot.Segment{}, fmt.Errorf("lease: %w", err)
			}
			cookie = depot.NewCookie()
		}
		// The lease keeps the volume as assigned; a move (rebalance,
		// drain) may have switched a member since: write to the members
		// known within VolumeTTL, which the move's settle time exceeds.
		var listed time.Time // unknown: the lease's own list
		if cur, at, err := c.volumeAt(ctx, vol.ID, time.Time{}); err == nil && len(cur.Members) == len(vol.Members) {
			vol.Members, listed = cur.Members, at
		}
		codec, err := c.codec(vol.K, vol.M, vol.Unit)
		if err != nil {
			return depot.Segment{}, err
		}
		if enc == nil {
			enc = codec.NewEncoder(r)
		} else if codec.K() != vol.K || codec.Unit() != vol.Unit {
			// The stripe in hand was cut for another scheme; it cannot be
			// resent.
			break
		}
		fid := depot.Fid{Volume: vol.ID, Needle: needle, Cookie: cookie}
		shardLen := int64(-1)
		if n >= 0 {
			// The tag's encoded length does not depend on the values
			// still to come (the body's MD5 is 32 hex digits whatever it
			// is; the write time is taken in seconds).
			t, err := tagFor(n)
			if err != nil {
				return depot.Segment{}, err
			}
			shardLen = codec.ShardSize(n) + int64(len(encodeTag(t)))
		}
		seg, resend, err := c.writeNeedle(ctx, vol, listed, fid, enc, shardLen, &shards, tagFor, progress)
		if err == nil {
			return seg, nil
		}
		lastErr = err
		c.discard(ctx, []depot.Segment{{Fid: fid.String()}})
		c.leases.drop(vol.ID)
		avoid[vol.ID] = true
		if !resend || ctx.Err() != nil {
			break
		}
		c.cfg.Logger.Warn("segment write failed, trying another volume", "volume", vol.ID, "err", err)
	}
	return depot.Segment{}, lastErr
}

// upload is one streaming shard request to one member.
type upload struct {
	member depot.Member
	pw     *io.PipeWriter
	done   chan struct{}
	mu     sync.Mutex
	err    error // first failure, nil while healthy
}

func (u *upload) fail(err error) {
	u.mu.Lock()
	if u.err == nil {
		u.err = err
	}
	u.mu.Unlock()
	u.pw.CloseWithError(err)
}

func (u *upload) failed() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

func (c *Client) shardURL(addr string, fid depot.Fid, idx int) string {
	return c.cfg.TLS.URL(addr) + "/shard/" + strconv.FormatUint(uint64(fid.Volume), 10) + "/" +
		strconv.Itoa(idx) + "/" + strconv.FormatUint(uint64(fid.Needle), 16) +
		"?cookie=" + fmt.Sprintf("%08x", uint32(fid.Cookie))
}

// startUpload opens the shard PUT of member m. length is the exact length
// of the shard's body, or -1 when not known in advance; the body is sent
// chunked either way (the internal token's body MAC is a trailer).
func (c *Client) startUpload(ctx context.Context, m depot.Member, fid depot.Fid, length int64) *upload {
	pr, pw := io.Pipe()
	u := &upload{member: m, pw: pw, done: make(chan struct{})}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.shardURL(m.Addr, fid, m.Index), pr)
	if err != nil {
		u.fail(err)
		close(u.done)
		return u
	}
	req.ContentLength = -1
	if length >= 0 {
		req.Header.Set(depot.HeaderShardLength, strconv.FormatInt(length, 10))
	}
	go func() {
		defer close(u.done)
		resp, err := c.http.Do(req)
		if err != nil {
			u.fail(fmt.Errorf("shard %d on %s: %w", m.Index, m.Node, err))
			pr.CloseWithError(err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			err := httpx.ReadError(resp)
			u.fail(fmt.Errorf("shard %d on %s: %w", m.Index, m.Node, err))
			pr.CloseWithError(err)
			return
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		// The server answered success: it must have read the whole body.
		pr.CloseWithError(errors.New("server answered before the body ended"))
	}()
	return u
}

// writeNeedle streams the stripes of enc to the members of vol (a list
// fetched at listed) under fid. shardLen is the exact length of every
// shard's body (the codec's shard size plus the tag suffix), or -1 when the
// segment's length is unknown.
// It reports whether the failure happened before any stripe beyond the
// one in hand was read, so that the caller may resend on another volume.
func (c *Client) writeNeedle(ctx context.Context, vol depot.Volume, listed time.Time, fid depot.Fid, enc *erasure.Encoder, shardLen int64,
	held *[][]byte, tagFor func(int64) (Tag, error), progress func(int64)) (seg depot.Segment, resend bool, err error) {

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ups := make([]*upload, len(vol.Members))
	for i, m := range vol.Members {
		ups[i] = c.startUpload(ctx, m, fid, shardLen)
	}
	alive := func() int {
		n := 0
		for _, u := range ups {
			if u.failed() == nil {
				n++
			}
		}
		return n
	}
	abort := func(cause error) {
		for _, u := range ups {
			u.fail(cause)
		}
		cancel()
		for _, u := range ups {
			<-u.done
		}
	}

	first := true
	for {
		shards := *held
		if shards == nil {
			shards, err = enc.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				abort(err)
				return depot.Segment{}, false, fmt.Errorf("read body: %w", err)
			}
			*held = shards
		}
		if err := c.sendStripe(ups, shards); err != nil {
			abort(err)
			return depot.Segment{}, false, err
		}
		if alive() < c.cfg.Quorum {
			err := fmt.Errorf("%w: volume %d: %d of %d members took the stream, need %d: %v",
				depot.ErrNoQuorum, vol.ID, alive(), len(ups), c.cfg.Quorum, firstErr(ups))
			abort(err)
			return depot.Segment{}, first, err
		}
		first = false
		*held = nil
		if progress != nil {
			progress(enc.Size())
		}
	}
	*held = nil

	tag, err := tagFor(enc.Size())
	if err != nil {
		abort(err)
		return depot.Segment{}, false, err
	}
	suffix := encodeTag(tag)
	tails := make([][]byte, len(ups))
	for i := range tails {
		tails[i] = suffix
	}
	c.sendStripe(ups, tails)
	for _, u := range ups {
		if u.failed() == nil {
			u.pw.Close()
		}
	}
	for _, u := range ups {
		<-u.done
	}
	var missed []int
	for _, u := range ups {
		if u.failed() != nil {
			missed = append(missed, u.member.Index)
		}
	}
	if ok := len(ups) - len(missed); ok < c.cfg.Quorum {
		return depot.Segment{}, first, fmt.Errorf("%w: volume %d: %d of %d members acknowledged, need %d: %v",
			depot.ErrNoQuorum, vol.ID, ok, len(ups), c.cfg.Quorum, firstErr(ups))
	}
	if time.Since(listed) > c.cfg.VolumeTTL {
		missed = c.replaced(ctx, vol, missed)
	}
	if len(missed) > 0 {
		c.cfg.Logger.Warn("write missed members", "fid", fid.String(), "shards", missed, "err", firstErr(ups))
		mctx, mcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := c.ns.Missed(mctx, fid, missed); err != nil {
			c.cfg.Logger.Warn("report missed shards", "fid", fid.String(), "err", err)
		}
		mcancel()
	}
	c.tags.Add(fid, tag)
	return depot.Segment{Fid: fid.String(), Size: enc.Size()}, false, nil
}

// replaced adds to missed the slots of vol whose member was replaced
// since vol was listed. A write that outlived its member list (a stalled
// or very long one) may have gone to a member that a move or a rebuild
// switched away meanwhile, whose copy is dropped once the switch settles:
// the slot's new member gets the shard by needle-level repair. (The
// acknowledgement still counted for the quorum: the shard was durable
// there when it was given.) Member lists younger than VolumeTTL need
// no check: a switch keeps the old copy for longer (the repair worker's
// MoveSettle) and the new member catches up from it.
func (c *Client) replaced(ctx context.Context, vol depot.Volume, missed []int) []int {
	cur, err := c.volume(ctx, vol.ID, time.Now())
	if err != nil {
		c.cfg.Logger.Warn("write outlived its member list and the list could not be checked", "volume", vol.ID, "err", err)
		return missed
	}
	for i, m := range cur.Members {
		if i < len(vol.Members) && m.Node != vol.Members[i].Node && !slices.Contains(missed, i) {
			missed = append(missed, i)
		}
	}
	slices.Sort(missed)
	return missed
}

// sendStripe writes shard i of one stripe to every healthy upload i, in
// parallel, dropping members that stall past StripeTimeout.
func (c *Client) sendStripe(ups []*upload, shards [][]byte) error {
	if len(shards) != len(ups) {
		return fmt.Errorf("client: %d shards for %d members", len(shards), len(ups))
	}
	var wg sync.WaitGroup
	for i, u := range ups {
		if u.failed() != nil {
			continue
		}
		wg.Add(1)
		go func(u *upload, b []byte) {
			defer wg.Done()
			t := time.AfterFunc(c.cfg.StripeTimeout, func() {
				u.fail(fmt.Errorf("shard %d on %s: stalled for %v", u.member.Index, u.member.Node, c.cfg.StripeTimeout))
			})
			defer t.Stop()
			if _, err := u.pw.Write(b); err != nil {
				u.fail(fmt.Errorf("shard %d on %s: %w", u.member.Index, u.member.Node, err))
			}
		}(u, shards[i])
	}
	wg.Wait()
	return nil
}

func firstErr(ups []*upload) error {
	for _, u := range ups {
		if err := u.failed(); err != nil {
			return err
		}
	}
	return nil
}
