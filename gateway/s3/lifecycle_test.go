package s3_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"depot/internal/testcluster"
)

// TestS3Lifecycle sets a lifecycle configuration with minio-go, reads it
// back, and watches the nameserver's worker expire what a past
// expiration date names (and nothing else); malformed configurations get
// AWS's errors and change nothing.
func TestS3Lifecycle(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	mc := mustMinio(t, c)
	ctx := ctxT(t)
	const b = "aging"
	if err := mc.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.GetBucketLifecycle(ctx, b); minio.ToErrorResponse(err).Code != "NoSuchLifecycleConfiguration" {
		t.Fatalf("no configuration yet: %v", err)
	}
	data := randBytes(t, 1000)
	for _, k := range []string{"logs/1", "logs/2", "photos/1"} {
		if _, err := mc.PutObject(ctx, b, k, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	yesterday := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	cfg := lifecycle.NewConfiguration()
	cfg.Rules = []lifecycle.Rule{
		{ID: "old-logs", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: "logs/"},
			Expiration: lifecycle.Expiration{Date: lifecycle.ExpirationDate{Time: yesterday}}},
		{ID: "uploads", Status: "Enabled", RuleFilter: lifecycle.Filter{Prefix: ""},
			AbortIncompleteMultipartUpload: lifecycle.AbortIncompleteMultipartUpload{DaysAfterInitiation: 7}},
	}
	if err := mc.SetBucketLifecycle(ctx, b, cfg); err != nil {
		t.Fatal(err)
	}
	got, err := mc.GetBucketLifecycle(ctx, b)
	if err != nil || len(got.Rules) != 2 || got.Rules[0].ID != "old-logs" || got.Rules[0].RuleFilter.Prefix != "logs/" ||
		!got.Rules[0].Expiration.Date.Time.Equal(yesterday) || got.Rules[1].AbortIncompleteMultipartUpload.DaysAfterInitiation != 7 {
		t.Fatalf("configuration read back: %+v, %v", got, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var keys []string
		for o := range mc.ListObjects(ctx, b, minio.ListObjectsOptions{Recursive: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			keys = append(keys, o.Key)
		}
		if len(keys) == 1 && keys[0] == "photos/1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s the bucket holds %q, want only photos/1", keys)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Malformed configurations.
	u, err := url.Parse(c.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	h := &hostile{t: t, c: c, host: u.Host, creds: aws.Credentials{AccessKeyID: c.User, SecretAccessKey: c.Password}}
	rule := func(body string) []byte {
		return []byte("<LifecycleConfiguration><Rule><ID>r</ID><Filter><Prefix>x/</Prefix></Filter>" + body + "</Rule></LifecycleConfiguration>")
	}
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"NoAction", "<Status>Enabled</Status>", 400, "MalformedXML"},
		{"BadStatus", "<Status>On</Status><Expiration><Days>1</Days></Expiration>", 400, "MalformedXML"},
		{"NegativeDays", "<Status>Enabled</Status><Expiration><Days>-1</Days></Expiration>", 400, "InvalidArgument"},
		{"DateNotMidnight", "<Status>Enabled</Status><Expiration><Date>2027-01-01T10:00:00Z</Date></Expiration>", 400, "InvalidArgument"},
		{"DaysAndMarker", "<Status>Enabled</Status><Expiration><Days>1</Days><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>", 400, "MalformedXML"},
		{"Transition", "<Status>Enabled</Status><Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>", 501, "NotImplemented"},
	} {
		h.want(tc.name, h.do(h.signed(http.MethodPut, "/"+b+"?lifecycle", rule(tc.body))), tc.status, tc.code)
	}
	if a := h.do(h.signed(http.MethodGet, "/"+b+"?lifecycle", nil)); !strings.Contains(string(a.body), "old-logs") {
		t.Fatalf("a refused configuration replaced the rules: %s", a.body)
	}
	if err := mc.SetBucketLifecycle(ctx, b, lifecycle.NewConfiguration()); err != nil {
		t.Fatalf("remove the configuration: %v", err)
	}
	if _, err := mc.GetBucketLifecycle(ctx, b); minio.ToErrorResponse(err).Code != "NoSuchLifecycleConfiguration" {
		t.Fatalf("after removal: %v", err)
	}
}
