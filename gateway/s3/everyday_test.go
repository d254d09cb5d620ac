package s3_test

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"depot/internal/testcluster"
)

// TestS3ListBucketsPaged: ListBuckets with prefix, max-buckets and
// continuation tokens, as aws-sdk-go-v2's paginator drives it.
func TestS3ListBucketsPaged(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	cl := mustSDK(t, c.Endpoint(), c.User, c.Password, http.DefaultClient)
	ctx := ctxT(t)
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("page-%02d", i)
		want = append(want, name)
		if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("other")}); err != nil {
		t.Fatal(err)
	}
	var got []string
	pages := 0
	p := s3.NewListBucketsPaginator(cl, &s3.ListBucketsInput{Prefix: aws.String("page-"), MaxBuckets: aws.Int32(3)})
	for p.HasMorePages() && pages < 10 {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, b := range out.Buckets {
			if aws.ToString(b.BucketRegion) != "us-east-1" {
				t.Fatalf("bucket %s region %q", aws.ToString(b.Name), aws.ToString(b.BucketRegion))
			}
			got = append(got, aws.ToString(b.Name))
		}
	}
	if !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("listed %q in %d pages, want %q in 3", got, pages, want)
	}
	all, err := cl.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil || len(all.Buckets) != 8 || all.ContinuationToken != nil {
		t.Fatalf("unpaged: %d buckets, token %v, %v", len(all.Buckets), all.ContinuationToken, err)
	}
	_, err = cl.ListBuckets(ctx, &s3.ListBucketsInput{MaxBuckets: aws.Int32(0)})
	if apiCode(err) != "InvalidArgument" {
		t.Fatalf("max-buckets 0: %v", err)
	}
}

// TestS3GetObjectAttributes: size, ETag, storage class and the parts of a
// multipart object, paged, as aws-sdk-go-v2 asks for them.
func TestS3GetObjectAttributes(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	cl := mustSDK(t, c.Endpoint(), c.User, c.Password, http.DefaultClient)
	ctx := ctxT(t)
	b := aws.String("attrs")
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	up, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("mp")})
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int64{5 << 20, 5 << 20, 1234}
	var parts []types.CompletedPart
	for i, n := range sizes {
		out, err := cl.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String("mp"), UploadId: up.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(randBytes(t, int(n)))})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag})
	}
	done, err := cl.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("mp"),
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		t.Fatal(err)
	}
	attrs := []types.ObjectAttributes{types.ObjectAttributesEtag, types.ObjectAttributesObjectSize,
		types.ObjectAttributesStorageClass, types.ObjectAttributesObjectParts}
	out, err := cl.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: aws.String("mp"),
		ObjectAttributes: attrs, MaxParts: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	if `"`+aws.ToString(out.ETag)+`"` != aws.ToString(done.ETag) || aws.ToInt64(out.ObjectSize) != 10<<20+1234 ||
		out.StorageClass != types.StorageClassStandard || out.LastModified == nil {
		t.Fatalf("attributes: etag %q (object %q), size %d, class %q", aws.ToString(out.ETag), aws.ToString(done.ETag),
			aws.ToInt64(out.ObjectSize), out.StorageClass)
	}
	op := out.ObjectParts
	if op == nil || aws.ToInt32(op.TotalPartsCount) != 3 || !aws.ToBool(op.IsTruncated) || len(op.Parts) != 2 ||
		aws.ToInt64(op.Parts[1].Size) != 5<<20 || aws.ToString(op.NextPartNumberMarker) != "2" {
		t.Fatalf("first page of parts: %+v", op)
	}
	out, err = cl.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: aws.String("mp"),
		ObjectAttributes: attrs, MaxParts: aws.Int32(2), PartNumberMarker: op.NextPartNumberMarker})
	if err != nil {
		t.Fatal(err)
	}
	if op = out.ObjectParts; len(op.Parts) != 1 || aws.ToInt32(op.Parts[0].PartNumber) != 3 || aws.ToInt64(op.Parts[0].Size) != 1234 || aws.ToBool(op.IsTruncated) {
		t.Fatalf("second page of parts: %+v", op)
	}
	_, err = cl.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: aws.String("none"), ObjectAttributes: attrs})
	if apiCode(err) != "NoSuchKey" {
		t.Fatalf("attributes of a missing key: %v", err)
	}
}
