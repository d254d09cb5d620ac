package httpx

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestInProcess serves concurrent requests through a handler in the same
// process: each caller gets its own status, headers and body, the request
// body reaches the handler, and a missing handler is an error.
func TestInProcess(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo", r.URL.Query().Get("i"))
		if r.URL.Path == "/missing" {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	})
	hc := &http.Client{Transport: InProcess{Handler: func() (http.Handler, error) { return h, nil }}}
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			path := "/ok"
			if i%3 == 0 {
				path = "/missing"
			}
			resp, err := hc.Post(fmt.Sprintf("http://ns%s?i=%d", path, i), "text/plain", strings.NewReader(fmt.Sprint("body", i)))
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := resp.Header.Get("X-Echo"); got != fmt.Sprint(i) {
				t.Errorf("request %d: header %q", i, got)
			}
			switch {
			case path == "/missing" && resp.StatusCode != http.StatusNotFound:
				t.Errorf("request %d: status %d", i, resp.StatusCode)
			case path == "/ok" && (resp.StatusCode != http.StatusOK || string(b) != fmt.Sprintf("POST /ok body%d", i)):
				t.Errorf("request %d: %d %q", i, resp.StatusCode, b)
			}
		})
	}
	wg.Wait()
	down := &http.Client{Transport: InProcess{Handler: func() (http.Handler, error) { return nil, ErrNoHandler }}}
	if _, err := down.Get("http://ns/ok"); err == nil {
		t.Fatal("a stopped server answered")
	}
}
