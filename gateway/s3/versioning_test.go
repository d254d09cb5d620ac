package s3_test

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/minio-go/v7"

	"depot/internal/testcluster"
)

// TestS3Versioning drives S3 versioning with minio-go and aws-sdk-go-v2:
// version ids on PUT, copy and multipart completion; GET and HEAD of any
// version; delete markers (NoSuchKey with x-amz-delete-marker, 405 for
// the marker's own version); the newest version coming back when the
// marker goes; ListObjectVersions in S3's order with delete markers;
// suspended buckets writing the null version; wrong version ids; and a
// bucket emptied by deleting every version, then deleted.
func TestS3Versioning(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	mc := mustMinio(t, c)
	cl := mustSDK(t, c.Endpoint(), c.User, c.Password, http.DefaultClient)
	ctx := ctxT(t)
	const b = "history"
	if err := mc.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if cfg, err := mc.GetBucketVersioning(ctx, b); err != nil || cfg.Status != "" {
		t.Fatalf("new bucket versioning: %+v, %v", cfg, err)
	}
	// An object from before versioning: the null version.
	v0 := randBytes(t, 3000)
	if _, err := mc.PutObject(ctx, b, "k", bytes.NewReader(v0), int64(len(v0)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := mc.EnableVersioning(ctx, b); err != nil {
		t.Fatal(err)
	}
	if cfg, err := mc.GetBucketVersioning(ctx, b); err != nil || cfg.Status != "Enabled" {
		t.Fatalf("versioning: %+v, %v", cfg, err)
	}
	bodies := map[string][]byte{"null": v0}
	var ids []string
	for i := range 2 {
		data := randBytes(t, 1000*(i+1))
		info, err := mc.PutObject(ctx, b, "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if info.VersionID == "" || bodies[info.VersionID] != nil {
			t.Fatalf("put %d: version id %q", i, info.VersionID)
		}
		bodies[info.VersionID] = data
		ids = append(ids, info.VersionID)
	}
	read := func(version string) []byte {
		t.Helper()
		r, err := mc.GetObject(ctx, b, "k", minio.GetObjectOptions{VersionID: version})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("read version %q: %v", version, err)
		}
		return got
	}
	for v, want := range bodies {
		if got := read(v); !bytes.Equal(got, want) {
			t.Fatalf("version %s: %d bytes, want %d", v, len(got), len(want))
		}
	}
	if got := read(""); !bytes.Equal(got, bodies[ids[1]]) {
		t.Fatal("the current version is not the newest")
	}
	if st, err := mc.StatObject(ctx, b, "k", minio.StatObjectOptions{}); err != nil || st.VersionID != ids[1] {
		t.Fatalf("HEAD: version %q, %v", st.VersionID, err)
	}

	// Copy from an old version, and a multipart completion: new versions.
	cp, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: b, Object: "copy"}, minio.CopySrcOptions{Bucket: b, Object: "k", VersionID: "null"})
	if err != nil || cp.VersionID == "" {
		t.Fatalf("copy of the null version: %+v, %v", cp, err)
	}
	r, err := mc.GetObject(ctx, b, "copy", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, v0) {
		t.Fatal("copy of the null version has other bytes")
	}
	big := randBytes(t, 11<<20)
	mp, err := mc.PutObject(ctx, b, "mp", bytes.NewReader(big), int64(len(big)), minio.PutObjectOptions{PartSize: 5 << 20})
	if err != nil || mp.VersionID == "" {
		t.Fatalf("multipart: %+v, %v", mp, err)
	}

	// Delete: a marker; the key is gone, its versions stay.
	del, err := cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b), Key: aws.String("k")})
	if err != nil || !aws.ToBool(del.DeleteMarker) || aws.ToString(del.VersionId) == "" {
		t.Fatalf("delete: %+v, %v", del, err)
	}
	marker := aws.ToString(del.VersionId)
	_, err = cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("k")})
	if apiCode(err) != "NoSuchKey" {
		t.Fatalf("GET behind a delete marker: %v", err)
	}
	_, err = cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("k"), VersionId: aws.String(marker)})
	if apiCode(err) != "MethodNotAllowed" {
		t.Fatalf("GET of the delete marker's version: %v", err)
	}
	if got := read(ids[0]); !bytes.Equal(got, bodies[ids[0]]) {
		t.Fatal("an old version changed behind the marker")
	}
	_, err = cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("k"), VersionId: aws.String("0000000000000000deadbeef")})
	if apiCode(err) != "NoSuchVersion" {
		t.Fatalf("GET of a version that does not exist: %v", err)
	}
	lo, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b)})
	if err != nil || len(lo.Contents) != 2 {
		t.Fatalf("list behind a marker: %d keys, %v", len(lo.Contents), err)
	}

	// ListObjectVersions: k's marker, then its versions newest first.
	lv, err := cl.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(b), Prefix: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	if len(lv.DeleteMarkers) != 1 || aws.ToString(lv.DeleteMarkers[0].VersionId) != marker || !aws.ToBool(lv.DeleteMarkers[0].IsLatest) {
		t.Fatalf("delete markers: %+v", lv.DeleteMarkers)
	}
	var order []string
	for _, v := range lv.Versions {
		order = append(order, aws.ToString(v.VersionId))
		if aws.ToBool(v.IsLatest) {
			t.Fatalf("version %s is latest behind a marker", aws.ToString(v.VersionId))
		}
	}
	if want := []string{ids[1], ids[0], "null"}; !slices.Equal(order, want) {
		t.Fatalf("versions %q, want %q", order, want)
	}

	// Removing the marker brings the newest version back.
	if _, err := cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b), Key: aws.String("k"), VersionId: aws.String(marker)}); err != nil {
		t.Fatal(err)
	}
	if got := read(""); !bytes.Equal(got, bodies[ids[1]]) {
		t.Fatal("after the marker went: not the newest version")
	}

	// Suspended: a write is the null version and replaces it.
	if err := mc.SuspendVersioning(ctx, b); err != nil {
		t.Fatal(err)
	}
	s1 := randBytes(t, 500)
	info, err := mc.PutObject(ctx, b, "k", bytes.NewReader(s1), int64(len(s1)), minio.PutObjectOptions{})
	if err != nil || info.VersionID != "null" {
		t.Fatalf("suspended put: %+v, %v", info, err)
	}
	if got := read("null"); !bytes.Equal(got, s1) {
		t.Fatal("the null version is not the suspended write")
	}
	if got := read(ids[0]); !bytes.Equal(got, bodies[ids[0]]) {
		t.Fatal("a version with an id changed in the suspended bucket")
	}

	// Empty the bucket by its versions, as cleanup tools do.
	if _, err := cl.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(b)}); apiCode(err) != "BucketNotEmpty" {
		t.Fatalf("delete a bucket with versions: %v", err)
	}
	var all []types.ObjectIdentifier
	p := s3.NewListObjectVersionsPaginator(cl, &s3.ListObjectVersionsInput{Bucket: aws.String(b), MaxKeys: aws.Int32(2)})
	for pages := 0; p.HasMorePages() && pages < 20; pages++ {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Versions {
			all = append(all, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range page.DeleteMarkers {
			all = append(all, types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
		}
	}
	// k: null (suspended write), ids[1], ids[0]; copy; mp.
	if len(all) != 5 {
		t.Fatalf("%d versions listed, want 5: %+v", len(all), all)
	}
	out, err := cl.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(b), Delete: &types.Delete{Objects: all}})
	if err != nil || len(out.Errors) != 0 || len(out.Deleted) != 5 {
		t.Fatalf("delete every version: %+v, %v", out, err)
	}
	if _, err := cl.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(b)}); err != nil {
		t.Fatalf("delete the emptied bucket: %v", err)
	}
}
