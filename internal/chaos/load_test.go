package chaos

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The load: several S3 clients (minio-go, no automatic retries: every
// request is one operation of the history) on a small key space, so keys
// are overwritten, deleted and read concurrently.

const bucket = "chaos"

type loadConfig struct {
	clients  int
	keys     int   // keys k/000.. (puts, deletes, reads, copy sources)
	copies   int   // keys c/000.. (copy destinations, never sources)
	maxSize  int64 // largest single PUT
	maxMulti int64 // largest multipart object
	opTime   time.Duration
}

type loader struct {
	cfg   loadConfig
	seed  uint64
	h     *history
	gws   []*minio.Client
	names []string
	wids  atomic.Uint64
	logf  func(string, ...any)
}

func newLoader(cfg loadConfig, seed uint64, h *history, c *cluster) (*loader, error) {
	l := &loader{cfg: cfg, seed: seed, h: h, logf: c.log}
	for _, g := range c.nodes("gateway") {
		mc, err := minio.New(g.http, &minio.Options{
			Creds: credentials.NewStaticV4(c.user, c.pass, ""), Region: "us-east-1", MaxRetries: 1,
			Transport: &http.Transport{MaxIdleConnsPerHost: 16, ResponseHeaderTimeout: cfg.opTime, IdleConnTimeout: 30 * time.Second},
		})
		if err != nil {
			return nil, err
		}
		l.gws = append(l.gws, mc)
		l.names = append(l.names, g.id)
	}
	return l, nil
}

func (l *loader) pick(rng *rand.Rand) (*minio.Client, string) {
	i := rng.IntN(len(l.gws))
	return l.gws[i], l.names[i]
}

// size draws an object size: mostly small, sometimes up to maxSize.
func (l *loader) size(rng *rand.Rand) int64 {
	switch r := rng.IntN(100); {
	case r < 5:
		return 0
	case r < 40:
		return rng.Int64N(1 << 10)
	case r < 80:
		return rng.Int64N(256 << 10)
	default:
		return rng.Int64N(l.cfg.maxSize + 1)
	}
}

// run drives one client until ctx ends.
func (l *loader) run(ctx context.Context, client int, rng *rand.Rand) {
	for ctx.Err() == nil {
		key := fmt.Sprintf("k/%03d", rng.IntN(l.cfg.keys))
		switch r := rng.IntN(100); {
		case r < 20:
			l.put(ctx, client, rng, key, opPut)
		case r < 24:
			l.put(ctx, client, rng, key, opPutRetry)
		case r < 27:
			l.put(ctx, client, rng, key, opPutMid)
		case r < 30:
			l.put(ctx, client, rng, key, opPutLate)
		case r < 33:
			l.multipart(ctx, client, rng, key)
		case r < 40:
			if rng.IntN(4) == 0 {
				key = fmt.Sprintf("c/%03d", rng.IntN(l.cfg.copies))
			}
			l.delete(ctx, client, rng, key)
		case r < 46:
			l.copy(ctx, client, rng, key, fmt.Sprintf("c/%03d", rng.IntN(l.cfg.copies)))
		case r < 75:
			if rng.IntN(5) == 0 {
				key = fmt.Sprintf("c/%03d", rng.IntN(l.cfg.copies))
			}
			l.get(ctx, client, rng, key, opGet)
		case r < 92:
			l.get(ctx, client, rng, key, opRange)
		default:
			prefix := "k/"
			if rng.IntN(3) == 0 {
				prefix = "c/"
			}
			l.list(ctx, client, rng, prefix)
		}
	}
}

func (l *loader) newWrite(client int, kind opKind, key string, size int64) (*op, *bodyGen) {
	wid := uint64(client+1)<<40 | l.wids.Add(1)
	g := newBody(l.seed, wid, size)
	return &op{client: client, kind: kind, key: key, wid: wid, size: size, sum: g.sum()}, g
}

// cutReader cancels its request after limit bytes (mid-body), or, with
// limit < 0, a moment after the last byte (during the commit).
type cutReader struct {
	r      io.Reader
	n      int64
	limit  int64
	delay  time.Duration
	cancel context.CancelFunc
	once   sync.Once
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.limit >= 0 && c.n+int64(len(p)) > c.limit {
		p = p[:max(0, c.limit-c.n)]
		if len(p) == 0 {
			c.cancel()
			return 0, context.Canceled
		}
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if errors.Is(err, io.EOF) && c.limit < 0 {
		c.once.Do(func() { time.AfterFunc(c.delay, c.cancel) })
	}
	return n, err
}

func (l *loader) put(ctx context.Context, client int, rng *rand.Rand, key string, kind opKind) {
	size := l.size(rng)
	if kind == opPutMid && size < 2 {
		size = 2 + rng.Int64N(256<<10)
	}
	o, g := l.newWrite(client, kind, key, size)
	mc, name := l.pick(rng)
	o.gateway = name
	core := minio.Core{Client: mc}
	attempt := func(cut int64, delay time.Duration) error {
		octx, cancel := context.WithTimeout(ctx, l.cfg.opTime)
		defer cancel()
		var r io.Reader = g.reader()
		if cut != 0 {
			r = &cutReader{r: r, limit: cut, delay: delay, cancel: cancel}
		}
		_, err := core.PutObject(octx, bucket, key, r, size, "", "", minio.PutObjectOptions{})
		return err
	}
	l.h.begin(o)
	var err error
	switch kind {
	case opPut:
		err = attempt(0, 0)
	case opPutMid:
		err = attempt(1+rng.Int64N(size-1), 0)
	case opPutLate:
		err = attempt(-1, time.Duration(rng.IntN(20))*time.Millisecond)
	case opPutRetry:
		// The first attempt often loses its answer (the client gives up
		// during the commit); the client then sends the same PUT again.
		var e1 error
		if rng.IntN(2) == 0 {
			e1 = attempt(-1, time.Duration(rng.IntN(20))*time.Millisecond)
		} else {
			e1 = attempt(0, 0)
		}
		e2 := attempt(0, 0)
		err = combine(e1, e2)
	}
	l.h.finish(o, err)
}

// combine is the outcome of the same write sent twice: ok when either
// was acknowledged, a refusal when both were refused, unknown otherwise.
func combine(errs ...error) error {
	var unknown error
	for _, e := range errs {
		if e == nil {
			return nil
		}
		if out, _ := classify(e); out == outUnknown {
			unknown = e
		}
	}
	if unknown != nil {
		return unknown
	}
	return errs[len(errs)-1]
}

// multipart uploads an object of 5 MiB parts (the gateway's minimum), and
// aborts the upload when a part fails.
func (l *loader) multipart(ctx context.Context, client int, rng *rand.Rand, key string) {
	const part = 5 << 20
	size := part + 1 + rng.Int64N(max(1, l.cfg.maxMulti-part))
	o, g := l.newWrite(client, opMulti, key, size)
	mc, name := l.pick(rng)
	o.gateway = name
	core := minio.Core{Client: mc}
	octx, cancel := context.WithTimeout(ctx, l.cfg.opTime*time.Duration(1+size/part))
	defer cancel()
	l.h.begin(o)
	id, err := core.NewMultipartUpload(octx, bucket, key, minio.PutObjectOptions{})
	if err != nil {
		// No upload, no object: whatever the answer, nothing is written.
		l.h.finish(o, err)
		o.out = outFailed
		return
	}
	var parts []minio.CompletePart
	for i, off := 1, int64(0); off < size; i, off = i+1, off+part {
		n := min(part, size-off)
		p, err := core.PutObjectPart(octx, bucket, key, id, i, io.NewSectionReader(readerAt{g}, off, n), n, minio.PutObjectPartOptions{})
		if err != nil {
			actx, acancel := context.WithTimeout(context.Background(), 10*time.Second)
			core.AbortMultipartUpload(actx, bucket, key, id)
			acancel()
			// Complete was never sent: the object cannot have changed.
			l.h.finish(o, err)
			o.out = outFailed
			return
		}
		parts = append(parts, minio.CompletePart{PartNumber: i, ETag: p.ETag})
	}
	_, err = core.CompleteMultipartUpload(octx, bucket, key, id, parts, minio.PutObjectOptions{})
	l.h.finish(o, err)
}

type readerAt struct{ g *bodyGen }

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.g.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.g.size-off)
	r.g.readAt(p[:n], off)
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

func (l *loader) delete(ctx context.Context, client int, rng *rand.Rand, key string) {
	mc, name := l.pick(rng)
	o := l.h.begin(&op{client: client, kind: opDelete, key: key, gateway: name})
	octx, cancel := context.WithTimeout(ctx, l.cfg.opTime)
	defer cancel()
	l.h.finish(o, mc.RemoveObject(octx, bucket, key, minio.RemoveObjectOptions{}))
}

func (l *loader) copy(ctx context.Context, client int, rng *rand.Rand, src, dst string) {
	mc, name := l.pick(rng)
	o := l.h.begin(&op{client: client, kind: opCopy, key: dst, src: src, gateway: name})
	octx, cancel := context.WithTimeout(ctx, l.cfg.opTime)
	defer cancel()
	_, err := minio.Core{Client: mc}.CopyObject(octx, bucket, src, bucket, dst, nil, minio.CopySrcOptions{}, minio.PutObjectOptions{})
	l.h.finish(o, err)
	if isNoSuchKey(err) {
		o.absent = false
		o.out = outFailed // a missing source: a definite refusal
	}
}

// get reads a key whole (hashing it) or a random range of it.
func (l *loader) get(ctx context.Context, client int, rng *rand.Rand, key string, kind opKind) {
	mc, name := l.pick(rng)
	o := &op{client: client, kind: kind, key: key, gateway: name, n: -1}
	opts := minio.GetObjectOptions{}
	if kind == opRange {
		o.off = rng.Int64N(300 << 10)
		if rng.IntN(4) == 0 {
			o.off = rng.Int64N(l.cfg.maxSize + 1)
		}
		o.n = 1 + rng.Int64N(128<<10)
		opts.SetRange(o.off, o.off+o.n-1)
	}
	l.h.begin(o)
	octx, cancel := context.WithTimeout(ctx, l.cfg.opTime)
	defer cancel()
	l.h.finish(o, l.read(octx, mc, o, opts))
}

// read performs a GET and records what came back in o.
func (l *loader) read(ctx context.Context, mc *minio.Client, o *op, opts minio.GetObjectOptions) error {
	body, _, _, err := minio.Core{Client: mc}.GetObject(ctx, bucket, o.key, opts)
	if err != nil {
		if r := minio.ToErrorResponse(err); r.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			o.badRange = true
			return nil
		}
		return err
	}
	defer body.Close()
	if o.n >= 0 {
		o.gotBytes, err = io.ReadAll(io.LimitReader(body, o.n+1))
		return err
	}
	h := sha256.New()
	buf := make([]byte, 64)
	n, err := io.ReadFull(body, buf)
	o.gotHead = buf[:n]
	h.Write(o.gotHead)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	m, err := io.Copy(h, body)
	o.gotLen = int64(n) + m
	h.Sum(o.gotSum[:0])
	return err
}

func (l *loader) list(ctx context.Context, client int, rng *rand.Rand, prefix string) {
	mc, name := l.pick(rng)
	o := l.h.begin(&op{client: client, kind: opList, key: prefix, listFirst: prefix, gateway: name, listed: map[string]int64{}})
	octx, cancel := context.WithTimeout(ctx, l.cfg.opTime)
	defer cancel()
	var err error
	for info := range mc.ListObjects(octx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if info.Err != nil {
			err = info.Err
			break
		}
		o.listed[info.Key] = info.Size
	}
	l.h.finish(o, err)
}
