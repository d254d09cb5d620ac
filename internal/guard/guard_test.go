package guard_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"depot/internal/guard"
)

func TestLimiter(t *testing.T) {
	l, err := guard.New(guard.Config{PerIP: 0.001, PerKey: 0.001, PerIPBurst: 3, PerKeyBurst: 5, Tracked: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if !l.AllowIP("10.0.0.1") {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	if l.AllowIP("10.0.0.1") {
		t.Fatal("request over the burst allowed")
	}
	if !l.AllowIP("10.0.0.2") || !l.AllowKey("10.0.0.1") {
		t.Fatal("another IP, or a key of the same name, shares the bucket")
	}
	// Evicted by two newer IPs, the first starts again with a full bucket.
	l.AllowIP("10.0.0.3")
	if !l.AllowIP("10.0.0.1") {
		t.Fatal("evicted IP still limited")
	}

	var none *guard.Limiter
	if !none.AllowIP("x") || !none.AllowKey("y") {
		t.Fatal("nil limiter refused")
	}
	if l, err := guard.New(guard.Config{}); l != nil || err != nil {
		t.Fatalf("zero config: %v %v", l, err)
	}
	if _, err := guard.New(guard.Config{PerIP: -1}); err == nil {
		t.Fatal("negative rate accepted")
	}
	onlyKeys, _ := guard.New(guard.Config{PerKey: 1})
	for range 10 {
		if !onlyKeys.AllowIP("10.0.0.1") {
			t.Fatal("IP limited with PerIP 0")
		}
	}
}

// TestBody sends a body that stops halfway: the handler's read fails with
// ErrBodyTimeout within the timeout, while a body that keeps coming is
// read whole.
func TestBody(t *testing.T) {
	const timeout = 200 * time.Millisecond
	got := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(guard.Body(w, r, timeout))
		if err == nil && len(b) != 10 {
			err = fmt.Errorf("read %d bytes", len(b))
		}
		got <- err
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
		}
	}))
	defer srv.Close()
	send := func(parts []string, gap time.Duration) (error, time.Duration) {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
		start := time.Now()
		for _, p := range parts {
			io.WriteString(conn, p)
			time.Sleep(gap) // the client's pace under test, not synchronisation
		}
		select {
		case err := <-got:
			return err, time.Since(start)
		case <-time.After(10 * time.Second):
			t.Fatal("handler still reading after 10s")
		}
		return nil, 0
	}
	err, took := send([]string{"01234"}, 0)
	if !errors.Is(err, guard.ErrBodyTimeout) {
		t.Fatalf("stalled body: %v", err)
	}
	if took > 5*timeout {
		t.Fatalf("stalled body cut off after %v, timeout %v", took, timeout)
	}
	if err, _ := send([]string{"01", "23", "45", "67", "89"}, timeout/4); err != nil {
		t.Fatalf("steady body: %v", err)
	}
}
