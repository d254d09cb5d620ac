package s3_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/signer"

	"depot/internal/testcluster"
)

// TestS3UnsignedAmzHeaders sends requests that carry x-amz-* headers their
// signature does not cover: a presigned PUT turned into a CopyObject by an
// added X-Amz-Copy-Source, added metadata, and the same on requests signed
// in the Authorization header. Each is refused as S3 refuses it (403
// AccessDenied, HeadersNotSigned) and writes nothing.
func TestS3UnsignedAmzHeaders(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Dataservers: 5, K: 2, M: 1})
	ctx := ctxT(t)
	u, err := url.Parse(c.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	h := &hostile{t: t, c: c, host: u.Host, creds: aws.Credentials{AccessKeyID: c.User, SecretAccessKey: c.Password}}
	h.want("create bucket", h.do(h.signed(http.MethodPut, "/shop", nil)), 200, "")
	secret := []byte("the shop's private price list")
	h.want("put secret", h.do(h.signed(http.MethodPut, "/shop/private/prices", secret)), 200, "")
	mc := mustMinio(t, c)

	// refused checks a 403 AccessDenied that names header, and that key
	// was not written.
	refused := func(t *testing.T, what string, a answer, header, key string) {
		t.Helper()
		var doc struct {
			Code, Message, HeadersNotSigned string
		}
		if err := xml.Unmarshal(a.body, &doc); err != nil || a.status != http.StatusForbidden || doc.Code != "AccessDenied" {
			t.Fatalf("%s: %d %q, want 403 AccessDenied", what, a.status, a.body)
		}
		if doc.Message != "There were headers present in the request which were not signed" || doc.HeadersNotSigned != header {
			t.Errorf("%s: message %q, HeadersNotSigned %q, want S3's message and %q", what, doc.Message, doc.HeadersNotSigned, header)
		}
		if _, err := mc.StatObject(ctx, "shop", key, minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
			t.Errorf("%s: %s was written (stat: %v)", what, key, err)
		}
	}

	t.Run("PresignedPutAsCopy", func(t *testing.T) {
		pu, err := mc.PresignedPutObject(ctx, "shop", "uploads/visitor-1", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPut, pu.String(), bytes.NewReader(nil))
		req.Header.Set("X-Amz-Copy-Source", "/shop/private/prices")
		refused(t, "presigned PUT with X-Amz-Copy-Source", h.do(req), "x-amz-copy-source", "uploads/visitor-1")

		// The URL still does what it was made for, and the exempt
		// x-amz-content-sha256 (the payload hash, signed through the
		// canonical request) may come along unsigned.
		body := []byte("a visitor's photo")
		req, _ = http.NewRequest(http.MethodPut, pu.String(), bytes.NewReader(body))
		req.Header.Set("X-Amz-Content-Sha256", unsigned)
		h.want("presigned PUT", h.do(req), 200, "")
		if got, err := get(ctx, mc, "shop", "uploads/visitor-1"); err != nil || got != string(body) {
			t.Fatalf("presigned PUT stored %q, %v", got, err)
		}
	})

	t.Run("PresignedPutWithMetadata", func(t *testing.T) {
		pu, err := mc.PresignedPutObject(ctx, "shop", "uploads/visitor-2", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPut, pu.String(), bytes.NewReader([]byte("x")))
		req.Header.Set("X-Amz-Meta-Owner", "mallory")
		req.Header.Set("X-Amz-Website-Redirect-Location", "https://evil.example/")
		refused(t, "presigned PUT with unsigned headers", h.do(req), "x-amz-meta-owner,x-amz-website-redirect-location", "uploads/visitor-2")
	})

	t.Run("HeaderSigned", func(t *testing.T) {
		req := h.signed(http.MethodPut, "/shop/copied", nil)
		req.Header.Set("X-Amz-Copy-Source", "/shop/private/prices")
		refused(t, "signed PUT with X-Amz-Copy-Source added", h.do(req), "x-amz-copy-source", "copied")

		// In the Authorization header, x-amz-content-sha256 must be
		// signed too.
		req = h.request(http.MethodPut, "/shop/nosha", []byte("body"))
		s := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
		if err := s.SignHTTP(context.Background(), h.creds, req, unsigned, "s3", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Amz-Content-Sha256", unsigned)
		refused(t, "x-amz-content-sha256 not signed", h.do(req), "x-amz-content-sha256", "nosha")

		h.want("signed copy", h.do(func() *http.Request {
			req := h.request(http.MethodPut, "/shop/copied", nil)
			req.Header.Set("X-Amz-Copy-Source", "/shop/private/prices")
			return h.sign(req, unsigned, "s3", "us-east-1", time.Now())
		}()), 200, "")
	})

	t.Run("PresignedV2", func(t *testing.T) {
		// Signature Version 2 signs every x-amz-* header: one added
		// breaks the signature.
		req, _ := http.NewRequest(http.MethodPut, c.Endpoint()+"/shop/uploads/visitor-3", nil)
		pre := signer.PreSignV2(*req, c.User, c.Password, 3600, false)
		req, _ = http.NewRequest(http.MethodPut, pre.URL.String(), bytes.NewReader(nil))
		req.Header.Set("X-Amz-Copy-Source", "/shop/private/prices")
		a := h.do(req)
		if a.status != http.StatusForbidden {
			t.Fatalf("V2 presigned PUT with X-Amz-Copy-Source: %d %s", a.status, a.code)
		}
		if _, err := mc.StatObject(ctx, "shop", "uploads/visitor-3", minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
			t.Errorf("V2: the copy was made (stat: %v)", err)
		}
	})
}
