package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"depot/shop/web"
)

// TestSecurityHeaders checks the headers every page carries, the CSRF
// cookie's attributes and that product text is escaped.
func TestSecurityHeaders(t *testing.T) {
	fc := &fakeCatalog{}
	newServer := func(cfg web.Config) *web.Server {
		t.Helper()
		cfg.Catalog, cfg.Reviews = fc, fakeReviews{}
		s, err := web.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := newServer(web.Config{MediaOrigins: []string{"http://depot.example:9000/"}})
	srv := httptest.NewServer(s)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/products/new")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("new product page: %s", resp.Status)
	}
	h := resp.Header
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self';", "style-src 'self';",
		"img-src 'self' http://depot.example:9000;", "connect-src 'self' http://depot.example:9000;",
		"frame-ancestors 'none'", "object-src 'none'", "form-action 'self'"} {
		if !strings.Contains(csp+";", want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy allows unsafe sources: %q", csp)
	}
	for name, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	// The pages hold no inline script or style that the policy would block.
	for _, bad := range []string{"<script>", " style=", " onclick=", " onload=", "javascript:"} {
		if strings.Contains(string(body), bad) {
			t.Errorf("page holds %q", bad)
		}
	}
	cookie := func(resp *http.Response) *http.Cookie {
		t.Helper()
		for _, c := range resp.Cookies() {
			if c.Name == "shop_csrf" {
				return c
			}
		}
		t.Fatalf("no CSRF cookie in %v", resp.Header["Set-Cookie"])
		return nil
	}
	c := cookie(resp)
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure {
		t.Errorf("plain-HTTP cookie: HttpOnly %v SameSite %v Secure %v", c.HttpOnly, c.SameSite, c.Secure)
	}

	// Over TLS, or when configured behind a TLS proxy, cookies are Secure.
	tlsSrv := httptest.NewTLSServer(s)
	defer tlsSrv.Close()
	resp, err = tlsSrv.Client().Get(tlsSrv.URL + "/products/new")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := cookie(resp); !c.Secure || !c.HttpOnly {
		t.Errorf("TLS cookie: Secure %v HttpOnly %v", c.Secure, c.HttpOnly)
	}
	proxied := httptest.NewServer(newServer(web.Config{SecureCookies: true}))
	defer proxied.Close()
	resp, err = http.Get(proxied.URL + "/products/new")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := cookie(resp); !c.Secure {
		t.Error("SecureCookies: cookie not Secure")
	}

	if _, err := web.New(web.Config{Catalog: fc, Reviews: fakeReviews{}, MediaOrigins: []string{"depot.example"}}); err == nil {
		t.Error("a media origin without a scheme was accepted")
	}
}

// TestEscaping renders product titles holding markup: html/template
// escapes them in text and in attributes.
func TestEscaping(t *testing.T) {
	srv := newGridServer(t, 2) // titles "Product <0> & co"
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "Product <0>") || !strings.Contains(string(body), "Product &lt;0&gt; &amp; co") {
		t.Fatalf("title not escaped:\n%s", body)
	}
}
