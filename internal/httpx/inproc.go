package httpx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// ErrNoHandler is returned by an InProcess transport whose handler is gone
// (its server stopped): callers see it as they would see a refused
// connection.
var ErrNoHandler = errors.New("httpx: in-process server not running")

// InProcess is an http.RoundTripper that serves each request by calling a
// handler in the same process, in the caller's goroutine, with no socket,
// no HTTP framing and no extra goroutine. depot server uses it between its
// gateway and its nameserver: a namespace lookup then costs what the
// handler costs, not a loopback round trip.
//
// The response body is buffered whole, so InProcess suits APIs of small
// answers (the nameserver's), not streams.
type InProcess struct {
	// Handler returns the handler to serve with, or an error when the
	// server is not running. It is called for every request, so the
	// server behind it may be restarted.
	Handler func() (http.Handler, error)
}

// RoundTrip implements http.RoundTripper.
func (t InProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	h, err := t.Handler()
	if err == nil && h == nil {
		err = ErrNoHandler
	}
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	sr := req.Clone(req.Context())
	sr.RequestURI = req.URL.RequestURI()
	sr.RemoteAddr = "127.0.0.1:0"
	if sr.Host == "" {
		sr.Host = req.URL.Host
	}
	if sr.Body == nil {
		sr.Body = http.NoBody
	}
	if sr.ContentLength == 0 && sr.Body != http.NoBody {
		sr.ContentLength = -1
	}
	sr.Proto, sr.ProtoMajor, sr.ProtoMinor = "HTTP/1.1", 1, 1
	w := getRecorder()
	h.ServeHTTP(w, sr)
	sr.Body.Close()
	status, header := w.status, w.header
	if status == 0 {
		status = http.StatusOK
	}
	body := bytes.Clone(w.buf.Bytes())
	putRecorder(w) // w is another request's from here on
	resp := &http.Response{
		Status:     strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode: status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        header,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
	if req.Method == http.MethodHead {
		resp.Body, resp.ContentLength = http.NoBody, 0
	}
	return resp, nil
}

// recorder is the http.ResponseWriter of one in-process request.
type recorder struct {
	header http.Header
	status int
	buf    bytes.Buffer
}

var recorders = sync.Pool{New: func() any { return new(recorder) }}

func getRecorder() *recorder {
	w := recorders.Get().(*recorder)
	w.header, w.status = make(http.Header), 0
	w.buf.Reset()
	return w
}

func putRecorder(w *recorder) {
	w.header = nil
	if w.buf.Cap() <= 64<<10 {
		recorders.Put(w)
	}
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.buf.Write(p)
}
