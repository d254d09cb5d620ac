package s3_test

import (
	"bytes"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"depot/internal/testcluster"
)

// TestCompleteMultipartUploadRepeated sends CompleteMultipartUpload again
// after it succeeded, as a client does whose answer was lost: S3 answers
// 200 with the same ETag. Before, the gateway answered NoSuchUpload, and
// the client took the upload for failed. A repeat that names other parts,
// or comes after the key was overwritten, is NoSuchUpload; so is an abort
// after the completion, which deletes nothing.
func TestCompleteMultipartUploadRepeated(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	ctx := ctxT(t)
	ts := httptest.NewServer(c.GW.Server.Handler())
	t.Cleanup(ts.Close)
	cl := mustSDK(t, ts.URL, c.User, c.Password, ts.Client())
	b, k := aws.String("retry"), aws.String("obj")
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	up, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: k})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("the only part")
	part, err := cl.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: up.UploadId,
		PartNumber: aws.Int32(1), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	complete := func(etag *string) (*s3.CompleteMultipartUploadOutput, error) {
		return cl.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: up.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: etag}}}})
	}
	first, err := complete(part.ETag)
	if err != nil {
		t.Fatal(err)
	}
	again, err := complete(part.ETag)
	if err != nil || aws.ToString(again.ETag) != aws.ToString(first.ETag) {
		t.Fatalf("repeated complete: %v, ETag %q; want 200 with ETag %q", err, aws.ToString(again.ETag), aws.ToString(first.ETag))
	}
	if _, err := complete(aws.String(`"0123456789abcdef0123456789abcdef"`)); apiCode(err) != "NoSuchUpload" {
		t.Fatalf("complete naming another part: %v, want NoSuchUpload", err)
	}
	if _, err := cl.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: k, UploadId: up.UploadId}); apiCode(err) != "NoSuchUpload" {
		t.Fatalf("abort after complete: %v, want NoSuchUpload", err)
	}
	got, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k})
	if err != nil {
		t.Fatalf("object after the repeats: %v", err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(got.Body)
	got.Body.Close()
	if !bytes.Equal(buf.Bytes(), body) {
		t.Fatalf("object holds %q, want %q", buf.Bytes(), body)
	}
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: bytes.NewReader([]byte("newer"))}); err != nil {
		t.Fatal(err)
	}
	if _, err := complete(part.ETag); apiCode(err) != "NoSuchUpload" {
		t.Fatalf("complete after an overwrite: %v, want NoSuchUpload", err)
	}
}
