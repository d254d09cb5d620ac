package s3_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/signer"

	"depot/internal/testcluster"
)

// TestS3VersionsHardening gathers what a review of versioning found, in
// one cluster: checksum headers are checked whatever the body's size, and
// a malformed one is refused rather than echoed; an empty ?versionId is
// refused (400) instead of naming the null version; a version is read
// and deleted under s3:GetObjectVersion and s3:DeleteObjectVersion; an
// old version is restored by copying it onto its own key.
func TestS3VersionsHardening(t *testing.T) {
	const seg = 256 << 10
	c := testcluster.New(t, testcluster.Options{SegmentSize: seg})
	ctx := ctxT(t)
	mc := mustMinio(t, c)
	if err := mc.MakeBucket(ctx, "revb", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}

	// 1. A wrong checksum header or x-amz-content-sha256, whatever the
	// body's size against the segment size.
	for _, n := range []int{seg - 1, seg, 2 * seg} {
		body := randBytes(t, n)
		send := func(name string, mod func(*http.Request)) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.Endpoint()+"/revb/sum", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			mod(req)
			req = signer.SignV4(*req, c.User, c.Password, "", "us-east-1")
			status, code := s3Error(t, req)
			if status == http.StatusOK {
				t.Errorf("%d bytes, %s: accepted (200), want 400", n, name)
			} else {
				t.Logf("%d bytes, %s: %d %s", n, name, status, code)
			}
		}
		send("wrong x-amz-checksum-crc32", func(r *http.Request) {
			r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
			r.Header.Set("X-Amz-Checksum-Crc32", "AAAAAA==")
		})
		send("wrong x-amz-content-sha256", func(r *http.Request) {
			other := sha256.Sum256([]byte("another body"))
			r.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(other[:]))
		})
	}

	// 1b. A malformed checksum header is refused, never echoed.
	{
		body := []byte("hello")
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.Endpoint()+"/revb/echo", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		req.Header.Set("X-Amz-Checksum-Sha256", "not-base64!")
		req.Header.Set("X-Amz-Checksum-Type", "COMPOSITE")
		req = signer.SignV4(*req, c.User, c.Password, "", "us-east-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("unchecked checksum header: 200, answer x-amz-checksum-sha256 %q, type %q",
				resp.Header.Get("X-Amz-Checksum-Sha256"), resp.Header.Get("X-Amz-Checksum-Type"))
		}
	}

	// 1c. DELETE ?versionId= (empty): 400, as on AWS.
	if _, err := mc.PutObject(ctx, "revb", "nullk", strings.NewReader("null"), 4, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	emptyVersionDelete := func(key string) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.Endpoint()+"/revb/"+key+"?versionId=", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		req = signer.SignV4(*req, c.User, c.Password, "", "us-east-1")
		status, _ := s3Error(t, req)
		return status
	}
	if st := emptyVersionDelete("nullk"); st != http.StatusBadRequest {
		_, serr := mc.StatObject(ctx, "revb", "nullk", minio.StatObjectOptions{})
		t.Errorf("unversioned bucket, DELETE ?versionId=: %d, want 400; object still there: %v", st, serr == nil)
	}

	// 2. s3:DeleteObjectVersion and s3:GetObjectVersion denied,
	// s3:DeleteObject and s3:GetObject allowed.
	on := minio.BucketVersioningConfiguration{Status: "Enabled"}
	if err := mc.SetBucketVersioning(ctx, "revb", on); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.PutObject(ctx, "revb", "nullk", strings.NewReader("v2"), 2, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := emptyVersionDelete("nullk"); st != http.StatusBadRequest {
		_, serr := mc.StatObject(ctx, "revb", "nullk", minio.StatObjectOptions{VersionID: "null"})
		t.Errorf("versioned bucket, DELETE ?versionId=: %d, want 400; null version gone for good: %v", st, serr != nil)
	}
	v1, err := mc.PutObject(ctx, "revb", "k", strings.NewReader("one"), 3, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mc.PutObject(ctx, "revb", "k", strings.NewReader("two"), 3, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	eve := mustUser(t, c, "EVEKEY0000000000", "eve-secret-eve-secret", `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:DeleteObject"],"Resource":"arn:aws:s3:::revb/*"},
		{"Effect":"Deny","Action":["s3:DeleteObjectVersion","s3:GetObjectVersion"],"Resource":"arn:aws:s3:::revb/*"}]}`)
	if rc, err := eve.GetObject(ctx, "revb", "k", minio.GetObjectOptions{}); err != nil {
		t.Fatal(err)
	} else {
		rc.Close()
	}
	if rc, err := eve.GetObject(ctx, "revb", "k", minio.GetObjectOptions{VersionID: v1.VersionID}); err == nil {
		b, err := io.ReadAll(rc)
		rc.Close()
		if err == nil {
			t.Errorf("GetObjectVersion denied, yet eve read version %s: %q", v1.VersionID, b)
		}
	}
	err = eve.RemoveObject(ctx, "revb", "k", minio.RemoveObjectOptions{VersionID: v1.VersionID})
	if minio.ToErrorResponse(err).Code != "AccessDenied" {
		t.Errorf("DeleteObjectVersion denied: %v", err)
	}
	if err == nil {
		if _, serr := mc.StatObject(ctx, "revb", "k", minio.StatObjectOptions{VersionID: v1.VersionID}); serr != nil {
			t.Errorf("DeleteObjectVersion denied, yet eve deleted version %s for good (%v)", v1.VersionID, serr)
		}
	}

	// 3. Restore a previous version by copying it onto its own key (the
	// way AWS documents).
	_, err = mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "revb", Object: "k2"},
		minio.CopySrcOptions{Bucket: "revb", Object: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mc.PutObject(ctx, "revb", "k2", strings.NewReader("newer"), 5, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	vs := mc.ListObjects(ctx, "revb", minio.ListObjectsOptions{Prefix: "k2", WithVersions: true})
	var old string
	for o := range vs {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if !o.IsLatest {
			old = o.VersionID
		}
	}
	_, err = mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "revb", Object: "k2"},
		minio.CopySrcOptions{Bucket: "revb", Object: "k2", VersionID: old})
	if err != nil {
		t.Errorf("copy of version %s onto its own key (restore): %v", old, err)
	}
}
