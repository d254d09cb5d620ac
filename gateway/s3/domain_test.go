package s3_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"depot/internal/testcluster"
)

// TestS3VirtualHosted talks to a gateway with Domain "s3.test" the way
// minio-go does with BucketLookupDNS: the bucket in the host name
// ("photos.s3.test"), which a custom dialer sends to the gateway.
func TestS3VirtualHosted(t *testing.T) {
	const domain = "s3.test"
	c := testcluster.New(t, testcluster.Options{Domain: domain})
	u, err := url.Parse(c.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	_, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	hosts := map[string]bool{} // the host names minio-go dialled
	tr := http.DefaultTransport.(*http.Transport).Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if host != domain && !strings.HasSuffix(host, "."+domain) {
			t.Errorf("dial to %s, outside %s", addr, domain)
		}
		mu.Lock()
		hosts[host] = true
		mu.Unlock()
		return d.DialContext(ctx, network, u.Host) // every *.s3.test is the gateway
	}
	mc, err := minio.New(domain+":"+port, &minio.Options{
		Creds: credentials.NewStaticV4(c.User, c.Password, ""), Region: "us-east-1",
		BucketLookup: minio.BucketLookupDNS, Transport: tr,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if err := mc.MakeBucket(ctx, "photos", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	body := randBytes(t, 300<<10)
	if _, err := mc.PutObject(ctx, "photos", "dir/cat.jpg", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{ContentType: "image/jpeg"}); err != nil {
		t.Fatal(err)
	}
	obj, err := mc.GetObject(ctx, "photos", "dir/cat.jpg", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	obj.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("get: %d bytes, %v; want the %d put", len(got), err, len(body))
	}
	var keys []string
	for o := range mc.ListObjects(ctx, "photos", minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	if len(keys) != 1 || keys[0] != "dir/cat.jpg" {
		t.Fatalf("list: %q", keys)
	}
	if err := mc.RemoveObject(ctx, "photos", "dir/cat.jpg", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := mc.RemoveBucket(ctx, "photos"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !hosts["photos."+domain] {
		t.Errorf("minio-go never used the virtual host photos.%s; dialled %v", domain, hosts)
	}

	// Path style keeps working on the same gateway.
	pc := mustMinio(t, c)
	if err := pc.MakeBucket(ctx, "paths", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if ok, err := pc.BucketExists(ctx, "paths"); err != nil || !ok {
		t.Fatalf("path-style bucket: %v %v", ok, err)
	}
}
