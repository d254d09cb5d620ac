package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"depot"
	"depot/client"
	"depot/internal/guard"
	"depot/internal/httpx"
)

// firstBytes holds the buffers that read a blob's first bytes before the
// status goes out.
var firstBytes = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// blobCacheControl is sent with every blob: a fid's bytes never change.
const blobCacheControl = "public, max-age=31536000, immutable"

func (g *Gateway) nativeError(c *gin.Context, err error) {
	status, code := httpx.Status(err)
	switch {
	case errors.Is(err, depot.ErrNotFound):
		status, code = http.StatusNotFound, "NotFound"
	case errors.Is(err, guard.ErrBodyTimeout):
		status, code = http.StatusRequestTimeout, "RequestTimeout"
	}
	if status >= 500 {
		g.cfg.Logger.Warn("native request failed", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
	}
	writeErr(c, status, code, err.Error())
}

type postBlobResponse struct {
	Fid  string `json:"fid"`
	Size int64  `json:"size"`
	ETag string `json:"etag"`
}

func (g *Gateway) postBlob(c *gin.Context) {
	c.Set("op", "native.put")
	r := c.Request
	size := r.ContentLength
	if size > g.cfg.MaxBlobSize {
		g.nativeError(c, fmt.Errorf("%w: %d bytes, limit %d", depot.ErrTooLarge, size, g.cfg.MaxBlobSize))
		return
	}
	body := http.MaxBytesReader(c.Writer, r.Body, g.cfg.MaxBlobSize)
	ct := r.Header.Get("Content-Type")
	fid, st, err := g.cl.PutBlob(r.Context(), body, size, client.PutOptions{ContentType: ct})
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			err = fmt.Errorf("%w: body over %d bytes", depot.ErrTooLarge, g.cfg.MaxBlobSize)
		}
		g.nativeError(c, err)
		return
	}
	g.metrics.bytesIn.Add(float64(st.Size))
	c.Header("Location", "/v1/blobs/"+fid.String())
	c.JSON(http.StatusCreated, postBlobResponse{Fid: fid.String(), Size: st.Size, ETag: st.ETag})
}

func (g *Gateway) getBlob(c *gin.Context) {
	c.Set("op", "native.get")
	if c.Request.Method == http.MethodHead {
		c.Set("op", "native.head")
	}
	fid, err := depot.ParseFid(c.Param("fid"))
	if err != nil {
		g.nativeError(c, err)
		return
	}
	info, err := g.cl.StatBlob(c.Request.Context(), fid)
	if err != nil {
		g.nativeError(c, err)
		return
	}
	h := c.Writer.Header()
	etag := `"` + info.ETag + `"`
	h.Set("ETag", etag)
	h.Set("Cache-Control", blobCacheControl)
	h.Set("Accept-Ranges", "bytes")
	ct := info.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	if inm := c.GetHeader("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		c.Status(http.StatusNotModified)
		return
	}
	off, n, partial, err := parseRange(c.GetHeader("Range"), info.Size)
	if err != nil {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", info.Size))
		h.Del("Content-Type")
		writeErr(c, http.StatusRequestedRangeNotSatisfiable, "InvalidRange", err.Error())
		return
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, info.Size))
	}
	if c.Request.Method == http.MethodHead {
		c.Status(status)
		return
	}
	rc, err := g.cl.GetBlob(c.Request.Context(), info, off, n)
	if err != nil {
		g.nativeError(c, err)
		return
	}
	defer rc.Close()
	// Read the first bytes before committing to a status, so that a blob
	// that cannot be read at all is an error response, not a cut body.
	bp := firstBytes.Get().(*[]byte)
	defer firstBytes.Put(bp)
	buf := (*bp)[:min(n, int64(len(*bp)))]
	k, err := io.ReadFull(rc, buf) // the blob holds at least len(buf) bytes: any error is one
	if err != nil {
		g.nativeError(c, fmt.Errorf("read %s: %w", fid, err))
		return
	}
	c.Status(status)
	w := c.Writer
	if _, err := w.Write(buf[:k]); err != nil {
		return
	}
	copied, err := io.Copy(w, rc)
	g.metrics.bytesOut.Add(float64(int64(k) + copied))
	if err != nil {
		// Headers are out: cut the connection so the client sees a short
		// body rather than a silently truncated one.
		g.cfg.Logger.Warn("blob read failed mid-stream", "fid", fid.String(), "err", err)
		panic(http.ErrAbortHandler)
	}
}

func (g *Gateway) deleteBlob(c *gin.Context) {
	c.Set("op", "native.delete")
	fid, err := depot.ParseFid(c.Param("fid"))
	if err != nil {
		g.nativeError(c, err)
		return
	}
	if err := g.cl.DeleteBlob(c.Request.Context(), fid); err != nil {
		g.nativeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// etagMatch reports whether an If-None-Match or If-Match list names etag.
func etagMatch(list, etag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		t = strings.TrimPrefix(t, "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// errRange is returned for an unsatisfiable range.
var errRange = errors.New("range not satisfiable")

// parseRange interprets one Range header against an object of size
// bytes. It returns the offset and length to send and whether the answer
// is partial. Headers it does not understand (or several ranges) are
// ignored, as RFC 9110 allows: the whole object is sent.
func parseRange(h string, size int64) (off, n int64, partial bool, err error) {
	if h == "" || !strings.HasPrefix(h, "bytes=") || strings.Contains(h, ",") {
		return 0, size, false, nil
	}
	spec := strings.TrimSpace(h[len("bytes="):])
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, size, false, nil
	}
	if first == "" {
		suffix, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || suffix < 0 {
			return 0, size, false, nil
		}
		if suffix == 0 {
			return 0, 0, false, fmt.Errorf("%w: %s", errRange, h)
		}
		if suffix > size {
			suffix = size
		}
		if size == 0 {
			return 0, 0, false, fmt.Errorf("%w: %s", errRange, h)
		}
		return size - suffix, suffix, true, nil
	}
	start, perr := strconv.ParseInt(first, 10, 64)
	if perr != nil || start < 0 {
		return 0, size, false, nil
	}
	end := size - 1
	if last != "" {
		e, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || e < start {
			return 0, size, false, nil
		}
		end = min(e, size-1)
	}
	if start >= size {
		return 0, 0, false, fmt.Errorf("%w: %s for %d bytes", errRange, h, size)
	}
	return start, end - start + 1, true, nil
}
