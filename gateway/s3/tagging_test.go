package s3_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/tags"

	"depot/internal/testcluster"
)

// TestS3Tagging drives object and bucket tagging with minio-go: tags on
// PUT, multipart and copy (both directives), Get/Put/DeleteObjectTagging,
// the tag count on GET and HEAD, AWS's limits and errors; retagging keeps
// the object's bytes, ETag and Last-Modified.
func TestS3Tagging(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	mc := mustMinio(t, c)
	ctx := ctxT(t)
	if err := mc.MakeBucket(ctx, "tags", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	data := randBytes(t, 100<<10)
	put := func(key string, body []byte, opts minio.PutObjectOptions) minio.UploadInfo {
		t.Helper()
		info, err := mc.PutObject(ctx, "tags", key, bytes.NewReader(body), int64(len(body)), opts)
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		return info
	}
	tagsOf := func(key string) map[string]string {
		t.Helper()
		tg, err := mc.GetObjectTagging(ctx, "tags", key, minio.GetObjectTaggingOptions{})
		if err != nil {
			t.Fatalf("get tagging %s: %v", key, err)
		}
		return tg.ToMap()
	}
	wantTags := func(key string, want map[string]string) {
		t.Helper()
		if got := tagsOf(key); !maps.Equal(got, want) {
			t.Fatalf("tags of %s: %v, want %v", key, got, want)
		}
		st, err := mc.StatObject(ctx, "tags", key, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st.UserTagCount != len(want) {
			t.Fatalf("HEAD %s: tag count %d, want %d", key, st.UserTagCount, len(want))
		}
	}

	// Tags given with the PUT; none on a plain one.
	put("plain", data, minio.PutObjectOptions{})
	wantTags("plain", map[string]string{})
	first := put("a", data, minio.PutObjectOptions{UserTags: map[string]string{"color": "blue", "path": "a/b c+d"}})
	wantTags("a", map[string]string{"color": "blue", "path": "a/b c+d"})

	// Replace, then delete the tags: bytes, ETag and Last-Modified stay.
	before, err := mc.StatObject(ctx, "tags", "a", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := tags.NewTags(map[string]string{"season": "winter"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.PutObjectTagging(ctx, "tags", "a", set, minio.PutObjectTaggingOptions{}); err != nil {
		t.Fatal(err)
	}
	wantTags("a", map[string]string{"season": "winter"})
	after, err := mc.StatObject(ctx, "tags", "a", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.ETag != first.ETag || !after.LastModified.Equal(before.LastModified) {
		t.Fatalf("retagging changed the object: %+v -> %+v", before, after)
	}
	if err := mc.RemoveObjectTagging(ctx, "tags", "a", minio.RemoveObjectTaggingOptions{}); err != nil {
		t.Fatal(err)
	}
	wantTags("a", map[string]string{})
	readBack(t, mc, "a", data)

	// Multipart: the upload's tags become the object's.
	big := randBytes(t, 12<<20)
	put("mp", big, minio.PutObjectOptions{PartSize: 5 << 20, UserTags: map[string]string{"kind": "multipart"}})
	wantTags("mp", map[string]string{"kind": "multipart"})

	// Copy: COPY keeps the source's tags, REPLACE takes the request's.
	src := minio.CopySrcOptions{Bucket: "tags", Object: "mp"}
	if _, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "tags", Object: "copy"}, src); err != nil {
		t.Fatal(err)
	}
	wantTags("copy", map[string]string{"kind": "multipart"})
	dst := minio.CopyDestOptions{Bucket: "tags", Object: "copy2", ReplaceTags: true, UserTags: map[string]string{"kind": "copy"}}
	if _, err := mc.CopyObject(ctx, dst, src); err != nil {
		t.Fatal(err)
	}
	wantTags("copy2", map[string]string{"kind": "copy"})
	readBack(t, mc, "copy2", big)

	// AWS's limits and errors (sent by hand: minio-go checks some of
	// them itself); a refused request changes nothing.
	u, err := url.Parse(c.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	h := &hostile{t: t, c: c, host: u.Host, creds: aws.Credentials{AccessKeyID: c.User, SecretAccessKey: c.Password}}
	tagXML := func(kv ...string) []byte {
		var b bytes.Buffer
		b.WriteString("<Tagging><TagSet>")
		for i := 0; i+1 < len(kv); i += 2 {
			b.WriteString("<Tag><Key>")
			xml.EscapeText(&b, []byte(kv[i]))
			b.WriteString("</Key><Value>")
			xml.EscapeText(&b, []byte(kv[i+1]))
			b.WriteString("</Value></Tag>")
		}
		b.WriteString("</TagSet></Tagging>")
		return b.Bytes()
	}
	var eleven []string
	for i := range 11 {
		eleven = append(eleven, fmt.Sprintf("k%d", i), "v")
	}
	for _, tc := range []struct {
		name string
		body []byte
		code string
	}{
		{"TooMany", tagXML(eleven...), "BadRequest"},
		{"LongKey", tagXML(strings.Repeat("k", 129), "v"), "InvalidTag"},
		{"LongValue", tagXML("k", strings.Repeat("v", 257)), "InvalidTag"},
		{"AWSPrefix", tagXML("aws:x", "v"), "InvalidTag"},
		{"BadChar", tagXML("k", "a<b"), "InvalidTag"},
		{"Duplicate", tagXML("k", "1", "k", "2"), "InvalidTag"},
		{"EmptyKey", tagXML("", "v"), "InvalidTag"},
		{"NotXML", []byte("<Tagging><TagSet>"), "MalformedXML"},
	} {
		h.want(tc.name, h.do(h.signed(http.MethodPut, "/tags/copy2?tagging", tc.body)), http.StatusBadRequest, tc.code)
	}
	wantTags("copy2", map[string]string{"kind": "copy"})
	// The largest allowed: 10 tags, a 128-character key, a 256-character value.
	most := []string{strings.Repeat("K", 128), strings.Repeat("v", 256)}
	for i := range 9 {
		most = append(most, fmt.Sprintf("k%d", i), "+-=._:/@ ok")
	}
	h.want("Largest", h.do(h.signed(http.MethodPut, "/tags/copy2?tagging", tagXML(most...))), http.StatusOK, "")
	if n := len(tagsOf("copy2")); n != 10 {
		t.Fatalf("largest tag set: %d tags", n)
	}
	_, err = mc.PutObject(ctx, "tags", "bad", bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{UserTags: map[string]string{"aws:no": "x"}})
	if code := minio.ToErrorResponse(err).Code; code != "InvalidTag" {
		t.Fatalf("PUT with a bad tag: %v, want InvalidTag", err)
	}
	if _, err := mc.StatObject(ctx, "tags", "bad", minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
		t.Fatalf("a PUT refused for its tags stored the object: %v", err)
	}
	if err := mc.PutObjectTagging(ctx, "tags", "missing", set, minio.PutObjectTaggingOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
		t.Fatalf("tagging a missing key: %v", err)
	}

	// Bucket tagging.
	if _, err := mc.GetBucketTagging(ctx, "tags"); minio.ToErrorResponse(err).Code != "NoSuchTagSet" {
		t.Fatalf("bucket without tags: %v, want NoSuchTagSet", err)
	}
	btags, err := tags.NewTags(map[string]string{"team": "media", "cost-center": "42"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.SetBucketTagging(ctx, "tags", btags); err != nil {
		t.Fatal(err)
	}
	got, err := mc.GetBucketTagging(ctx, "tags")
	if err != nil || !maps.Equal(got.ToMap(), btags.ToMap()) {
		t.Fatalf("bucket tags: %v, %v", got, err)
	}
	if err := mc.RemoveBucketTagging(ctx, "tags"); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.GetBucketTagging(ctx, "tags"); minio.ToErrorResponse(err).Code != "NoSuchTagSet" {
		t.Fatalf("after delete: %v, want NoSuchTagSet", err)
	}
}

func readBack(t *testing.T, mc *minio.Client, key string, want []byte) {
	t.Helper()
	r, err := mc.GetObject(context.Background(), "tags", key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s read back %d bytes (%v), want %d", key, len(got), err, len(want))
	}
}
