package auth

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestKey_Verify(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := GenerateKey()
	now := time.Now()
	signed := func(key Key, method, target string, body string) *http.Request {
		var r *http.Request
		if body == "" {
			r = httptest.NewRequest(method, target, nil)
		} else {
			r, _ = http.NewRequest(method, target, strings.NewReader(body))
		}
		key.Sign(r)
		return r
	}
	t.Run("OK", func(t *testing.T) {
		r := signed(k, "PUT", "/users?x=1&a=2", `{"a":1}`)
		if err := k.Verify(r, now, NewReplayCache(10)); err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(r.Body); err != nil || string(b) != `{"a":1}` {
			t.Fatalf("body %q, %v", b, err)
		}
	})
	for name, mutate := range map[string]func(*http.Request){
		"Missing": func(r *http.Request) { r.Header.Del(Header) },
		"OtherKey": func(r *http.Request) {
			r.Header.Set(Header, signed(other, "PUT", "/users?x=1", `{"a":1}`).Header.Get(Header))
		},
		"OtherPath":   func(r *http.Request) { r.URL.Path = "/users/x" },
		"OtherMethod": func(r *http.Request) { r.Method = "POST" },
		"OtherQuery":  func(r *http.Request) { r.URL.RawQuery = "x=2" },
		"AddedQuery":  func(r *http.Request) { r.URL.RawQuery = "x=1&y=1" },
		"OtherBody": func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"a":2}`))
		},
		"OtherBodyHash": func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"a":2}`))
			r.Header.Set(BodyHeader, signed(k, "PUT", "/users?x=1", `{"a":2}`).Header.Get(BodyHeader))
		},
		"Expired": func(r *http.Request) {
			tok, _ := k.token("PUT", r.URL, r.Header.Get(BodyHeader), now.Add(-2*MaxSkew))
			r.Header.Set(Header, tok)
		},
		"Version1": func(r *http.Request) {
			tok := r.Header.Get(Header)
			parts := strings.Split(tok, ".")
			r.Header.Set(Header, parts[1]+"."+parts[3])
		},
		"Garbage": func(r *http.Request) { r.Header.Set(Header, "12345") },
	} {
		t.Run("Err"+name, func(t *testing.T) {
			r := signed(k, "PUT", "/users?x=1", `{"a":1}`)
			mutate(r)
			if err := k.Verify(r, now, NewReplayCache(10)); !errors.Is(err, ErrBadToken) {
				t.Fatalf("Verify = %v, want ErrBadToken", err)
			}
		})
	}
	t.Run("ErrReplayed", func(t *testing.T) {
		seen := NewReplayCache(10)
		r := signed(k, "GET", "/status", "")
		if err := k.Verify(r, now, seen); err != nil {
			t.Fatal(err)
		}
		if err := k.Verify(r, now, seen); !errors.Is(err, ErrBadToken) {
			t.Fatalf("replay: Verify = %v, want ErrBadToken", err)
		}
	})
	t.Run("QuerySpelling", func(t *testing.T) {
		r := signed(k, "GET", "/v?b=2&a=1", "")
		r.URL.RawQuery = "a=1&b=2"
		if err := k.Verify(r, now, NewReplayCache(10)); err != nil {
			t.Fatalf("same query, other order: %v", err)
		}
	})
}

func TestReplayCache_Bounded(t *testing.T) {
	k, _ := GenerateKey()
	now := time.Now()
	seen := NewReplayCache(4)
	var first *http.Request
	for i := range 10 {
		r := httptest.NewRequest("GET", "/status", nil)
		tok, _ := k.token("GET", r.URL, emptySum, now.Add(time.Duration(i-10)*time.Second))
		r.Header.Set(Header, tok)
		r.Header.Set(BodyHeader, emptySum)
		if i == 0 {
			first = r.Clone(r.Context())
		}
		if err := k.Verify(r, now, seen); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	if n := seen.Len(); n > 4 {
		t.Fatalf("cache holds %d nonces, capacity 4", n)
	}
	// The first token's nonce was forgotten: it is refused by the horizon.
	if err := k.Verify(first, now, seen); !errors.Is(err, ErrBadToken) {
		t.Fatalf("forgotten token replayed: Verify = %v, want ErrBadToken", err)
	}
}

// capture is a man in the middle: it keeps the signed request it is given
// and does not send it.
type capture struct {
	req  *http.Request
	body []byte
}

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	c.req = r
	if r.Body != nil {
		c.body, _ = io.ReadAll(r.Body)
	}
	return nil, errors.New("captured")
}

// TestCapturedToken sends what a man in the middle captured from signed
// requests, to a real server, with another body, another query, and as it
// was.
func TestCapturedToken(t *testing.T) {
	k, _ := GenerateKey()
	var got []string
	var mu sync.Mutex
	srv := httptest.NewServer(k.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	})))
	defer srv.Close()
	grab := func(t *testing.T, body io.Reader) *capture {
		t.Helper()
		c := &capture{}
		req, _ := http.NewRequest("PUT", srv.URL+"/users?a=1", body)
		if _, err := (&http.Client{Transport: &Transport{Key: k, Base: c}}).Do(req); err == nil {
			t.Fatal("capture sent the request")
		}
		return c
	}
	send := func(t *testing.T, c *capture, query string, body []byte) int {
		t.Helper()
		req, _ := http.NewRequest("PUT", srv.URL+"/users?"+query, bytes.NewReader(body))
		req.Header = c.req.Header.Clone()
		if c.req.Trailer != nil {
			req.ContentLength = -1
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.Trailer = c.req.Trailer.Clone()
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name string
		body func() io.Reader
	}{
		{"Hashed", func() io.Reader { return strings.NewReader(`{"policy":"read"}`) }},
		{"Streamed", func() io.Reader { return io.MultiReader(strings.NewReader(`{"policy":"read"}`)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := grab(t, tc.body())
			if c.req.Trailer != nil != (tc.name == "Streamed") {
				t.Fatalf("trailer %v for a %s body", c.req.Trailer, tc.name)
			}
			if st := send(t, c, "a=1", []byte(`{"policy":"s3:*"}`)); st != http.StatusForbidden {
				t.Errorf("other body: status %d, want 403", st)
			}
			c = grab(t, tc.body())
			if st := send(t, c, "a=2", c.body); st != http.StatusForbidden {
				t.Errorf("other query: status %d, want 403", st)
			}
			c = grab(t, tc.body())
			if st := send(t, c, "a=1", c.body); st != http.StatusOK {
				t.Errorf("as captured: status %d, want 200", st)
			}
			if st := send(t, c, "a=1", c.body); st != http.StatusForbidden {
				t.Errorf("replayed as captured: status %d, want 403", st)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range got {
		if b != `{"policy":"read"}` {
			t.Errorf("handler read %q", b)
		}
	}
	if len(got) != 2 {
		t.Errorf("handler saw %d requests, want 2", len(got))
	}
}

func TestMiddleware(t *testing.T) {
	k, _ := GenerateKey()
	srv := httptest.NewServer(k.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	defer srv.Close()
	for _, c := range []struct {
		client *http.Client
		want   int
	}{
		{http.DefaultClient, 401},
		{&http.Client{Transport: &Transport{Key: []byte("0123456789abcdef0")}}, 403},
		{&http.Client{Transport: &Transport{Key: k}}, 200},
	} {
		resp, err := c.client.Get(srv.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("status %d, want %d", resp.StatusCode, c.want)
		}
	}
}

func TestParseKey(t *testing.T) {
	k, _ := GenerateKey()
	got, err := ParseKey(k.String())
	if err != nil || string(got) != string(k) {
		t.Fatalf("ParseKey round trip: %v", err)
	}
	if _, err := ParseKey("c2hvcnQ="); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := ParseKey("!!!"); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestMetricsGate(t *testing.T) {
	k, _ := GenerateKey()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	t.Run("Open", func(t *testing.T) {
		rec := httptest.NewRecorder()
		MetricsGate("", k, ok).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 {
			t.Fatalf("no token configured: %d", rec.Code)
		}
	})
	for name, c := range map[string]struct {
		set  func(*http.Request)
		want int
	}{
		"Bearer":      {func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok-123") }, 200},
		"ClusterKey":  {k.Sign, 200},
		"None":        {func(*http.Request) {}, 401},
		"WrongBearer": {func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok-124") }, 401},
	} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/metrics", nil)
			c.set(req)
			rec := httptest.NewRecorder()
			MetricsGate("tok-123", k, ok).ServeHTTP(rec, req)
			if rec.Code != c.want {
				t.Fatalf("status %d, want %d", rec.Code, c.want)
			}
		})
	}
}
