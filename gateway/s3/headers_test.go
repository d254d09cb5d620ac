package s3_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"depot/internal/testcluster"
)

// TestS3OversizedHeaders sends a request whose headers exceed S3's 8 KiB
// header section: the answer is the S3 error document, not a bare 431.
func TestS3OversizedHeaders(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	req, err := http.NewRequest(http.MethodGet, c.Endpoint()+"/some-bucket/some-key", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Meta-Big", strings.Repeat("x", 20<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var doc struct {
		Code string `xml:"Code"`
	}
	if err := xml.Unmarshal(body, &doc); err != nil {
		t.Fatalf("status %s, body not S3 XML: %v: %q", resp.Status, err, body)
	}
	if resp.StatusCode != http.StatusBadRequest || doc.Code != "RequestHeaderSectionTooLarge" {
		t.Fatalf("status %s code %q, want 400 RequestHeaderSectionTooLarge", resp.Status, doc.Code)
	}
}

// TestS3ContentEncodingAWSChunked: minio-go uploads over plain HTTP with
// sigv4 streaming, which sends Content-Encoding "aws-chunked[,enc]". As on
// S3, the stored Content-Encoding is what is left without aws-chunked.
func TestS3ContentEncodingAWSChunked(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	mc := mustMinio(t, c)
	ctx := ctxT(t)
	if err := mc.MakeBucket(ctx, "enc", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	body := randBytes(t, 1000)
	for key, enc := range map[string]string{"plain": "", "gzip": "gzip"} {
		_, err := mc.PutObject(ctx, "enc", key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{ContentEncoding: enc})
		if err != nil {
			t.Fatal(err)
		}
		st, err := mc.StatObject(ctx, "enc", key, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Metadata.Get("Content-Encoding"); got != enc {
			t.Fatalf("%s: Content-Encoding %q, want %q", key, got, enc)
		}
	}
}
