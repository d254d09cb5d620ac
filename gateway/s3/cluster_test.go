package s3_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/cors"
	"github.com/minio/minio-go/v7/pkg/policy"

	"depot/internal/testcluster"
)

// TestS3KillTwo kills 2 of the 6 dataservers while S3 PUTs and GETs run:
// every PUT that succeeded reads back exactly afterwards.
func TestS3KillTwo(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	mc := mustMinioOpts(t, c, 1)
	ctx := ctxT(t)
	if err := mc.MakeBucket(ctx, "kill", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	stored := map[string][]byte{}
	attempts := 0
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			for i := 0; i < 10_000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d/%d", w, i)
				body := randBytes(t, 50_000+(i%5)*300_000)
				mu.Lock()
				attempts++
				mu.Unlock()
				if _, err := mc.PutObject(ctx, "kill", key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err == nil {
					mu.Lock()
					stored[key] = body
					mu.Unlock()
				}
				if o, err := mc.GetObject(ctx, "kill", key, minio.GetObjectOptions{}); err == nil {
					io.Copy(io.Discard, o)
					o.Close()
				}
			}
		})
	}
	// waitFor waits until n more PUTs were tried (or succeeded).
	waitFor := func(n int, succeeded bool) {
		count := func() int {
			mu.Lock()
			defer mu.Unlock()
			if succeeded {
				return len(stored)
			}
			return attempts
		}
		target := count() + n
		for range 20_000 {
			if count() >= target {
				return
			}
			<-afterTick()
		}
		t.Fatalf("fewer than %d more puts (succeeded=%v)", n, succeeded)
	}
	waitFor(10, true)
	for _, i := range []int{1, 4} {
		if err := c.KillDataserver(i); err != nil {
			t.Fatal(err)
		}
		waitFor(4, false) // writes in flight while the member dies
	}
	c.WaitDead(1)
	c.WaitDead(4)
	// With 4 of 4+2 members left, writes may fail (no write quorum): what
	// matters is that none that succeeded is lost.
	waitFor(8, false)
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for k, body := range stored {
		o, err := mc.GetObject(ctx, "kill", k, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(o)
		o.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%s: %d of %d bytes, %v", k, len(got), len(body), err)
		}
	}
	t.Logf("%d objects read back after losing 2 dataservers", len(stored))
}

// TestS3PublicAndCORS covers anonymous reads of public buckets (flag, canned
// ACL and policy) and CORS preflights.
func TestS3PublicAndCORS(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	mc := mustMinio(t, c)
	ctx := ctxT(t)
	ns := c.NSClient()
	for _, b := range []string{"flagged", "bypolicy", "closed"} {
		if err := mc.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := mc.PutObject(ctx, b, "img.jpg", strings.NewReader("jpeg"), 4, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pub := true
	if _, err := ns.SetBucket(ctx, "flagged", nsSettingsPublic(pub)); err != nil {
		t.Fatal(err)
	}
	if err := mc.SetBucketPolicy(ctx, "bypolicy", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::bypolicy/*"]}]}`); err != nil {
		t.Fatal(err)
	}
	_ = policy.BucketPolicyReadOnly
	// A bucket made public through the nameserver (not this gateway) is
	// public here once the gateway's bucket cache expires (KeyCacheTTL).
	for b, want := range map[string]int{"flagged": 200, "bypolicy": 200, "closed": 403} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, err := http.Get(c.Endpoint() + "/" + b + "/img.jpg")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("anonymous GET %s: %d, want %d", b, resp.StatusCode, want)
			}
			<-afterTick()
		}
	}
	req, _ := http.NewRequest(http.MethodPut, c.Endpoint()+"/flagged/new", strings.NewReader("x"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("anonymous PUT: %v %v", resp, err)
	}

	cfg := cors.NewConfig([]cors.Rule{{AllowedOrigin: []string{"https://shop.example"}, AllowedMethod: []string{"PUT", "GET"},
		AllowedHeader: []string{"*"}, ExposeHeader: []string{"ETag"}, MaxAgeSeconds: 600}})
	if err := mc.SetBucketCors(ctx, "closed", cfg); err != nil {
		t.Fatal(err)
	}
	got, err := mc.GetBucketCors(ctx, "closed")
	if err != nil || len(got.CORSRules) != 1 {
		t.Fatalf("get cors: %+v %v", got, err)
	}
	preflight := func(origin, method string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, c.Endpoint()+"/closed/upload.jpg", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", method)
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := preflight("https://shop.example", "PUT"); r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		r.Header.Get("Access-Control-Max-Age") != "600" {
		t.Fatalf("preflight: %d %v", r.StatusCode, r.Header)
	}
	if r := preflight("https://evil.example", "PUT"); r.StatusCode != 403 {
		t.Fatalf("foreign origin: %d", r.StatusCode)
	}
	if r := preflight("https://shop.example", "DELETE"); r.StatusCode != 403 {
		t.Fatalf("method not allowed: %d", r.StatusCode)
	}
	if err := mc.SetBucketCors(ctx, "closed", nil); err != nil {
		t.Fatal(err)
	}
	if r := preflight("https://shop.example", "PUT"); r.StatusCode != 403 {
		t.Fatalf("after delete: %d", r.StatusCode)
	}
}
