package s3_test

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/signer"

	"depot/gateway"
	"depot/gateway/s3"
	"depot/internal/guard"
	"depot/internal/testcluster"
)

// Short limits, so that each is reached with little data and time.
const (
	testHeaderTimeout = 300 * time.Millisecond
	testBodyTimeout   = 300 * time.Millisecond
)

// timingSlack is how much later than its timeout a slow client may be cut
// off: generous, for loaded test machines.
const timingSlack = 10 * time.Second

// s3Code reads an S3 error document.
func s3Code(t *testing.T, resp *http.Response) string {
	t.Helper()
	var doc struct {
		Code string `xml:"Code"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("status %s, body not S3 XML: %q", resp.Status, b)
	}
	return doc.Code
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := minio.ToErrorResponse(err).Code; got != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

// TestS3Limits reaches each size limit of a gateway configured with small
// ones, with minio-go and raw HTTP.
func TestS3Limits(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Gateway: gateway.Config{
		// The 6 GiB declared PUT below is answered only when its body read
		// times out (BodyReadTimeout, 30 s: an old defect, see the closing
		// note of issue 13); the write timeout, also 30 s by default, then
		// raced it and CI saw the connection closed unanswered.
		WriteTimeout: 2 * time.Minute,
		MaxBlobSize:  1 << 20,
		S3: s3.Config{MaxObjectSize: 1 << 20, MaxHeaderBytes: 4 << 10, MaxKeyLength: 100,
			MaxMetadataSize: 256, MaxParts: 3, MaxListKeys: 2},
	}})
	mc := mustMinioOpts(t, c, 1)
	ctx := ctxT(t)
	if err := mc.MakeBucket(ctx, "lim", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("EntityTooLarge", func(t *testing.T) {
		body := randBytes(t, 1<<20+1)
		_, err := mc.PutObject(ctx, "lim", "big", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{DisableMultipart: true})
		wantCode(t, "one byte over", err, "EntityTooLarge")
		if _, err := mc.PutObject(ctx, "lim", "fits", bytes.NewReader(body[:1<<20]), 1<<20, minio.PutObjectOptions{}); err != nil {
			t.Fatalf("at the limit: %v", err)
		}
		// A declared length far above the limit is refused before any
		// byte of the body is read.
		u, _ := mc.PresignedPutObject(ctx, "lim", "huge", time.Minute)
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", u.RequestURI(), u.Host, int64(6)<<30)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		if code := s3Code(t, resp); resp.StatusCode != 400 || code != "EntityTooLarge" {
			t.Fatalf("6 GiB declared: %d %s", resp.StatusCode, code)
		}
	})

	t.Run("HeaderSection", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, c.Endpoint()+"/lim/x", nil)
		req.Header.Set("X-Pad", strings.Repeat("p", 5<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if code := s3Code(t, resp); resp.StatusCode != 400 || code != "RequestHeaderSectionTooLarge" {
			t.Fatalf("5 KiB of headers: %d %s", resp.StatusCode, code)
		}
	})

	t.Run("KeyTooLong", func(t *testing.T) {
		_, err := mc.PutObject(ctx, "lim", strings.Repeat("k", 101), strings.NewReader("x"), 1, minio.PutObjectOptions{})
		wantCode(t, "101-byte key", err, "KeyTooLongError")
		if _, err := mc.PutObject(ctx, "lim", strings.Repeat("k", 100), strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatalf("100-byte key: %v", err)
		}
	})

	t.Run("MetadataTooLarge", func(t *testing.T) {
		_, err := mc.PutObject(ctx, "lim", "meta", strings.NewReader("x"), 1,
			minio.PutObjectOptions{UserMetadata: map[string]string{"big": strings.Repeat("m", 300)}})
		wantCode(t, "300 bytes of metadata", err, "MetadataTooLarge")
		_, err = mc.PutObject(ctx, "lim", "meta", strings.NewReader("x"), 1,
			minio.PutObjectOptions{UserMetadata: map[string]string{"small": strings.Repeat("m", 100)}})
		if err != nil {
			t.Fatalf("100 bytes of metadata: %v", err)
		}
	})

	t.Run("Parts", func(t *testing.T) {
		core := minio.Core{Client: mc}
		id, err := core.NewMultipartUpload(ctx, "lim", "parts", minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer core.AbortMultipartUpload(ctx, "lim", "parts", id)
		if _, err := core.PutObjectPart(ctx, "lim", "parts", id, 3, strings.NewReader("x"), 1, minio.PutObjectPartOptions{}); err != nil {
			t.Fatalf("part 3: %v", err)
		}
		_, err = core.PutObjectPart(ctx, "lim", "parts", id, 4, strings.NewReader("x"), 1, minio.PutObjectPartOptions{})
		wantCode(t, "part 4 of at most 3", err, "InvalidArgument")
	})

	t.Run("ListPage", func(t *testing.T) {
		for i := range 3 {
			if _, err := mc.PutObject(ctx, "lim", fmt.Sprintf("page/%d", i), strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		core := minio.Core{Client: mc}
		res, err := core.ListObjectsV2("lim", "page/", "", "", "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		if res.MaxKeys != 2 || len(res.Contents) != 2 || !res.IsTruncated {
			t.Fatalf("max-keys 1000 with a cap of 2: MaxKeys %d, %d keys, truncated %v", res.MaxKeys, len(res.Contents), res.IsTruncated)
		}
	})
}

// TestS3SlowClients: a client that sends its headers a byte at a time is
// cut off within the header timeout, and one that stalls mid-body gets
// RequestTimeout (S3) or 408 (native) within the body timeout.
func TestS3SlowClients(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test: full mode only (guard's TestBody covers the mechanism)")
	}
	c := testcluster.New(t, testcluster.Options{Gateway: gateway.Config{
		ReadHeaderTimeout: testHeaderTimeout,
		BodyReadTimeout:   testBodyTimeout,
	}})
	mc := mustMinioOpts(t, c, 1)
	ctx := ctxT(t)
	if err := mc.MakeBucket(ctx, "slow", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(c.Endpoint(), "http://")

	t.Run("Headers", func(t *testing.T) {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		stop := make(chan struct{})
		sent := make(chan int, 1)
		go func() { // the slow-loris: one byte every 20ms, headers never end
			line := []byte("GET /slow/x HTTP/1.1\r\nHost: " + host + "\r\nX-Slow: " + strings.Repeat("s", 400))
			n := 0
			defer func() { sent <- n }()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for ; n < len(line); n++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := conn.Write(line[n : n+1]); err != nil {
					return
				}
			}
		}()
		conn.SetReadDeadline(time.Now().Add(testHeaderTimeout + 2*timingSlack))
		_, err = io.ReadAll(conn) // returns when the server closes
		took := time.Since(start)
		close(stop)
		n := <-sent
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection still open after %v (%d bytes sent)", took, n)
		}
		if took < testHeaderTimeout/2 || took > testHeaderTimeout+timingSlack {
			t.Fatalf("cut off after %v, header timeout %v", took, testHeaderTimeout)
		}
		t.Logf("slow-loris cut off after %v and %d header bytes", took, n)
	})

	stall := func(t *testing.T, head string) *http.Response {
		t.Helper()
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		io.WriteString(conn, head+"Content-Length: 10\r\n\r\n01234")
		start := time.Now()
		conn.SetReadDeadline(time.Now().Add(testBodyTimeout + 2*timingSlack))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer to a stalled body: %v", err)
		}
		if took := time.Since(start); took > testBodyTimeout+timingSlack {
			t.Fatalf("answered after %v, body timeout %v", took, testBodyTimeout)
		}
		return resp
	}

	t.Run("S3Body", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, c.Endpoint()+"/slow/body", nil)
		req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		req = signer.SignV4(*req, c.User, c.Password, "", "us-east-1")
		var head strings.Builder
		fmt.Fprintf(&head, "PUT /slow/body HTTP/1.1\r\nHost: %s\r\n", req.Host)
		req.Header.Write(&head)
		resp := stall(t, head.String())
		if code := s3Code(t, resp); resp.StatusCode != 400 || code != "RequestTimeout" {
			t.Fatalf("stalled S3 body: %d %s", resp.StatusCode, code)
		}
		if _, err := mc.StatObject(ctx, "slow", "body", minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
			t.Fatalf("stalled upload stored: %v", err)
		}
	})

	t.Run("NativeBody", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, c.Endpoint()+"/v1/blobs", nil)
		req.SetBasicAuth(c.User, c.Password)
		resp := stall(t, fmt.Sprintf("POST /v1/blobs HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n", host, req.Header.Get("Authorization")))
		if resp.StatusCode != http.StatusRequestTimeout {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("stalled native body: %s %s", resp.Status, b)
		}
	})
}

// TestS3RateLimit: past its burst, an access key gets SlowDown (503)
// while another key still works; past the IP's burst, S3 answers SlowDown
// and the native API 429.
func TestS3RateLimit(t *testing.T) {
	// Refills every 1000s: the counts below are exact.
	c := testcluster.New(t, testcluster.Options{Gateway: gateway.Config{
		RateLimit: guard.Config{PerIP: 0.001, PerIPBurst: 10, PerKey: 0.001, PerKeyBurst: 3},
	}})
	ctx := ctxT(t)
	root := mustMinioOpts(t, c, 1)
	for i := range 3 {
		if _, err := root.ListBuckets(ctx); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	_, err := root.ListBuckets(ctx)
	if er := minio.ToErrorResponse(err); er.Code != "SlowDown" || er.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("4th request of a key: %v (status %d)", err, er.StatusCode)
	}
	other := mustUser(t, c, "OTHER", "other-secret", "")
	if _, err := other.ListBuckets(ctx); err != nil {
		t.Fatalf("another key: %v", err)
	}
	// 5 of the IP's 10 requests are spent.
	for i := 6; ; i++ {
		resp, err := http.Get(c.Endpoint() + "/anybucket/key")
		if err != nil {
			t.Fatal(err)
		}
		code := s3Code(t, resp)
		resp.Body.Close()
		if i <= 10 {
			if code != "AccessDenied" {
				t.Fatalf("anonymous request %d: %d %s", i, resp.StatusCode, code)
			}
			continue
		}
		if resp.StatusCode != http.StatusServiceUnavailable || code != "SlowDown" {
			t.Fatalf("request %d from the IP: %d %s", i, resp.StatusCode, code)
		}
		break
	}
	resp, err := http.Get(c.Endpoint() + "/v1/blobs/1,0000000100000000")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("native request past the IP's burst: %s", resp.Status)
	}
}
