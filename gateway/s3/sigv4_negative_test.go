package s3_test

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"hash"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/signer"

	"depot/internal/testcluster"
)

// sha256Hasher is the hasher minio-go's streaming signer takes.
type sha256Hasher struct{ hash.Hash }

func (sha256Hasher) Close() {}

// s3Error sends req and decodes its S3 error answer.
func s3Error(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct{ Code, Message string }
	if err := xml.Unmarshal(b, &e); err != nil && resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d, not S3 XML: %q", req.Method, req.URL, resp.StatusCode, b)
	}
	return resp.StatusCode, e.Code
}

// TestS3SignatureNegative sends requests that AWS refuses and checks that
// depot refuses them with the same code.
func TestS3SignatureNegative(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	ctx := ctxT(t)
	if err := mustMinio(t, c).MakeBucket(ctx, "neg", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	url := c.Endpoint() + "/neg/obj"
	body := bytes.Repeat([]byte("depot "), 20000) // 120000 bytes: two 64 KiB chunks
	streaming := func(at time.Time) *http.Request {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return signer.StreamingSignV4(req, c.User, c.Password, "", "us-east-1", int64(len(body)), at, sha256Hasher{sha256.New()})
	}
	want := func(name string, req *http.Request, status int, code string) {
		t.Helper()
		gotStatus, gotCode := s3Error(t, req)
		if gotStatus != status || gotCode != code {
			t.Errorf("%s: %d %s, want %d %s", name, gotStatus, gotCode, status, code)
		}
	}

	// A good streaming upload passes, so the refusals below are for the
	// one thing each breaks.
	want("good streaming upload", streaming(time.Now()), http.StatusOK, "")

	// A chunk signature changed in flight.
	req := streaming(time.Now())
	signed, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(signed, []byte("chunk-signature=")) + len("chunk-signature=")
	if signed[i] == '0' {
		signed[i] = '1'
	} else {
		signed[i] = '0'
	}
	req.Body = io.NopCloser(bytes.NewReader(signed))
	want("bad chunk signature", req, http.StatusForbidden, "SignatureDoesNotMatch")

	// Signed 20 minutes ago: more than the 15 minutes allowed.
	want("clock skew", streaming(time.Now().Add(-20*time.Minute)), http.StatusForbidden, "RequestTimeTooSkewed")

	// A body that is not the one its Content-MD5 names.
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	other := md5.Sum([]byte("another body"))
	req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(other[:]))
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	req = signer.SignV4(*req, c.User, c.Password, "", "us-east-1")
	want("Content-MD5 mismatch", req, http.StatusBadRequest, "BadDigest")

	// A presigned URL past its expiry: valid for one second, then polled
	// (bounded) until the second is over.
	get, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	pre := signer.PreSignV4(*get, c.User, c.Password, "", "us-east-1", 1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := http.NewRequestWithContext(ctx, http.MethodGet, pre.URL.String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		status, code := s3Error(t, r)
		if status == http.StatusForbidden && code == "AccessDenied" {
			break
		}
		if status != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("expired presigned URL: %d %s, want 403 AccessDenied", status, code)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	if !strings.Contains(pre.URL.RawQuery, "X-Amz-Expires=1") {
		t.Fatalf("presigned URL without its expiry: %s", pre.URL)
	}
}
