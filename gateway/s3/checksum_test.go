package s3_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/crc64nvme"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"depot/internal/testcluster"
)

// TestS3Checksums: the checksum a client sends with a PUT (aws-sdk-go-v2
// with CRC32 and SHA256, minio-go with CRC64NVME in an aws-chunked
// trailer) is kept and returned on GET and HEAD with checksum mode
// enabled (the SDK validates the answer against the bytes), in
// GetObjectAttributes, and after a copy; a range read carries none.
func TestS3Checksums(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	cl := mustSDK(t, c.Endpoint(), c.User, c.Password, http.DefaultClient)
	u, err := url.Parse(c.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(c.User, c.Password, ""), Region: "us-east-1", TrailingHeaders: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	b := aws.String("sums")
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	data := randBytes(t, 300<<10)
	b64 := func(sum []byte) string { return base64.StdEncoding.EncodeToString(sum) }
	crc := crc32.ChecksumIEEE(data)
	wantCRC32 := b64([]byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)})
	sha := sha256.Sum256(data)
	wantSHA256 := b64(sha[:])

	for key, algo := range map[string]types.ChecksumAlgorithm{"crc32": types.ChecksumAlgorithmCrc32, "sha256": types.ChecksumAlgorithmSha256} {
		put, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String(key), Body: bytes.NewReader(data), ChecksumAlgorithm: algo})
		if err != nil {
			t.Fatal(err)
		}
		got, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(got.Body) // the SDK checks the checksum as it reads
		got.Body.Close()
		if err != nil || !bytes.Equal(body, data) {
			t.Fatalf("%s: read back: %v", key, err)
		}
		want, have := wantCRC32, aws.ToString(got.ChecksumCRC32)
		if key == "sha256" {
			want, have = wantSHA256, aws.ToString(got.ChecksumSHA256)
		}
		if have != want || aws.ToString(put.ChecksumCRC32)+aws.ToString(put.ChecksumSHA256) != want {
			t.Fatalf("%s: PUT answered %q/%q, GET %q, want %q", key, aws.ToString(put.ChecksumCRC32), aws.ToString(put.ChecksumSHA256), have, want)
		}
	}
	// Without checksum mode, and for a range, no checksum.
	head, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("crc32")})
	if err != nil || head.ChecksumCRC32 != nil {
		t.Fatalf("HEAD without checksum mode: %v %v", aws.ToString(head.ChecksumCRC32), err)
	}
	rng, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("crc32"), Range: aws.String("bytes=0-99"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	rng.Body.Close()
	if rng.ChecksumCRC32 != nil {
		t.Fatal("a range read carries the whole object's checksum")
	}
	attrs, err := cl.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: aws.String("crc32"),
		ObjectAttributes: []types.ObjectAttributes{types.ObjectAttributesChecksum}})
	if err != nil || attrs.Checksum == nil || aws.ToString(attrs.Checksum.ChecksumCRC32) != wantCRC32 {
		t.Fatalf("attributes: %+v, %v", attrs.Checksum, err)
	}

	// minio-go: CRC64NVME in a trailer; a copy keeps it.
	h := crc64nvme.New()
	h.Write(data)
	wantNVME := b64(h.Sum(nil))
	if _, err := mc.PutObject(ctx, "sums", "nvme", bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{Checksum: minio.ChecksumCRC64NVME}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("nvme-copy"), CopySource: aws.String("sums/nvme")}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"nvme", "nvme-copy"} {
		hd, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil || aws.ToString(hd.ChecksumCRC64NVME) != wantNVME {
			t.Fatalf("%s: CRC64NVME %q, want %q (%v)", key, aws.ToString(hd.ChecksumCRC64NVME), wantNVME, err)
		}
	}
}
