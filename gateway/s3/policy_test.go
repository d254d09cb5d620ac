package s3_test

import (
	"bytes"
	"context"
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

// minioAs returns a minio-go client with another key pair than the root's.
func minioAs(t *testing.T, c *testcluster.Cluster, ak, secret string) *minio.Client {
	t.Helper()
	u, err := url.Parse(c.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(ak, secret, ""), Region: "us-east-1", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

// mustUser adds a key pair with an identity policy ("" for none).
func mustUser(t *testing.T, c *testcluster.Cluster, ak, secret, pol string) *minio.Client {
	t.Helper()
	ctx := context.Background()
	ns := c.NSClient()
	if err := ns.PutUser(ctx, nsUser(ak, secret)); err != nil {
		t.Fatal(err)
	}
	if pol != "" {
		if err := ns.SetUserPolicy(ctx, ak, pol); err != nil {
			t.Fatal(err)
		}
	}
	return minioAs(t, c, ak, secret)
}

// wantDenied fails unless err is an S3 AccessDenied with status 403.
func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	er := minio.ToErrorResponse(err)
	if er.Code != "AccessDenied" || er.StatusCode != http.StatusForbidden {
		t.Fatalf("%s: %v (code %q, status %d), want AccessDenied 403", what, err, er.Code, er.StatusCode)
	}
}

func put(ctx context.Context, mc *minio.Client, bucket, key, body string) error {
	_, err := mc.PutObject(ctx, bucket, key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
	return err
}

func get(ctx context.Context, mc *minio.Client, bucket, key string) (string, error) {
	o, err := mc.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return "", err
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	return string(b), err
}

func list(ctx context.Context, mc *minio.Client, bucket, prefix string) ([]string, error) {
	var keys []string
	for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return keys, o.Err
		}
		keys = append(keys, o.Key)
	}
	return keys, nil
}

// TestS3Policy covers identity policies, bucket policies, explicit denies
// and bucket ownership with minio-go.
func TestS3Policy(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	root := mustMinio(t, c)
	ctx := ctxT(t)
	if err := root.MakeBucket(ctx, "shop", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"media/a.jpg", "private/ledger", "reviews/incoming/old.jpg"} {
		if err := put(ctx, root, "shop", k, "data of "+k); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("PrefixWriter", func(t *testing.T) {
		// A key that may only write reviews/incoming/* can do exactly that.
		w := mustUser(t, c, "WRITER", "writer-secret", `{"Version":"2012-10-17","Statement":[
		  {"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::shop/reviews/incoming/*"}]}`)
		if err := put(ctx, w, "shop", "reviews/incoming/new.jpg", "jpeg"); err != nil {
			t.Fatalf("put under the prefix: %v", err)
		}
		if got, err := get(ctx, root, "shop", "reviews/incoming/new.jpg"); err != nil || got != "jpeg" {
			t.Fatalf("root reads the write: %q %v", got, err)
		}
		// Multipart: create, upload a part and complete are s3:PutObject.
		core := minio.Core{Client: w}
		id, err := core.NewMultipartUpload(ctx, "shop", "reviews/incoming/multi.bin", minio.PutObjectOptions{})
		if err != nil {
			t.Fatalf("create multipart under the prefix: %v", err)
		}
		part, err := core.PutObjectPart(ctx, "shop", "reviews/incoming/multi.bin", id, 1, bytes.NewReader([]byte("part")), 4, minio.PutObjectPartOptions{})
		if err != nil {
			t.Fatalf("part under the prefix: %v", err)
		}
		if _, err := core.CompleteMultipartUpload(ctx, "shop", "reviews/incoming/multi.bin", id,
			[]minio.CompletePart{{PartNumber: 1, ETag: part.ETag}}, minio.PutObjectOptions{}); err != nil {
			t.Fatalf("complete under the prefix: %v", err)
		}
		_, err = core.NewMultipartUpload(ctx, "shop", "reviews/multi.bin", minio.PutObjectOptions{})
		wantDenied(t, "create multipart elsewhere", err)
		wantDenied(t, "put elsewhere", put(ctx, w, "shop", "reviews/new.jpg", "jpeg"))
		wantDenied(t, "put in another bucket's prefix", put(ctx, w, "nosuch", "reviews/incoming/x", "x"))
		_, err = get(ctx, w, "shop", "reviews/incoming/new.jpg")
		wantDenied(t, "get", err)
		_, err = w.StatObject(ctx, "shop", "reviews/incoming/new.jpg", minio.StatObjectOptions{})
		wantDenied(t, "head", err)
		_, err = list(ctx, w, "shop", "reviews/incoming/")
		wantDenied(t, "list", err)
		wantDenied(t, "delete", w.RemoveObject(ctx, "shop", "reviews/incoming/new.jpg", minio.RemoveObjectOptions{}))
		_, err = w.CopyObject(ctx, minio.CopyDestOptions{Bucket: "shop", Object: "reviews/incoming/stolen"},
			minio.CopySrcOptions{Bucket: "shop", Object: "private/ledger"})
		wantDenied(t, "copy from an unreadable source", err)
		_, err = w.ListBuckets(ctx)
		if err != nil {
			t.Fatalf("list buckets: %v", err)
		}
		wantDenied(t, "make bucket", w.MakeBucket(ctx, "writers", minio.MakeBucketOptions{}))
		wantDenied(t, "set policy", w.SetBucketPolicy(ctx, "shop", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::shop/*"}]}`))

		// The error is S3 XML with status 403.
		u, err := w.PresignedGetObject(ctx, "shop", "media/a.jpg", time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || resp.Header.Get("Content-Type") != "application/xml" || !strings.Contains(string(body), "<Code>AccessDenied</Code>") {
			t.Fatalf("presigned get: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("ExplicitDeny", func(t *testing.T) {
		r := mustUser(t, c, "READER", "reader-secret", `{"Version":"2012-10-17","Statement":[
		  {"Effect":"Allow","Action":["s3:Get*","s3:List*"],"Resource":["arn:aws:s3:::shop","arn:aws:s3:::shop/*"]},
		  {"Effect":"Deny","Action":"s3:*","Resource":"arn:aws:s3:::shop/private/*"},
		  {"Effect":"Deny","Action":"s3:ListBucket","Resource":"arn:aws:s3:::shop","Condition":{"StringLike":{"s3:prefix":"private*"}}}]}`)
		if got, err := get(ctx, r, "shop", "media/a.jpg"); err != nil || got != "data of media/a.jpg" {
			t.Fatalf("get: %q %v", got, err)
		}
		_, err := get(ctx, r, "shop", "private/ledger")
		wantDenied(t, "get private", err)
		if keys, err := list(ctx, r, "shop", "media/"); err != nil || !slices.Equal(keys, []string{"media/a.jpg"}) {
			t.Fatalf("list media/: %v %v", keys, err)
		}
		_, err = list(ctx, r, "shop", "private/")
		wantDenied(t, "list private/", err)
		wantDenied(t, "put", put(ctx, r, "shop", "media/b.jpg", "x"))
	})

	t.Run("BucketPolicy", func(t *testing.T) {
		// ALICE has no policy of her own: the bucket's grants her reads of
		// media/ and denies the writer a corner of its prefix.
		alice := mustUser(t, c, "ALICE", "alice-secret", "")
		w := minioAs(t, c, "WRITER", "writer-secret")
		_, err := get(ctx, alice, "shop", "media/a.jpg")
		wantDenied(t, "alice before the bucket policy", err)
		err = root.SetBucketPolicy(ctx, "shop", `{"Version":"2012-10-17","Statement":[
		  {"Effect":"Allow","Principal":{"AWS":["ALICE"]},"Action":"s3:GetObject","Resource":"arn:aws:s3:::shop/media/*"},
		  {"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::depot:user/WRITER"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::shop/reviews/incoming/blocked/*"}]}`)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := get(ctx, alice, "shop", "media/a.jpg"); err != nil || got != "data of media/a.jpg" {
			t.Fatalf("alice get: %q %v", got, err)
		}
		_, err = get(ctx, alice, "shop", "private/ledger")
		wantDenied(t, "alice outside the grant", err)
		wantDenied(t, "writer in the denied corner", put(ctx, w, "shop", "reviews/incoming/blocked/x", "x"))
		if err := put(ctx, w, "shop", "reviews/incoming/ok", "x"); err != nil {
			t.Fatalf("writer beside the denied corner: %v", err)
		}
		// Anonymous callers are not ALICE.
		resp, err := http.Get(c.Endpoint() + "/shop/media/a.jpg")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Fatalf("anonymous get: %d", resp.StatusCode)
		}
		for name, doc := range map[string]string{
			"NotJSON":       `{"Statement":`,
			"NoPrincipal":   `{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::shop/*"}]}`,
			"OtherBucket":   `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::elsewhere/*"}]}`,
			"NotUnderstood": `{"Statement":[{"Effect":"Deny","Principal":"*","NotAction":"s3:GetObject","Resource":"arn:aws:s3:::shop/*"}]}`,
		} {
			if err := root.SetBucketPolicy(ctx, "shop", doc); minio.ToErrorResponse(err).Code != "MalformedPolicy" {
				t.Errorf("%s: %v, want MalformedPolicy", name, err)
			}
		}
		if err := root.SetBucketPolicy(ctx, "shop", ""); err != nil { // DeleteBucketPolicy
			t.Fatal(err)
		}
		_, err = get(ctx, alice, "shop", "media/a.jpg")
		wantDenied(t, "alice after the policy is deleted", err)
	})

	t.Run("Ownership", func(t *testing.T) {
		// A user allowed to create team-* buckets owns them and may do
		// anything in them; others may not, nor may the owner elsewhere.
		o := mustUser(t, c, "TEAM", "team-secret", `{"Statement":[{"Effect":"Allow","Action":"s3:CreateBucket","Resource":"arn:aws:s3:::team-*"}]}`)
		if err := o.MakeBucket(ctx, "team-a", minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
		wantDenied(t, "create outside the pattern", o.MakeBucket(ctx, "other", minio.MakeBucketOptions{}))
		if err := put(ctx, o, "team-a", "doc", "mine"); err != nil {
			t.Fatal(err)
		}
		if keys, err := list(ctx, o, "team-a", ""); err != nil || len(keys) != 1 {
			t.Fatalf("owner lists: %v %v", keys, err)
		}
		bs, err := o.ListBuckets(ctx)
		if err != nil || len(bs) != 1 || bs[0].Name != "team-a" {
			t.Fatalf("owner's bucket list: %v %v", bs, err)
		}
		_, err = get(ctx, o, "shop", "media/a.jpg")
		wantDenied(t, "owner in another's bucket", err)
		alice := minioAs(t, c, "ALICE", "alice-secret")
		_, err = get(ctx, alice, "team-a", "doc")
		wantDenied(t, "another user in the owner's bucket", err)
		err = alice.MakeBucket(ctx, "team-a", minio.MakeBucketOptions{})
		wantDenied(t, "another user re-creating it", err)
		if got, err := get(ctx, root, "team-a", "doc"); err != nil || got != "mine" {
			t.Fatalf("root in the owner's bucket: %q %v", got, err)
		}
		if err := o.RemoveObject(ctx, "team-a", "doc", minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := o.RemoveBucket(ctx, "team-a"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("MultiDelete", func(t *testing.T) {
		d := mustUser(t, c, "JANITOR", "janitor-secret", `{"Statement":[{"Effect":"Allow","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::shop/reviews/incoming/*"}]}`)
		objs := make(chan minio.ObjectInfo, 2)
		objs <- minio.ObjectInfo{Key: "reviews/incoming/old.jpg"}
		objs <- minio.ObjectInfo{Key: "private/ledger"}
		close(objs)
		var failed []string
		for e := range d.RemoveObjects(ctx, "shop", objs, minio.RemoveObjectsOptions{}) {
			if e.Err != nil && minio.ToErrorResponse(e.Err).Code == "AccessDenied" {
				failed = append(failed, e.ObjectName)
			} else if e.Err != nil {
				t.Fatalf("%s: %v", e.ObjectName, e.Err)
			}
		}
		if !slices.Equal(failed, []string{"private/ledger"}) {
			t.Fatalf("denied: %v", failed)
		}
		if _, err := get(ctx, root, "shop", "private/ledger"); err != nil {
			t.Fatalf("denied key deleted: %v", err)
		}
		if _, err := get(ctx, root, "shop", "reviews/incoming/old.jpg"); minio.ToErrorResponse(err).Code != "NoSuchKey" {
			t.Fatalf("allowed key kept: %v", err)
		}
	})

	t.Run("PolicyChange", func(t *testing.T) {
		// A changed policy holds on this gateway within KeyCacheTTL.
		ns := c.NSClient()
		if err := ns.SetUserPolicy(ctx, "READER", ""); err != nil {
			t.Fatal(err)
		}
		r := minioAs(t, c, "READER", "reader-secret")
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := get(ctx, r, "shop", "media/a.jpg")
			if minio.ToErrorResponse(err).Code == "AccessDenied" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still allowed after the policy was removed: %v", err)
			}
			<-afterTick()
		}
		if err := ns.SetUserPolicy(ctx, "READER", `{"Statement":{"Effect":"Allow","NotAction":"s3:*","Resource":"*"}}`); err == nil {
			t.Fatal("nameserver stored a policy that does not parse")
		}
	})
}

// TestS3PublicPolicy checks that public-read is a bucket policy statement:
// anonymous reads of objects only, shown by GetBucketPolicy and gone with
// DeleteBucketPolicy; and that a bucket policy may grant anonymous writes
// to a prefix.
func TestS3PublicPolicy(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	root := mustMinio(t, c)
	ctx := ctxT(t)
	ns := c.NSClient()
	if err := root.MakeBucket(ctx, "pics", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := put(ctx, root, "pics", "a.jpg", "jpeg"); err != nil {
		t.Fatal(err)
	}
	anon := func(method, path string) int {
		t.Helper()
		var body io.Reader
		if method == http.MethodPut {
			body = strings.NewReader("x")
		}
		req, _ := http.NewRequest(method, c.Endpoint()+path, body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := anon("GET", "/pics/a.jpg"); s != 403 {
		t.Fatalf("private bucket: %d", s)
	}
	// The legacy flag reads as the public-read statement, once the
	// gateway's cache of the bucket (KeyCacheTTL) has expired.
	if _, err := ns.SetBucket(ctx, "pics", nsSettingsPublic(true)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s := anon("GET", "/pics/a.jpg"); s != 200; s = anon("GET", "/pics/a.jpg") {
		if time.Now().After(deadline) {
			t.Fatalf("flagged bucket: %d", s)
		}
		<-afterTick()
	}
	doc, err := root.GetBucketPolicy(ctx, "pics")
	if err != nil || !strings.Contains(doc, "DepotPublicRead") {
		t.Fatalf("policy of a flagged bucket: %q %v", doc, err)
	}
	for _, p := range []string{"/pics", "/pics?list-type=2", "/pics/a.jpg?acl", "/pics?policy"} {
		if s := anon("GET", p); s != 403 {
			t.Fatalf("anonymous GET %s on a public bucket: %d", p, s)
		}
	}
	if s := anon("PUT", "/pics/b.jpg"); s != 403 {
		t.Fatalf("anonymous PUT on a public bucket: %d", s)
	}
	if err := root.SetBucketPolicy(ctx, "pics", ""); err != nil {
		t.Fatal(err)
	}
	if s := anon("GET", "/pics/a.jpg"); s != 403 {
		t.Fatalf("after DeleteBucketPolicy: %d", s)
	}
	err = root.SetBucketPolicy(ctx, "pics", `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::pics/drop/*"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if s := anon("PUT", "/pics/drop/x"); s != 200 {
		t.Fatalf("anonymous PUT granted by policy: %d", s)
	}
	if s := anon("PUT", "/pics/x"); s != 403 {
		t.Fatalf("anonymous PUT outside the grant: %d", s)
	}
}
