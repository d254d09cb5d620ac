package guard

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// ErrWriteTimeout is returned (wrapped) by a Write of a WriteStall
// response whose client took nothing for the timeout.
var ErrWriteTimeout = errors.New("response write stalled")

// WriteStall wraps next so that every Write of a response must complete
// within timeout: before each Write it moves the connection's write
// deadline to now plus the timeout, and clears it when the request
// starts. A client that stops reading is cut off once the socket buffers
// are full, without bounding how long a large answer to a client that
// keeps reading may take (http.Server.WriteTimeout would). With timeout
// 0, next is returned as it is.
func WriteStall(next http.Handler, timeout time.Duration) http.Handler {
	if timeout <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Time{}); err != nil {
			next.ServeHTTP(w, r) // a writer that offers no deadline
			return
		}
		sw := &stallWriter{ResponseWriter: w, rc: rc, timeout: timeout}
		next.ServeHTTP(sw, r)
		// The server flushes what the handler left buffered after it
		// returns: give that a fresh window too.
		rc.SetWriteDeadline(time.Now().Add(timeout))
	})
}

type stallWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *stallWriter) arm() { w.rc.SetWriteDeadline(time.Now().Add(w.timeout)) }

func (w *stallWriter) Write(p []byte) (int, error) {
	w.arm()
	n, err := w.ResponseWriter.Write(p)
	return n, w.wrap(err)
}

func (w *stallWriter) WriteHeader(code int) {
	w.arm()
	w.ResponseWriter.WriteHeader(code)
}

// Flush implements http.Flusher; the http.ResponseController of a
// handler reaches the writer below through Unwrap.
func (w *stallWriter) Flush() {
	w.arm()
	w.rc.Flush()
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *stallWriter) wrap(err error) error {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: nothing taken for %v", ErrWriteTimeout, w.timeout)
	}
	return err
}

// LimitListener returns a listener that holds at most max connections
// open at once: Accept waits while max are open, so further clients wait
// in the kernel's backlog instead of costing a file descriptor and a
// goroutine each. max <= 0 returns ln as it is.
func LimitListener(ln net.Listener, max int) net.Listener {
	if max <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
