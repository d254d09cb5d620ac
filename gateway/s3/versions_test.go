package s3_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"depot/internal/testcluster"
)

// TestS3NullVersions drives the version-aware calls tools make on any
// bucket (emptying it by listing versions, reading ?versionId=null) with
// aws-sdk-go-v2: an unversioned bucket lists each object as its null
// version, pages by key marker, and deletes by version id null; reading
// another version id is NoSuchVersion. Keys are listed as they are unless the
// client asks for encoding-type=url.
func TestS3NullVersions(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	cl := mustSDK(t, c.Endpoint(), c.User, c.Password, http.DefaultClient)
	ctx := ctxT(t)
	b := aws.String("versions")
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	keys := []string{"a", "dir/one", "dir/two", "foo/", "z z+y"}
	for _, k := range keys {
		if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String(k), Body: strings.NewReader("v-" + k)}); err != nil {
			t.Fatal(err)
		}
	}

	// Two at a time: every key once, as its null version, the latest.
	var listed []string
	pages := 0
	in := &s3.ListObjectVersionsInput{Bucket: b, MaxKeys: aws.Int32(2)}
	for range 10 {
		out, err := cl.ListObjectVersions(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, v := range out.Versions {
			if aws.ToString(v.VersionId) != "null" || !aws.ToBool(v.IsLatest) || aws.ToInt64(v.Size) != int64(len("v-"+aws.ToString(v.Key))) {
				t.Fatalf("version entry %+v", v)
			}
			listed = append(listed, aws.ToString(v.Key))
		}
		if len(out.DeleteMarkers) != 0 {
			t.Fatalf("delete markers in an unversioned bucket: %+v", out.DeleteMarkers)
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		in.KeyMarker, in.VersionIdMarker = out.NextKeyMarker, out.NextVersionIdMarker
	}
	if !slices.Equal(listed, keys) || pages != 3 {
		t.Fatalf("listed %q in %d pages, want %q in 3", listed, pages, keys)
	}
	// With a delimiter: the common prefix, and the keys beside it.
	out, err := cl.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: b, Delimiter: aws.String("/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.CommonPrefixes) != 2 || aws.ToString(out.CommonPrefixes[0].Prefix) != "dir/" ||
		aws.ToString(out.CommonPrefixes[1].Prefix) != "foo/" || len(out.Versions) != 2 {
		t.Fatalf("with delimiter: %d versions, prefixes %+v", len(out.Versions), out.CommonPrefixes)
	}

	// ?versionId=null is the object; another id is NoSuchVersion.
	got, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("a"), VersionId: aws.String("null")})
	if err != nil {
		t.Fatal(err)
	}
	got.Body.Close()
	if aws.ToString(got.VersionId) != "null" {
		t.Fatalf("GET ?versionId=null answered version %q", aws.ToString(got.VersionId))
	}
	_, err = cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("a"), VersionId: aws.String("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")})
	if err == nil {
		t.Fatal("HEAD of a version that does not exist succeeded")
	}
	_, err = cl.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("a"), VersionId: aws.String("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")})
	if apiCode(err) != "NoSuchVersion" {
		t.Fatalf("GET of a version that does not exist: %v", err)
	}
	_, err = cl.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: b, VersionIdMarker: aws.String("null")})
	if apiCode(err) != "InvalidArgument" {
		t.Fatalf("version-id marker without key marker: %v", err)
	}

	// Keys go out as they are unless encoding-type=url is asked for.
	u, err := url.Parse(c.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	h := &hostile{t: t, c: c, host: u.Host}
	h.creds = aws.Credentials{AccessKeyID: c.User, SecretAccessKey: c.Password}
	for _, target := range []string{"/versions?versions", "/versions", "/versions?list-type=2"} {
		a := h.do(h.signed(http.MethodGet, target, nil))
		if a.status != http.StatusOK || !strings.Contains(string(a.body), "<Key>foo/</Key>") || !strings.Contains(string(a.body), "<Key>z z+y</Key>") {
			t.Fatalf("GET %s: %d %s", target, a.status, a.body)
		}
	}
	a := h.do(h.signed(http.MethodGet, "/versions?versions&encoding-type=url", nil))
	if !strings.Contains(string(a.body), "<Key>foo%2F</Key>") || !strings.Contains(string(a.body), "<Key>z+z%2By</Key>") {
		t.Fatalf("encoding-type=url: %s", a.body)
	}

	// Emptying the bucket the way versioned tools do.
	var objs []types.ObjectIdentifier
	for _, k := range keys {
		objs = append(objs, types.ObjectIdentifier{Key: aws.String(k), VersionId: aws.String("null")})
	}
	objs = append(objs, types.ObjectIdentifier{Key: aws.String("a"), VersionId: aws.String("no-such-version")})
	del, err := cl.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{Objects: objs}})
	if err != nil {
		t.Fatal(err)
	}
	// A version that is not there is deleted already, as on S3.
	if len(del.Deleted) != len(keys)+1 || len(del.Errors) != 0 {
		t.Fatalf("delete by version: %d deleted, errors %+v", len(del.Deleted), del.Errors)
	}
	if _, err := cl.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: b}); err != nil {
		t.Fatalf("delete the emptied bucket: %v", err)
	}
}
