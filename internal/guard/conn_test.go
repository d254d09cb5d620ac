package guard

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestWriteStall: a client that reads nothing makes the handler's write
// fail after the timeout, and the server closes the connection (the
// client then gets what the kernel had buffered, and EOF).
func TestWriteStall(t *testing.T) {
	const timeout = 200 * time.Millisecond
	chunk := make([]byte, 64<<10)
	ended := make(chan error, 1)
	srv := httptest.NewServer(WriteStall(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 512 { // 32 MiB, far more than the socket buffers hold
			if _, err := w.Write(chunk); err != nil {
				ended <- err
				return
			}
		}
		ended <- nil
	}), timeout))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("the handler wrote everything to a client that read nothing")
		}
		t.Logf("handler: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the handler's write never failed")
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	n, err := io.Copy(io.Discard, conn)
	t.Logf("client read %d bytes, then %v after %v", n, err, time.Since(start))
	if err != nil {
		t.Fatalf("the server did not close the connection: %v", err)
	}
	if n >= 512*int64(len(chunk)) {
		t.Fatalf("the client got all %d bytes", n)
	}
}

// TestLimitListener: at most max connections are served at once; a
// waiting one is served as soon as another closes.
func TestLimitListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ReadHeaderTimeout: time.Minute}
	go srv.Serve(LimitListener(ln, 2))
	defer srv.Close()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	idle := []net.Conn{dial(), dial()}
	extra := dial()
	io.WriteString(extra, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	extra.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 64)
	if n, err := extra.Read(buf); err == nil {
		t.Fatalf("a third connection was served while two were open: %q", buf[:n])
	}
	idle[0].Close()
	start := time.Now()
	extra.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := extra.Read(buf)
	t.Logf("served after %v: %q %v", time.Since(start), buf[:n], err)
	if err != nil {
		t.Fatal(err)
	}
}
