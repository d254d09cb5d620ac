package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"depot"
	"depot/internal/testcluster"
)

type blobAnswer struct {
	Fid  string `json:"fid"`
	Size int64  `json:"size"`
	ETag string `json:"etag"`
}

func post(t *testing.T, c *testcluster.Cluster, body []byte, ct string, chunked bool) blobAnswer {
	t.Helper()
	var r io.Reader = bytes.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // hides the length: sent chunked
	}
	req, _ := http.NewRequest(http.MethodPost, c.Endpoint()+"/v1/blobs", r)
	req.SetBasicAuth(c.User, c.Password)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST: %s %s", resp.Status, b)
	}
	var a blobAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	return a
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestNative_Blobs(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 1000, 300 << 10, 1<<20 - 1, 1<<20 + 1, 3<<20 + 12345}
	for _, size := range sizes {
		t.Run(fmt.Sprintf("Size%d", size), func(t *testing.T) {
			body := make([]byte, size)
			for i := range body {
				body[i] = byte(rng.Uint32())
			}
			a := post(t, c, body, "image/jpeg", size%2 == 1)
			if a.Size != int64(size) {
				t.Fatalf("size %d, want %d", a.Size, size)
			}
			url := c.Endpoint() + "/v1/blobs/" + a.Fid
			resp, got := get(t, url, nil)
			if resp.StatusCode != 200 || !bytes.Equal(got, body) {
				t.Fatalf("GET: %s, %d bytes, equal=%v", resp.Status, len(got), bytes.Equal(got, body))
			}
			if ct := resp.Header.Get("Content-Type"); ct != "image/jpeg" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
				t.Errorf("Cache-Control %q", cc)
			}
			etag := resp.Header.Get("ETag")
			if etag != `"`+a.ETag+`"` {
				t.Errorf("ETag %q, want %q", etag, a.ETag)
			}
			resp, _ = get(t, url, map[string]string{"If-None-Match": etag})
			if resp.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match: %s", resp.Status)
			}
			if size > 10 {
				off, end := size/3, size/3+size/4
				resp, got = get(t, url, map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", off, end)})
				if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, body[off:end+1]) {
					t.Errorf("Range: %s, %d bytes", resp.Status, len(got))
				}
				resp, got = get(t, url, map[string]string{"Range": "bytes=-7"})
				if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, body[size-7:]) {
					t.Errorf("suffix Range: %s, %d bytes", resp.Status, len(got))
				}
			}
			resp, _ = get(t, url, map[string]string{"Range": fmt.Sprintf("bytes=%d-", size+10)})
			if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
				t.Errorf("unsatisfiable Range: %s", resp.Status)
			}
			req, _ := http.NewRequest(http.MethodHead, url, nil)
			hr, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			hr.Body.Close()
			if hr.StatusCode != 200 || hr.ContentLength != int64(size) {
				t.Errorf("HEAD: %s length %d", hr.Status, hr.ContentLength)
			}
		})
	}

	t.Run("ErrBadFid", func(t *testing.T) {
		for _, fid := range []string{"nonsense", "1,zz", "0,10c21e4b7"} {
			resp, _ := get(t, c.Endpoint()+"/v1/blobs/"+fid, nil)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s: %s, want 400", fid, resp.Status)
			}
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		a := post(t, c, []byte("hello"), "", false)
		fid, _ := depot.ParseFid(a.Fid)
		wrong := fid
		wrong.Cookie ^= 1
		unknown := fid
		unknown.Needle += 1000
		for _, f := range []depot.Fid{wrong, unknown, {Volume: 999, Needle: 1, Cookie: 1}} {
			resp, _ := get(t, c.Endpoint()+"/v1/blobs/"+f.String(), nil)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s: %s, want 404", f, resp.Status)
			}
		}
	})
	t.Run("Delete", func(t *testing.T) {
		a := post(t, c, bytes.Repeat([]byte("x"), 5<<20), "", false) // several segments: a manifest
		url := c.Endpoint() + "/v1/blobs/" + a.Fid
		req, _ := http.NewRequest(http.MethodDelete, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("unauthenticated DELETE: %s", resp.Status)
		}
		req.Header.Set("Authorization", "Bearer "+c.Password)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE: %s", resp.Status)
		}
		if resp, _ := get(t, url, nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET after DELETE: %s", resp.Status)
		}
	})
	t.Run("ErrUnauthorized", func(t *testing.T) {
		for _, set := range []func(*http.Request){
			func(*http.Request) {},
			func(r *http.Request) { r.SetBasicAuth(c.User, "wrong") },
			func(r *http.Request) { r.Header.Set("Authorization", "Bearer wrong") },
		} {
			req, _ := http.NewRequest(http.MethodPost, c.Endpoint()+"/v1/blobs", strings.NewReader("x"))
			set(req)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("POST without valid credentials: %s", resp.Status)
			}
		}
	})
}
