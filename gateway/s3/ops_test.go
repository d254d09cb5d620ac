package s3_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"depot/internal/testcluster"
)

// TestS3Ops covers what the gateway decides before any handler runs: the
// operation a request is authorised as is the one it runs, anonymous
// response header overrides, and the negative cache of access keys.
func TestS3Ops(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Dataservers: 3, K: 2, M: 1})
	u, err := url.Parse(c.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	root := &hostile{t: t, c: c, host: u.Host, creds: aws.Credentials{AccessKeyID: c.User, SecretAccessKey: c.Password}}
	root.want("create bucket", root.do(root.signed(http.MethodPut, "/ops", nil)), 200, "")
	root.want("put object", root.do(root.signed(http.MethodPut, "/ops/page.jpg", []byte("jpeg"))), 200, "")

	t.Run("AuthorisedAsRun", func(t *testing.T) {
		// A key that may set versioning only must not set encryption by
		// naming both sub-resources.
		mustUser(t, c, "VERSIONER", "versioner-secret", `{"Version":"2012-10-17","Statement":[
		  {"Effect":"Allow","Action":"s3:PutBucketVersioning","Resource":"arn:aws:s3:::ops"}]}`)
		v := &hostile{t: t, c: c, host: u.Host, creds: aws.Credentials{AccessKeyID: "VERSIONER", SecretAccessKey: "versioner-secret"}}
		conf := []byte(`<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>` +
			`<SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>`)
		for _, target := range []string{"/ops?versioning&encryption", "/ops?encryption&versioning"} {
			v.want("PUT "+target, v.do(v.signed(http.MethodPut, target, conf)), 403, "AccessDenied")
		}
		root.want("encryption after the refused puts", root.do(root.signed(http.MethodGet, "/ops?encryption", nil)),
			404, "ServerSideEncryptionConfigurationNotFoundError")
		// What the key may do, it does.
		v.want("PUT ?versioning", v.do(v.signed(http.MethodPut, "/ops?versioning",
			[]byte(`<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>`))), 200, "")
		if a := root.do(root.signed(http.MethodGet, "/ops?versioning", nil)); !strings.Contains(string(a.body), "<Status>Suspended</Status>") {
			t.Fatalf("versioning after the put: %s", a.body)
		}
	})

	t.Run("AnonymousResponseOverrides", func(t *testing.T) {
		root.want("public policy", root.do(root.signed(http.MethodPut, "/ops?policy", []byte(`{"Version":"2012-10-17","Statement":[
		  {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::ops/*"}]}`))), 204, "")
		anon := func(target string) answer {
			return root.do(root.request(http.MethodGet, target, nil))
		}
		a := anon("/ops/page.jpg")
		if a.status != 200 || string(a.body) != "jpeg" {
			t.Fatalf("anonymous public read: %d %q", a.status, a.body)
		}
		for _, p := range []string{"response-content-type=text/html", "response-content-disposition=inline",
			"response-cache-control=", "Response-Content-Type=text/html"} {
			a := anon("/ops/page.jpg?" + p)
			if strings.HasPrefix(p, "Response") {
				// Parameter names are case-sensitive: not an override.
				if a.status != 200 || a.header.Get("Content-Type") == "text/html" {
					t.Errorf("anonymous ?%s: %d, Content-Type %q", p, a.status, a.header.Get("Content-Type"))
				}
				continue
			}
			root.want("anonymous ?"+p, a, 400, "InvalidRequest")
		}
		a = root.do(root.signed(http.MethodGet, "/ops/page.jpg?response-content-type=image/png", nil))
		if a.status != 200 || a.header.Get("Content-Type") != "image/png" {
			t.Errorf("signed override: %d, Content-Type %q", a.status, a.header.Get("Content-Type"))
		}
	})

	t.Run("PrivateObjectNotNative", func(t *testing.T) {
		// The native API serves a fid to whoever holds it (its cookie is
		// the capability); a private S3 object's fid must not open it.
		root.want("create private bucket", root.do(root.signed(http.MethodPut, "/private", nil)), 200, "")
		root.want("put private", root.do(root.signed(http.MethodPut, "/private/ledger", []byte("secret ledger"))), 200, "")
		o, err := c.NSClient().GetObject(ctxT(t), "private", "ledger")
		if err != nil || len(o.Segments) == 0 {
			t.Fatalf("object: %+v, %v", o, err)
		}
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			req, _ := http.NewRequest(method, c.Endpoint()+"/v1/blobs/"+o.Segments[0].Fid, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound || strings.Contains(string(b), "secret") {
				t.Errorf("%s /v1/blobs/<private S3 segment>: %d %q, want 404", method, resp.StatusCode, b)
			}
		}
		a := root.do(root.request(http.MethodGet, "/private/ledger", nil))
		root.want("anonymous S3 read of the private object", a, 403, "AccessDenied")
	})

	t.Run("UnknownKeyCached", func(t *testing.T) {
		lookups := func() int {
			t.Helper()
			resp, err := http.Get(c.NS.Server.URL() + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			prefix := `depot_nameserver_http_requests_total{code="404",route="GET /users/{key}"} `
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
					n, _ := strconv.ParseFloat(v, 64)
					return int(n)
				}
			}
			return 0
		}
		bad := &hostile{t: t, c: c, host: u.Host, creds: aws.Credentials{AccessKeyID: "NOSUCHKEY", SecretAccessKey: "whatever"}}
		before := lookups()
		const flood = 50
		for i := range flood {
			bad.want(fmt.Sprintf("bad key #%d", i), bad.do(bad.signed(http.MethodGet, "/ops/page.jpg", nil)), 403, "InvalidAccessKeyId")
		}
		// The default UnknownKeyTTL is a second: a slow machine may need
		// a few lookups for fifty requests, never one each.
		if n := lookups() - before; n < 1 || n > flood/5 {
			t.Fatalf("%d requests with an unknown key made %d nameserver lookups", flood, n)
		}
	})
}
