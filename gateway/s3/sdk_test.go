package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"depot/internal/testcluster"
)

func mustSDK(t *testing.T, endpoint, user, secret string, hc *http.Client) *s3.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(user, secret, "")))
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
		o.HTTPClient = hc
	})
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestS3SDK(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	ctx := ctxT(t)
	// Over TLS, as the SDK sends its default trailing checksums only there.
	ts := httptest.NewUnstartedServer(c.GW.Server.Handler())
	ts.StartTLS()
	t.Cleanup(ts.Close)
	endpoint := ts.URL
	cl := mustSDK(t, endpoint, c.User, c.Password, ts.Client())
	b := aws.String("media")
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}

	t.Run("PutGetChecksums", func(t *testing.T) {
		body := randBytes(t, 300_000)
		out, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("k 1+%"), Body: bytes.NewReader(body),
			ContentType: aws.String("text/plain"), ContentDisposition: aws.String("attachment"), Metadata: map[string]string{"a": "b"}})
		if err != nil {
			t.Fatal(err)
		}
		if out.ETag == nil || len(*out.ETag) != 34 {
			t.Fatalf("etag %v", out.ETag)
		}
		// A body that is not seekable makes the SDK stream it with a
		// trailing checksum.
		_, err = cl.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("streamed"), Body: io.NopCloser(bytes.NewReader(body)),
			ContentLength: aws.Int64(int64(len(body))), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"k 1+%", "streamed"} {
			g, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String(k)})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(g.Body)
			g.Body.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("%q: %d bytes %v", k, len(got), err)
			}
		}
		h, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("k 1+%")})
		if err != nil || *h.ContentDisposition != "attachment" || h.Metadata["a"] != "b" || *h.ContentLength != int64(len(body)) {
			t.Fatalf("head: %+v %v", h, err)
		}
		_, err = cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("k 1+%"), IfNoneMatch: h.ETag})
		var re interface{ HTTPStatusCode() int }
		if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusNotModified {
			t.Fatalf("if-none-match: %v", err)
		}
	})

	t.Run("ListV2", func(t *testing.T) {
		var keys []string
		p := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: b, MaxKeys: aws.Int32(1), EncodingType: types.EncodingTypeUrl})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range page.Contents {
				k, err := url.QueryUnescape(*o.Key)
				if err != nil {
					t.Fatal(err)
				}
				keys = append(keys, k)
			}
		}
		if strings.Join(keys, "|") != "k 1+%|streamed" {
			t.Fatalf("keys %q", keys)
		}
	})

	t.Run("Multipart", func(t *testing.T) {
		k := aws.String("mp")
		cr, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: k, ContentType: aws.String("video/mp4")})
		if err != nil {
			t.Fatal(err)
		}
		p1, p2 := randBytes(t, 5<<20), randBytes(t, 1234)
		var parts []types.CompletedPart
		for i, body := range [][]byte{p1, p2} {
			up, err := cl.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: cr.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(body)})
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, types.CompletedPart{ETag: up.ETag, PartNumber: aws.Int32(int32(i + 1))})
		}
		lp, err := cl.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: k, UploadId: cr.UploadId})
		if err != nil || len(lp.Parts) != 2 {
			t.Fatalf("list parts: %v", err)
		}
		lu, err := cl.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: b})
		if err != nil || len(lu.Uploads) != 1 || *lu.Uploads[0].UploadId != *cr.UploadId {
			t.Fatalf("list uploads: %+v %v", lu, err)
		}
		// Out of order.
		_, err = cl.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: cr.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{parts[1], parts[0]}}})
		if apiCode(err) != "InvalidPartOrder" {
			t.Fatalf("out of order: %v", err)
		}
		_, err = cl.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: cr.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{ETag: aws.String(`"00"`), PartNumber: aws.Int32(1)}}}})
		if apiCode(err) != "InvalidPart" {
			t.Fatalf("bad etag: %v", err)
		}
		_, err = cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: k})
		if err == nil {
			t.Fatal("object visible before completion")
		}
		done, err := cl.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: cr.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
		if err != nil || !strings.HasSuffix(*done.ETag, `-2"`) {
			t.Fatalf("complete: %v", err)
		}
		g, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(g.Body)
		g.Body.Close()
		if !bytes.Equal(got, append(append([]byte{}, p1...), p2...)) || *g.ContentType != "video/mp4" {
			t.Fatal("multipart body differs")
		}
		// Part copy and abort.
		cr2, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("mp2")})
		if err != nil {
			t.Fatal(err)
		}
		pc, err := cl.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: b, Key: aws.String("mp2"), UploadId: cr2.UploadId, PartNumber: aws.Int32(1),
			CopySource: aws.String("media/mp"), CopySourceRange: aws.String("bytes=0-99")})
		if err != nil || pc.CopyPartResult == nil {
			t.Fatalf("part copy: %v", err)
		}
		if _, err := cl.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: aws.String("mp2"), UploadId: cr2.UploadId}); err != nil {
			t.Fatal(err)
		}
		_, err = cl.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: aws.String("mp2"), UploadId: cr2.UploadId})
		if apiCode(err) != "NoSuchUpload" {
			t.Fatalf("after abort: %v", err)
		}
	})

	t.Run("DeleteObjects", func(t *testing.T) {
		out, err := cl.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{
			Objects: []types.ObjectIdentifier{{Key: aws.String("streamed")}, {Key: aws.String("absent")}}}})
		if err != nil || len(out.Deleted) != 2 {
			t.Fatalf("delete objects: %+v %v", out, err)
		}
		out, err = cl.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{Quiet: aws.Bool(true),
			Objects: []types.ObjectIdentifier{{Key: aws.String("mp")}}}})
		if err != nil || len(out.Deleted) != 0 {
			t.Fatalf("quiet: %+v %v", out, err)
		}
	})

	t.Run("Auth", func(t *testing.T) {
		bad := mustSDK(t, endpoint, c.User, "wrong", ts.Client())
		_, err := bad.ListBuckets(ctx, &s3.ListBucketsInput{})
		if apiCode(err) != "SignatureDoesNotMatch" {
			t.Fatalf("wrong secret: %v", err)
		}
		unknown := mustSDK(t, endpoint, "NOBODY", "x", ts.Client())
		_, err = unknown.ListBuckets(ctx, &s3.ListBucketsInput{})
		if apiCode(err) != "InvalidAccessKeyId" {
			t.Fatalf("unknown key: %v", err)
		}
		ns := c.NSClient()
		if err := ns.PutUser(ctx, nsUser("ALICE", "alice-secret")); err != nil {
			t.Fatal(err)
		}
		alice := mustSDK(t, endpoint, "ALICE", "alice-secret", ts.Client())
		if _, err := alice.ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
			t.Fatalf("added user: %v", err)
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		_, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("x"), Range: aws.String("bytes=999999-")})
		if apiCode(err) != "NoSuchKey" {
			t.Fatalf("missing: %v", err)
		}
		_, err = cl.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String(strings.Repeat("k", 1025)), Body: strings.NewReader("x")})
		if apiCode(err) != "KeyTooLongError" {
			t.Fatalf("long key: %v", err)
		}
		_, err = cl.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: b, Key: aws.String("x")})
		if apiCode(err) != "NoSuchKey" {
			t.Fatalf("tagging of a missing key: %v", err)
		}
	})
}
