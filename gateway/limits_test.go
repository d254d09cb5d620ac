package gateway_test

import (
	"bufio"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"depot/gateway"
	"depot/internal/testcluster"
)

// TestGateway_ConnLimits: a client that stops reading a download is cut
// off after WriteTimeout, and no more than MaxConns connections are served
// at once.
func TestGateway_ConnLimits(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	c := testcluster.New(t, testcluster.Options{Dataservers: 3, K: 2, M: 1,
		Gateway: gateway.Config{WriteTimeout: writeTimeout, MaxConns: 3}})
	u, err := url.Parse(c.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	dial := func(t *testing.T) net.Conn {
		t.Helper()
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	t.Run("WriteStall", func(t *testing.T) {
		seed := rand.Uint64()
		t.Logf("seed %d", seed)
		body := make([]byte, 16<<20) // far more than the socket buffers hold
		rng := rand.New(rand.NewPCG(seed, seed))
		for i := range body {
			body[i] = byte(rng.Uint32())
		}
		a := post(t, c, body, "", false)
		conn := dial(t)
		if _, err := io.WriteString(conn, "GET /v1/blobs/"+a.Fid+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		// The client stalls: this wait is the behaviour under test, a
		// reader that takes nothing for several write timeouts.
		time.Sleep(5 * writeTimeout)
		// A bound, not a wait: the gateway ends the connection as soon as
		// its stalled write times out, but under the race detector on a
		// loaded machine the handler may take long to notice (CI saw 30 s
		// pass).
		conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
		n, err := io.Copy(io.Discard, conn)
		conn.Close() // its slot is free for MaxConns below
		if err != nil {
			t.Fatalf("the gateway did not close the stalled connection: %v", err)
		}
		if n >= int64(len(body)) {
			t.Fatalf("a client that stalled for %v still got all %d bytes (%d with the head)", 5*writeTimeout, len(body), n)
		}
		t.Logf("stalled client got %d of %d bytes before the gateway closed", n, len(body))
	})

	t.Run("MaxConns", func(t *testing.T) {
		// The kept-alive connection of the POST above would hold a slot.
		http.DefaultClient.CloseIdleConnections()
		idle := []net.Conn{dial(t), dial(t), dial(t)} // accepted, then silent
		extra := dial(t)
		if _, err := io.WriteString(extra, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(extra)
		extra.SetReadDeadline(time.Now().Add(time.Second))
		if line, err := br.ReadString('\n'); err == nil {
			t.Fatalf("a fourth connection was served while three were open: %q", line)
		}
		idle[0].Close()
		extra.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil || !strings.Contains(line, "200") {
			t.Fatalf("the fourth connection once one closed: %q, %v", line, err)
		}
	})

	t.Run("Validate", func(t *testing.T) {
		for _, cfg := range []gateway.Config{{WriteTimeout: -1}, {MaxConns: -1}} {
			cfg.Client, cfg.RootUser, cfg.RootPassword = c.Client(), "u", "p"
			if _, err := gateway.New(cfg); err == nil {
				t.Errorf("gateway.New(%+v) accepted a negative limit", cfg)
			}
		}
	})
}
