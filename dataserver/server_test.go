package dataserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"depot"
	"depot/internal/auth"
	"depot/internal/httpx"
)

// MustStartServer starts a dataserver on 127.0.0.1:0 and closes it when
// the test ends. It returns the server and a client that signs requests.
func MustStartServer(t testing.TB, mod func(*Config)) (*Server, *http.Client, string) {
	t.Helper()
	key, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ID = "ds1"
	cfg.Dirs = []string{t.TempDir()}
	cfg.Key = key
	cfg.Fsync = FsyncNone
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, &http.Client{Transport: &auth.Transport{Key: cfg.Key}}, "http://" + s.Addr()
}

func do(t testing.TB, c *http.Client, method, url string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, b
}

func wantStatus(t testing.TB, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, body)
	}
}

// metricValue returns the value of a counter or gauge in reg whose labels
// include lv (name, value pairs).
func metricValue(t testing.TB, s *Server, name string, lv ...string) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, lv) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, lv []string) bool {
	for i := 0; i+1 < len(lv); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == lv[i] && l.GetValue() == lv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestServer_Shard(t *testing.T) {
	s, c, base := MustStartServer(t, nil)
	data := payload(0x3f9a, 100000)
	u := base + "/shard/17/2/3f9a?cookie=0c21e4b7"

	t.Run("Put", func(t *testing.T) {
		resp, body := do(t, c, "PUT", u, bytes.NewReader(data))
		wantStatus(t, resp, body, 201)
		var got struct{ Size int64 }
		if json.Unmarshal(body, &got) != nil || got.Size != int64(len(data)) {
			t.Fatalf("PUT answer %s", body)
		}
	})
	t.Run("PutChunked", func(t *testing.T) {
		resp, body := do(t, c, "PUT", base+"/shard/17/2/aa?cookie=00000001", io.MultiReader(bytes.NewReader(data[:5000]), bytes.NewReader(data[5000:])))
		wantStatus(t, resp, body, 201)
		if resp.Request.ContentLength != -1 && resp.Request.ContentLength != 0 {
			t.Logf("content length %d", resp.Request.ContentLength)
		}
		resp, body = do(t, c, "GET", base+"/shard/17/2/aa?cookie=00000001", nil)
		wantStatus(t, resp, body, 200)
		if !bytes.Equal(body, data) {
			t.Fatal("chunked PUT stored other bytes")
		}
	})
	t.Run("Get", func(t *testing.T) {
		resp, body := do(t, c, "GET", u, nil)
		wantStatus(t, resp, body, 200)
		if !bytes.Equal(body, data) || resp.ContentLength != int64(len(data)) || resp.Header.Get("X-Depot-Size") != "100000" {
			t.Fatalf("GET: %d bytes, Content-Length %d", len(body), resp.ContentLength)
		}
	})
	t.Run("Head", func(t *testing.T) {
		resp, body := do(t, c, "HEAD", u, nil)
		wantStatus(t, resp, body, 200)
		if len(body) != 0 || resp.Header.Get("X-Depot-Size") != "100000" {
			t.Fatalf("HEAD: %d bytes, size %q", len(body), resp.Header.Get("X-Depot-Size"))
		}
	})
	t.Run("Range", func(t *testing.T) {
		for _, r := range []struct {
			hdr    string
			status int
			lo, hi int
		}{
			{"bytes=0-9", 206, 0, 10},
			{"bytes=16380-16390", 206, 16380, 16391},
			{"bytes=99990-", 206, 99990, 100000},
			{"bytes=-5", 206, 99995, 100000},
			{"bytes=99999-200000", 206, 99999, 100000},
			{"bytes=100000-", 416, 0, 0},
			{"bytes=-0", 416, 0, 0},
			{"bytes=5-2", 200, 0, 100000},     // invalid: ignored
			{"bytes=0-1,5-6", 200, 0, 100000}, // several: ignored
			{"items=0-1", 200, 0, 100000},     // other unit: ignored
		} {
			resp, body := do(t, c, "GET", u, nil, "Range", r.hdr)
			wantStatus(t, resp, body, r.status)
			switch r.status {
			case 416:
				if resp.Header.Get("Content-Range") != "bytes */100000" {
					t.Fatalf("%s: Content-Range %q", r.hdr, resp.Header.Get("Content-Range"))
				}
			default:
				if !bytes.Equal(body, data[r.lo:r.hi]) {
					t.Fatalf("%s: wrong bytes", r.hdr)
				}
				if r.status == 206 && resp.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/100000", r.lo, r.hi-1) {
					t.Fatalf("%s: Content-Range %q", r.hdr, resp.Header.Get("Content-Range"))
				}
			}
		}
	})
	t.Run("List", func(t *testing.T) {
		resp, body := do(t, c, "GET", base+"/shard/17/2", nil)
		wantStatus(t, resp, body, 200)
		want := `{"needles":[{"id":"aa","cookie":"00000001","size":100000,"deleted":false},{"id":"3f9a","cookie":"0c21e4b7","size":100000,"deleted":false}]}`
		if strings.TrimSpace(string(body)) != want {
			t.Fatalf("list %s", body)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		resp, body := do(t, c, "DELETE", base+"/shard/17/2/aa?cookie=00000001", nil)
		wantStatus(t, resp, body, 204)
		resp, body = do(t, c, "DELETE", base+"/shard/17/2/aa?cookie=00000001", nil)
		wantStatus(t, resp, body, 404)
		resp, body = do(t, c, "GET", base+"/shard/17/2/aa?cookie=00000001", nil)
		wantStatus(t, resp, body, 404)
	})
	t.Run("Compact", func(t *testing.T) {
		resp, body := do(t, c, "POST", base+"/shard/17/2/compact", nil)
		wantStatus(t, resp, body, 200)
		var res CompactResult
		if json.Unmarshal(body, &res) != nil || res.Reclaimed < 100000 {
			t.Fatalf("compact answer %s", body)
		}
		resp, body = do(t, c, "GET", u, nil)
		wantStatus(t, resp, body, 200)
		if !bytes.Equal(body, data) {
			t.Fatal("wrong bytes after compaction")
		}
	})
	t.Run("Status", func(t *testing.T) {
		resp, body := do(t, c, "GET", base+"/status", nil)
		wantStatus(t, resp, body, 200)
		var st StatusResponse
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatal(err)
		}
		if st.ID != "ds1" || len(st.Dirs) != 1 || len(st.Files) != 1 || st.Files[0].Needles != 1 || st.Files[0].Volume != 17 {
			t.Fatalf("status %s", body)
		}
		if got := s.Stats(); got.Needles != 1 || got.Used == 0 || got.Free == 0 {
			t.Fatalf("Stats %+v", got)
		}
	})
	t.Run("Metrics", func(t *testing.T) {
		resp, body := do(t, http.DefaultClient, "GET", base+"/metrics", nil)
		wantStatus(t, resp, body, 200)
		for _, m := range []string{"depot_dataserver_requests_total", "depot_dataserver_bytes_received_total", "depot_dataserver_bytes_sent_total", "depot_dataserver_needles", "depot_dataserver_checksum_failures_total"} {
			if !bytes.Contains(body, []byte(m)) {
				t.Errorf("metric %s missing", m)
			}
		}
		if v := metricValue(t, s, "depot_dataserver_requests_total", "op", "put", "status", "201"); v != 2 {
			t.Errorf("put requests %v", v)
		}
	})
}

func TestServer_Auth(t *testing.T) {
	_, _, base := MustStartServer(t, nil)
	other := &http.Client{Transport: &auth.Transport{Key: []byte("0123456789abcdef0")}}
	for _, path := range []string{"/shard/1/0/1?cookie=00000001", "/shard/1/0", "/status"} {
		resp, body := do(t, http.DefaultClient, "GET", base+path, nil)
		wantStatus(t, resp, body, 401)
		resp, body = do(t, other, "GET", base+path, nil)
		wantStatus(t, resp, body, 403)
	}
	resp, body := do(t, http.DefaultClient, "PUT", base+"/shard/1/0/1?cookie=00000001", strings.NewReader("x"))
	wantStatus(t, resp, body, 401)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, body := do(t, http.DefaultClient, "GET", base+path, nil)
		wantStatus(t, resp, body, 200)
	}
}

func TestServer_BadInput(t *testing.T) {
	s, c, base := MustStartServer(t, func(c *Config) { c.MaxNeedleSize = 1 << 20 })
	resp, body := do(t, c, "PUT", base+"/shard/1/0/10?cookie=00000001", bytes.NewReader(payload(1, 5000)))
	wantStatus(t, resp, body, 201)

	t.Run("ErrBadRequest", func(t *testing.T) {
		for _, u := range []string{
			"/shard/x/0/1?cookie=00000001",
			"/shard/1/-1/1?cookie=00000001",
			"/shard/1/0/XYZ?cookie=00000001",
			"/shard/1/0/1F?cookie=00000001",
			"/shard/1/0/11111111111111111?cookie=00000001",
			"/shard/1/0/1",
			"/shard/1/0/1?cookie=1",
			"/shard/1/0/1?cookie=zzzzzzzz",
		} {
			resp, body := do(t, c, "PUT", base+u, strings.NewReader("abc"))
			wantStatus(t, resp, body, 400)
			var eb httpx.ErrorBody
			if json.Unmarshal(body, &eb) != nil || eb.Code != "BadRequest" {
				t.Fatalf("%s: body %s", u, body)
			}
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		for _, u := range []string{"/shard/1/0/11?cookie=00000001", "/shard/1/0/10?cookie=00000002", "/shard/2/0/10?cookie=00000001"} {
			resp, body := do(t, c, "GET", base+u, nil)
			wantStatus(t, resp, body, 404)
			err := httpx.ReadError(&http.Response{StatusCode: resp.StatusCode, Body: io.NopCloser(bytes.NewReader(body))})
			if !errors.Is(err, depot.ErrNotFound) {
				t.Fatalf("%s: %v", u, err)
			}
		}
	})
	t.Run("ErrTooLarge", func(t *testing.T) {
		resp, body := do(t, c, "PUT", base+"/shard/1/0/12?cookie=00000001", bytes.NewReader(make([]byte, 1<<20+1)))
		wantStatus(t, resp, body, 413)
		resp, body = do(t, c, "PUT", base+"/shard/1/0/12?cookie=00000001", io.MultiReader(bytes.NewReader(make([]byte, 1<<20+1))))
		wantStatus(t, resp, body, 413)
	})
	// Raw requests whose Content-Length lies.
	raw := func(t *testing.T, req string, body []byte, closeWrite bool) string {
		t.Helper()
		conn, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write([]byte(req))
		conn.Write(body)
		if closeWrite {
			conn.(*net.TCPConn).CloseWrite()
		}
		line, _ := bufio.NewReader(conn).ReadString('\n')
		return line
	}
	// signed returns the head of a request signed for a body of cl bytes
	// starting with those of body (zeros after them).
	signed := func(method, path string, cl int, body []byte) string {
		b := make([]byte, cl)
		copy(b, body)
		req, err := http.NewRequest(method, "http://x"+path, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		s.cfg.Key.Sign(req)
		return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\n%s: %s\r\n%s: %s\r\nContent-Length: %d\r\n\r\n",
			method, path, auth.Header, req.Header.Get(auth.Header), auth.BodyHeader, req.Header.Get(auth.BodyHeader), cl)
	}
	t.Run("ContentLengthTooLarge", func(t *testing.T) {
		// The body ends before Content-Length: the write fails and stores
		// nothing (the client sees an error or a closed connection).
		raw(t, signed("PUT", "/shard/1/0/13?cookie=00000001", 50000, nil), make([]byte, 20000), true)
		resp, body := do(t, c, "GET", base+"/shard/1/0/13?cookie=00000001", nil)
		wantStatus(t, resp, body, 404)
	})
	t.Run("ContentLengthTooSmall", func(t *testing.T) {
		// Only Content-Length bytes are the body; the rest is a malformed
		// next request.
		line := raw(t, signed("PUT", "/shard/1/0/14?cookie=00000001", 100, payload(14, 300)), payload(14, 300), true)
		if !strings.Contains(line, "201") {
			t.Fatalf("status line %q", line)
		}
		resp, body := do(t, c, "GET", base+"/shard/1/0/14?cookie=00000001", nil)
		wantStatus(t, resp, body, 200)
		if !bytes.Equal(body, payload(14, 300)[:100]) {
			t.Fatal("stored bytes differ from the declared body")
		}
	})
	// Nothing stored before was lost.
	resp, body = do(t, c, "GET", base+"/shard/1/0/10?cookie=00000001", nil)
	wantStatus(t, resp, body, 200)
	if !bytes.Equal(body, payload(1, 5000)) {
		t.Fatal("earlier needle damaged")
	}
}

func TestServer_Corrupt(t *testing.T) {
	s, c, base := MustStartServer(t, nil)
	// More blocks than one GET buffers (outBufSize) before writing, so
	// that damage far enough in is found after bytes went out.
	const blocks = 2*outBufSize/defaultBlock + 4
	bad := int64(blocks - 2)
	data := payload(5, blocks*defaultBlock)
	for _, id := range []string{"5", "6"} {
		resp, body := do(t, c, "PUT", base+"/shard/1/0/"+id+"?cookie=00000001", bytes.NewReader(data))
		wantStatus(t, resp, body, 201)
	}
	path, off := needleOffset(t, s.Store(), 1, 0, 5)
	flipByte(t, path, off+headerSize+bad*(defaultBlock+crcSize)+7)

	t.Run("BeforeHeaders", func(t *testing.T) {
		// The damaged block is the first one the range needs: a clean 500.
		resp, body := do(t, c, "GET", base+"/shard/1/0/5?cookie=00000001", nil, "Range", fmt.Sprintf("bytes=%d-", bad*defaultBlock))
		wantStatus(t, resp, body, 500)
		if !strings.Contains(string(body), "Corrupt") || !strings.Contains(string(body), "needle 5") {
			t.Fatalf("body %s", body)
		}
	})
	t.Run("MidStream", func(t *testing.T) {
		// Verified blocks went out before the damage was found: the
		// connection is cut so the client sees an error, never bad bytes.
		req, _ := http.NewRequest("GET", base+"/shard/1/0/5?cookie=00000001", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil {
			t.Fatalf("read %d bytes without error", len(b))
		}
		if !bytes.Equal(b, data[:len(b)]) || int64(len(b)) > bad*defaultBlock {
			t.Fatalf("%d bytes handed on, some unverified", len(b))
		}
	})
	if v := metricValue(t, s, "depot_dataserver_checksum_failures_total"); v < 2 {
		t.Fatalf("checksum failures metric %v", v)
	}
	resp, body := do(t, c, "GET", base+"/shard/1/0/6?cookie=00000001", nil)
	wantStatus(t, resp, body, 200)
	if !bytes.Equal(body, data) {
		t.Fatal("other needle damaged")
	}
}

func TestServer_DiskFull(t *testing.T) {
	_, c, base := MustStartServer(t, func(c *Config) { c.MaxDirBytes = 100 << 10 })
	resp, body := do(t, c, "PUT", base+"/shard/1/0/1?cookie=00000001", bytes.NewReader(payload(1, 50<<10)))
	wantStatus(t, resp, body, 201)
	resp, body = do(t, c, "PUT", base+"/shard/1/0/2?cookie=00000001", bytes.NewReader(payload(2, 80<<10)))
	wantStatus(t, resp, body, 507)
	resp, body = do(t, c, "GET", base+"/shard/1/0/1?cookie=00000001", nil)
	wantStatus(t, resp, body, 200)
}

func TestServer_Lifecycle(t *testing.T) {
	if err := (Config{}).Validate(); err == nil {
		t.Fatal("empty config accepted")
	}
	s, c, base := MustStartServer(t, nil)
	if err := s.Start(); err == nil {
		t.Fatal("second Start accepted")
	}
	resp, body := do(t, c, "PUT", base+"/shard/1/0/1?cookie=00000001", strings.NewReader("hello"))
	wantStatus(t, resp, body, 201)
	dirs := s.cfg.Dirs
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The same directories open again with the needle in them.
	s2, c2, base2 := MustStartServer(t, func(c *Config) { c.Dirs = dirs; c.Key = s.cfg.Key })
	_ = s2
	resp, body = do(t, c2, "GET", base2+"/shard/1/0/1?cookie=00000001", nil)
	wantStatus(t, resp, body, 200)
	if string(body) != "hello" {
		t.Fatalf("body %q", body)
	}
	_ = c
}

// cutReader yields b and then fails with err, as a client's body does when
// the client gives up half-way (the client package aborts the uploads of a
// stripe that lost its write quorum this way).
type cutReader struct {
	b   []byte
	err error
}

func (r *cutReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, r.err
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A shard PUT whose body ends early stores nothing: the client's body
// fails half-way, so the transport drops the connection, without the
// terminating chunk of a chunked body or before the declared length. The
// needle must then be unknown (not a complete needle of half the bytes),
// and a later write of it must work.
func TestServer_PutCutShort(t *testing.T) {
	s, c, base := MustStartServer(t, nil)
	for i, tc := range []struct {
		name   string
		size   int
		sent   int
		length bool
	}{
		{"Chunked", 3*defaultBlock + 100, defaultBlock + 50, false},
		{"ChunkedInBlock", 5000, 2000, false},
		{"ChunkedBeyondBuffer", 3 << 20, 3 << 19, false},
		{"Length", 3*defaultBlock + 100, defaultBlock + 50, true},
		{"LengthBeyondBuffer", 3 << 20, 3 << 19, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := depot.NeedleID(i + 1)
			full := payload(id, tc.size)
			url := fmt.Sprintf("%s/shard/1/0/%x?cookie=%08x", base, uint64(id), 7)
			puts := func() float64 { return metricValue(t, s, "depot_dataserver_requests_total", "op", "put") }
			before := puts()
			req, err := http.NewRequest(http.MethodPut, url, &cutReader{b: full[:tc.sent], err: errors.New("client gave up")})
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = -1
			if tc.length {
				req.ContentLength = int64(tc.size)
			}
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
				t.Fatalf("PUT of a body cut short answered %d", resp.StatusCode)
			}
			waitFor(t, "the server to finish the cut PUT", 10*time.Second, func() bool { return puts() > before })
			resp, b := do(t, c, http.MethodGet, url, nil)
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("GET after a PUT cut short after %d of %d bytes: status %d with %d bytes, want 404",
					tc.sent, tc.size, resp.StatusCode, len(b))
			}
			resp, b = do(t, c, http.MethodPut, url, bytes.NewReader(full))
			wantStatus(t, resp, b, http.StatusCreated)
			resp, b = do(t, c, http.MethodGet, url, nil)
			wantStatus(t, resp, b, http.StatusOK)
			if !bytes.Equal(b, full) {
				t.Fatalf("GET after the rewrite: %d bytes, want %d", len(b), len(full))
			}
		})
	}
}

// On the wire, a PUT of a needle id live with another cookie is 409
// Exists and changes nothing; a retried PUT with the same cookie is 201.
func TestServer_PutCookieConflict(t *testing.T) {
	_, c, base := MustStartServer(t, nil)
	url := func(cookie uint32) string { return fmt.Sprintf("%s/shard/1/0/2a?cookie=%08x", base, cookie) }
	first := payload(42, 1000)
	resp, b := do(t, c, http.MethodPut, url(1), bytes.NewReader(first))
	wantStatus(t, resp, b, http.StatusCreated)
	resp, b = do(t, c, http.MethodPut, url(2), bytes.NewReader(payload(43, 800)))
	wantStatus(t, resp, b, http.StatusConflict)
	var eb httpx.ErrorBody
	if err := json.Unmarshal(b, &eb); err != nil || eb.Code != "Exists" {
		t.Fatalf("409 body %s: code %q, %v", b, eb.Code, err)
	}
	resp, b = do(t, c, http.MethodPut, url(1), bytes.NewReader(first))
	wantStatus(t, resp, b, http.StatusCreated)
	resp, b = do(t, c, http.MethodGet, url(1), nil)
	wantStatus(t, resp, b, http.StatusOK)
	if !bytes.Equal(b, first) {
		t.Fatal("the live needle changed")
	}
	resp, b = do(t, c, http.MethodGet, url(2), nil)
	wantStatus(t, resp, b, http.StatusNotFound)
}

// A chunked PUT that declares its length in X-Depot-Length is held to it
// exactly, as Content-Length is, and goes straight into its place in the
// shard file: nothing is spooled. A wrong or malformed declaration stores
// nothing.
func TestServer_PutDeclaredLength(t *testing.T) {
	s, c, base := MustStartServer(t, nil)
	spooled := func() float64 { return metricValue(t, s, "depot_dataserver_spooled_bytes_total") }
	size := 3 << 20 // beyond the buffer written under the lock
	put := func(id depot.NeedleID, body []byte, declared string) (*http.Response, []byte) {
		t.Helper()
		url := fmt.Sprintf("%s/shard/1/0/%x?cookie=%08x", base, uint64(id), 7)
		req, err := http.NewRequest(http.MethodPut, url, io.MultiReader(bytes.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1 // chunked
		if declared != "" {
			req.Header.Set(depot.HeaderShardLength, declared)
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	get := func(id depot.NeedleID) (*http.Response, []byte) {
		return do(t, c, http.MethodGet, fmt.Sprintf("%s/shard/1/0/%x?cookie=%08x", base, uint64(id), 7), nil)
	}

	t.Run("OK", func(t *testing.T) {
		body := payload(1, size)
		before := spooled()
		resp, b := put(1, body, strconv.Itoa(size))
		wantStatus(t, resp, b, http.StatusCreated)
		if got := spooled() - before; got != 0 {
			t.Fatalf("a body of declared length spooled %v bytes", got)
		}
		resp, b = get(1)
		wantStatus(t, resp, b, http.StatusOK)
		if !bytes.Equal(b, body) {
			t.Fatalf("GET: %d bytes, want the %d written", len(b), len(body))
		}
	})
	t.Run("Undeclared", func(t *testing.T) {
		before := spooled()
		resp, b := put(2, payload(2, size), "")
		wantStatus(t, resp, b, http.StatusCreated)
		if spooled() == before {
			t.Fatal("a body of unknown length beyond the buffer was not spooled (the metric does not count)")
		}
	})
	for i, tc := range []struct{ name, declared string }{
		{"Shorter", strconv.Itoa(size + 1)},
		{"Longer", strconv.Itoa(size - 1)},
		{"Malformed", "12x"},
		{"Negative", "-5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := depot.NeedleID(10 + i)
			resp, b := put(id, payload(id, size), tc.declared)
			if resp != nil && resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("PUT declaring %s for %d bytes: %d %s, want 400", tc.declared, size, resp.StatusCode, b)
			}
			resp, b = get(id)
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("GET after a refused PUT: %d with %d bytes, want 404", resp.StatusCode, len(b))
			}
		})
	}
}

// TestServer_DeleteIfIdle: a DELETE with ifidle=1 is refused with 423
// InUse while a GET of the needle is being served or a hold on it is
// unexpired, and succeeds once the GET ended, the hold was released or
// it expired; a plain DELETE ignores readers.
func TestServer_DeleteIfIdle(t *testing.T) {
	_, c, base := MustStartServer(t, nil)
	url := func(n string) string { return base + "/shard/17/2/" + n + "?cookie=0000000" + n }
	for _, n := range []string{"1", "2", "3", "4"} {
		size := 1000
		if n == "1" {
			size = 16 << 20 // more than loopback buffers take: the GET stays open
		}
		resp, body := do(t, c, "PUT", url(n), bytes.NewReader(payload(1, size)))
		wantStatus(t, resp, body, 201)
	}
	hold := func(n string, ttlms int64, release bool) {
		t.Helper()
		b, _ := json.Marshal(HoldRequest{ID: "00000000000000ab", TTLms: ttlms, Release: release,
			Needles: []HoldNeedle{{Vol: 17, Idx: 2, Needle: n}}})
		resp, body := do(t, c, "POST", base+"/holds", bytes.NewReader(b))
		wantStatus(t, resp, body, 200)
	}
	waitDeleted := func(n string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, body := do(t, c, "DELETE", url(n)+"&ifidle=1", nil)
			if resp.StatusCode == 204 {
				return
			}
			wantStatus(t, resp, body, 423)
			if time.Now().After(deadline) {
				t.Fatalf("needle %s still in use at the deadline", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	inUse := func(n string) {
		t.Helper()
		resp, body := do(t, c, "DELETE", url(n)+"&ifidle=1", nil)
		wantStatus(t, resp, body, 423)
		if !bytes.Contains(body, []byte(`"InUse"`)) {
			t.Fatalf("423 body %s", body)
		}
	}

	// A GET in progress.
	resp, err := c.Get(url("1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	inUse("1")
	resp.Body.Close()
	waitDeleted("1")

	// A hold, released.
	hold("2", 60000, false)
	inUse("2")
	hold("2", 0, true)
	waitDeleted("2")

	// A hold that expires.
	hold("3", 1, false)
	waitDeleted("3")

	// A plain DELETE does not wait for readers.
	hold("4", 60000, false)
	resp2, body := do(t, c, "DELETE", url("4"), nil)
	wantStatus(t, resp2, body, 204)
}
