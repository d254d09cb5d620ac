package s3_test

import (
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"depot/internal/testcluster"
)

// TestListMultipartUploadsDelimiter lists uploads with a prefix, a
// delimiter and small pages: uploads under one common prefix count once,
// and paging by the markers returns every entry exactly once.
func TestListMultipartUploadsDelimiter(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	ctx := ctxT(t)
	ts := httptest.NewServer(c.GW.Server.Handler())
	t.Cleanup(ts.Close)
	cl := mustSDK(t, ts.URL, c.User, c.Password, ts.Client())
	b := aws.String("uploads")
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	keys := []string{"a/1", "a/2", "a/x/1", "b", "c/1", "c/1", "d", "photos/2026/1.jpg", "photos/2026/2.jpg", "photos/top.jpg"}
	for _, k := range keys {
		if _, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String(k)}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(prefix string, max int32) (entries []string) {
		in := &s3.ListMultipartUploadsInput{Bucket: b, Delimiter: aws.String("/"), Prefix: aws.String(prefix), MaxUploads: aws.Int32(max)}
		for page := 0; page < 20; page++ {
			out, err := cl.ListMultipartUploads(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range out.Uploads {
				entries = append(entries, *u.Key)
			}
			for _, p := range out.CommonPrefixes {
				entries = append(entries, *p.Prefix+"…")
			}
			if n := len(out.Uploads) + len(out.CommonPrefixes); n > int(max) {
				t.Fatalf("page of %d entries, max %d", n, max)
			}
			if !aws.ToBool(out.IsTruncated) {
				slices.Sort(entries)
				return entries
			}
			in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
		}
		t.Fatal("listing did not end")
		return nil
	}
	for _, max := range []int32{1000, 1, 2, 3} {
		if got, want := list("", max), []string{"a/…", "b", "c/…", "d", "photos/…"}; !slices.Equal(got, want) {
			t.Errorf("max %d, root: %q, want %q", max, got, want)
		}
		if got, want := list("photos/", max), []string{"photos/2026/…", "photos/top.jpg"}; !slices.Equal(got, want) {
			t.Errorf("max %d, photos/: %q, want %q", max, got, want)
		}
		if got, want := list("a/", max), []string{"a/1", "a/2", "a/x/…"}; !slices.Equal(got, want) {
			t.Errorf("max %d, a/: %q, want %q", max, got, want)
		}
	}
}
