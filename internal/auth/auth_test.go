package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
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
	req := httptest.NewRequest("PUT", "/shards/1/0/5", nil)

	t.Run("OK", func(t *testing.T) {
		req.Header.Set(Header, k.Token("PUT", "/shards/1/0/5", now))
		if err := k.Verify(req, now); err != nil {
			t.Fatal(err)
		}
	})
	for name, tok := range map[string]string{
		"Missing":     "",
		"OtherKey":    other.Token("PUT", "/shards/1/0/5", now),
		"OtherPath":   k.Token("PUT", "/shards/1/0/6", now),
		"OtherMethod": k.Token("GET", "/shards/1/0/5", now),
		"Expired":     k.Token("PUT", "/shards/1/0/5", now.Add(-2*MaxSkew)),
		"Garbage":     "12345",
	} {
		t.Run("Err"+name, func(t *testing.T) {
			req.Header.Set(Header, tok)
			if err := k.Verify(req, now); !errors.Is(err, ErrBadToken) {
				t.Fatalf("Verify = %v, want ErrBadToken", err)
			}
		})
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
