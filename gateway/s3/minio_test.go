package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"depot/internal/testcluster"
)

func mustMinio(t *testing.T, c *testcluster.Cluster) *minio.Client {
	t.Helper()
	return mustMinioOpts(t, c, 0)
}

// mustMinioOpts is mustMinio with a bound on attempts per request (0:
// minio-go's default). One attempt matters where the server refuses
// writes: minio-go rewinds a body for its retry while net/http may still
// be sending it, a race in the client that the race detector reports.
func mustMinioOpts(t *testing.T, c *testcluster.Cluster, attempts int) *minio.Client {
	t.Helper()
	u, err := url.Parse(c.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(c.User, c.Password, ""), Region: "us-east-1", MaxRetries: attempts})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestS3Minio(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	mc := mustMinio(t, c)
	ctx := ctxT(t)

	t.Run("Buckets", func(t *testing.T) {
		if err := mc.MakeBucket(ctx, "photos", minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
		// In us-east-1 AWS answers the owner's second create with 200.
		if err := mc.MakeBucket(ctx, "photos", minio.MakeBucketOptions{}); err != nil {
			t.Fatalf("second create: %v", err)
		}
		if err := mc.MakeBucket(ctx, "Bad_Name", minio.MakeBucketOptions{}); err == nil {
			t.Fatal("bad bucket name accepted")
		}
		ok, err := mc.BucketExists(ctx, "photos")
		if err != nil || !ok {
			t.Fatalf("exists: %v %v", ok, err)
		}
		ok, err = mc.BucketExists(ctx, "nope-bucket")
		if err != nil || ok {
			t.Fatalf("exists(nope): %v %v", ok, err)
		}
		bs, err := mc.ListBuckets(ctx)
		if err != nil || len(bs) != 1 || bs[0].Name != "photos" {
			t.Fatalf("list: %v %v", bs, err)
		}
		loc, err := mc.GetBucketLocation(ctx, "photos")
		if err != nil || loc != "us-east-1" {
			t.Fatalf("location %q %v", loc, err)
		}
	})

	keys := []string{"a b+c%d.jpg", "dir/../x", "ünïcødé/ファイル.png", "dir/sub/1", "dir/sub/2", "dir/top", "z"}
	bodies := map[string][]byte{}
	t.Run("PutGet", func(t *testing.T) {
		for i, k := range keys {
			body := randBytes(t, 1000*i+3*(i%2)*100_000)
			bodies[k] = body
			info, err := mc.PutObject(ctx, "photos", k, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{
				ContentType: "image/jpeg", UserMetadata: map[string]string{"color": "red"}, CacheControl: "max-age=60"})
			if err != nil {
				t.Fatalf("put %q: %v", k, err)
			}
			if info.Size != int64(len(body)) {
				t.Fatalf("put %q: size %d", k, info.Size)
			}
		}
		for _, k := range keys {
			obj, err := mc.GetObject(ctx, "photos", k, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(obj)
			if err != nil || !bytes.Equal(got, bodies[k]) {
				t.Fatalf("get %q: %d bytes, %v", k, len(got), err)
			}
			st, err := mc.StatObject(ctx, "photos", k, minio.StatObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.ContentType != "image/jpeg" || st.UserMetadata["Color"] != "red" || st.Metadata.Get("Cache-Control") != "max-age=60" {
				t.Fatalf("stat %q: %+v", k, st)
			}
		}
		_, err := mc.StatObject(ctx, "photos", "missing", minio.StatObjectOptions{})
		if minio.ToErrorResponse(err).Code != "NoSuchKey" {
			t.Fatalf("missing: %v", err)
		}
		o, _ := mc.GetObject(ctx, "nobucket", "x", minio.GetObjectOptions{})
		_, err = io.ReadAll(o)
		if minio.ToErrorResponse(err).Code != "NoSuchBucket" {
			t.Fatalf("no bucket: %v", err)
		}
	})

	t.Run("Range", func(t *testing.T) {
		k := "dir/sub/1"
		opts := minio.GetObjectOptions{}
		opts.SetRange(10, 99)
		obj, err := mc.GetObject(ctx, "photos", k, opts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(obj)
		if err != nil || !bytes.Equal(got, bodies[k][10:100]) {
			t.Fatalf("range: %d %v", len(got), err)
		}
		opts = minio.GetObjectOptions{}
		opts.SetRange(int64(len(bodies[k])+10), 0)
		obj, _ = mc.GetObject(ctx, "photos", k, opts)
		_, err = io.ReadAll(obj)
		if minio.ToErrorResponse(err).Code != "InvalidRange" {
			t.Fatalf("unsatisfiable: %v", err)
		}
	})

	t.Run("Conditions", func(t *testing.T) {
		k := "z"
		st, err := mc.StatObject(ctx, "photos", k, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		opts := minio.GetObjectOptions{}
		opts.SetMatchETag("wrong")
		_, err = mc.StatObject(ctx, "photos", k, minio.StatObjectOptions(opts))
		if minio.ToErrorResponse(err).StatusCode != http.StatusPreconditionFailed {
			t.Fatalf("if-match: %v", err)
		}
		opts = minio.GetObjectOptions{}
		opts.SetMatchETag(st.ETag)
		if _, err = mc.StatObject(ctx, "photos", k, minio.StatObjectOptions(opts)); err != nil {
			t.Fatalf("if-match ok: %v", err)
		}
		opts = minio.GetObjectOptions{}
		opts.SetUnmodified(st.LastModified.Add(-time.Hour))
		_, err = mc.StatObject(ctx, "photos", k, minio.StatObjectOptions(opts))
		if minio.ToErrorResponse(err).StatusCode != http.StatusPreconditionFailed {
			t.Fatalf("if-unmodified-since: %v", err)
		}
	})

	t.Run("List", func(t *testing.T) {
		var got []string
		for o := range mc.ListObjects(ctx, "photos", minio.ListObjectsOptions{Recursive: true, MaxKeys: 2}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			got = append(got, o.Key)
		}
		want := slices.Clone(keys)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("list v2: %q, want %q", got, want)
		}
		got = nil
		for o := range mc.ListObjects(ctx, "photos", minio.ListObjectsOptions{Prefix: "dir/", UseV1: true, MaxKeys: 1}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			got = append(got, o.Key)
		}
		if !slices.Equal(got, []string{"dir/../", "dir/sub/", "dir/top"}) {
			t.Fatalf("list v1 delimited: %q", got)
		}
		got = nil
		for o := range mc.ListObjects(ctx, "photos", minio.ListObjectsOptions{StartAfter: "dir/sub/1", Recursive: true}) {
			got = append(got, o.Key)
		}
		if !slices.Equal(got, []string{"dir/sub/2", "dir/top", "z", "ünïcødé/ファイル.png"}) {
			t.Fatalf("start-after: %q", got)
		}
	})

	t.Run("Copy", func(t *testing.T) {
		src := minio.CopySrcOptions{Bucket: "photos", Object: "z"}
		dst := minio.CopyDestOptions{Bucket: "photos", Object: "z-copy"}
		if _, err := mc.CopyObject(ctx, dst, src); err != nil {
			t.Fatal(err)
		}
		dst = minio.CopyDestOptions{Bucket: "photos", Object: "z-copy2", ReplaceMetadata: true, UserMetadata: map[string]string{"shape": "round"}}
		if _, err := mc.CopyObject(ctx, dst, src); err != nil {
			t.Fatal(err)
		}
		st, err := mc.StatObject(ctx, "photos", "z-copy2", minio.StatObjectOptions{})
		if err != nil || st.UserMetadata["Shape"] != "round" || st.UserMetadata["Color"] != "" {
			t.Fatalf("replaced meta: %+v %v", st.UserMetadata, err)
		}
		st, err = mc.StatObject(ctx, "photos", "z-copy", minio.StatObjectOptions{})
		if err != nil || st.UserMetadata["Color"] != "red" {
			t.Fatalf("copied meta: %+v %v", st.UserMetadata, err)
		}
		obj, _ := mc.GetObject(ctx, "photos", "z-copy", minio.GetObjectOptions{})
		got, err := io.ReadAll(obj)
		if err != nil || !bytes.Equal(got, bodies["z"]) {
			t.Fatalf("copy body: %v", err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		if err := mc.RemoveObject(ctx, "photos", "z-copy", minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := mc.RemoveObject(ctx, "photos", "never-there", minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		err := mc.RemoveBucket(ctx, "photos")
		if minio.ToErrorResponse(err).Code != "BucketNotEmpty" {
			t.Fatalf("remove non-empty bucket: %v", err)
		}
		ch := make(chan minio.ObjectInfo)
		go func() {
			defer close(ch)
			for o := range mc.ListObjects(ctx, "photos", minio.ListObjectsOptions{Recursive: true}) {
				ch <- o
			}
		}()
		for e := range mc.RemoveObjects(ctx, "photos", ch, minio.RemoveObjectsOptions{}) {
			t.Fatalf("remove objects: %v", e.Err)
		}
		if err := mc.RemoveBucket(ctx, "photos"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Multipart", func(t *testing.T) {
		if err := mc.MakeBucket(ctx, "big", minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
		body := randBytes(t, 100<<20)
		info, err := mc.PutObject(ctx, "big", "hundred", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{PartSize: 16 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(info.ETag, "-7") {
			t.Fatalf("multipart etag %q", info.ETag)
		}
		obj, err := mc.GetObject(ctx, "big", "hundred", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(obj)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("multipart read back: %d bytes, %v", len(got), err)
		}
	})

	t.Run("Presigned", func(t *testing.T) {
		body := []byte("presigned body " + fmt.Sprint(time.Now().UnixNano()))
		u, err := mc.PresignedPutObject(ctx, "big", "pre/signed", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPut, u.String(), bytes.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("presigned put: %s", resp.Status)
		}
		gu, err := mc.PresignedGetObject(ctx, "big", "pre/signed", time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err = http.Get(gu.String())
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(got, body) {
			t.Fatalf("presigned get: %s %q", resp.Status, got)
		}
		// Tampered signature.
		resp, err = http.Get(strings.Replace(gu.String(), "X-Amz-Signature=", "X-Amz-Signature=0", 1))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(b), "SignatureDoesNotMatch") {
			t.Fatalf("tampered: %s %s", resp.Status, b)
		}
		// Anonymous: denied.
		resp, err = http.Get(c.Endpoint() + "/big/pre/signed")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Fatalf("anonymous: %s", resp.Status)
		}
	})
}
