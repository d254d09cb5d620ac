package testcluster_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"depot/internal/auth"
	"depot/internal/testcluster"
	"depot/internal/tlsconf"
	"depot/nameserver/nsclient"
)

// lockedBuffer collects log output from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fillPattern turns a ServeMux or gin pattern into a request: method and
// a path with every wildcard filled in.
func fillPattern(p string) (method, path string) {
	method, path, ok := strings.Cut(p, " ")
	if !ok {
		method, path = http.MethodGet, p
	}
	var out []string
	for _, seg := range strings.Split(path, "/") {
		switch {
		case strings.HasPrefix(seg, "{"), strings.HasPrefix(seg, ":"), strings.HasPrefix(seg, "*"):
			seg = "1"
		}
		out = append(out, seg)
	}
	return method, strings.Join(out, "/")
}

// status sends method url with hc, letting sign (when not nil) prepare the
// request, and returns the status.
func status(t *testing.T, hc *http.Client, method, u string, sign func(*http.Request)) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sign != nil {
		sign(req)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestSecurity_Unauthenticated walks every route of every role without a
// credential, and with a token of another cluster: each answers 401 or
// 403, except the health checks, fid reads (a fid's random cookie is the
// capability) and public-read objects; /metrics too once a metrics token
// is set.
func TestSecurity_Unauthenticated(t *testing.T) {
	admin, _ := auth.GenerateKey()
	c := testcluster.New(t, testcluster.Options{Dataservers: 4, K: 2, M: 1, AdminKey: admin, MetricsToken: "scrape-token-0123"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	other, _ := auth.GenerateKey()
	hc := &http.Client{Timeout: 10 * time.Second}
	refused := func(code int) bool { return code == http.StatusUnauthorized || code == http.StatusForbidden }

	// probe checks one internal server's routes and its open endpoints.
	probe := func(t *testing.T, base string, routes []string) {
		if len(routes) == 0 {
			t.Fatal("no routes to audit")
		}
		for _, r := range routes {
			method, path := fillPattern(r)
			if got := status(t, hc, method, base+path, nil); got != http.StatusUnauthorized {
				t.Errorf("%s %s without credentials: %d, want 401", method, path, got)
			}
			if got := status(t, hc, method, base+path, other.Sign); got != http.StatusForbidden {
				t.Errorf("%s %s with another cluster's token: %d, want 403", method, path, got)
			}
		}
		if got := status(t, hc, "GET", base+"/healthz", nil); got != http.StatusOK {
			t.Errorf("/healthz: %d", got)
		}
		if got := status(t, hc, "GET", base+"/metrics", nil); got != http.StatusUnauthorized {
			t.Errorf("/metrics without the metrics token: %d, want 401", got)
		}
		bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer scrape-token-0123") }
		if got := status(t, hc, "GET", base+"/metrics", bearer); got != http.StatusOK {
			t.Errorf("/metrics with the metrics token: %d, want 200", got)
		}
	}

	t.Run("Nameserver", func(t *testing.T) {
		routes := c.NS.Server.Routes()
		for _, want := range []string{"GET /ui", "GET /ui/health", "PUT /users", "POST /assign", "GET /status"} {
			if !contains(routes, want) {
				t.Errorf("route %q not in the audited list %v", want, routes)
			}
		}
		probe(t, c.NS.Server.URL(), routes)
		// Node credentials do not open the admin routes.
		for _, r := range []string{"GET /users", "PUT /users", "POST /rebalance/drain", "GET /ui"} {
			method, path := fillPattern(r)
			if got := status(t, hc, method, c.NS.Server.URL()+path, c.Key.Sign); got != http.StatusForbidden {
				t.Errorf("%s %s with the cluster key: %d, want 403 (admin only)", method, path, got)
			}
		}
	})
	t.Run("Dataservers", func(t *testing.T) {
		for i := range c.Dataservers() {
			d := c.Dataserver(i)
			probe(t, "http://"+d.Server.Addr(), d.Server.Routes())
		}
	})
	t.Run("Gateway", func(t *testing.T) {
		base := c.Endpoint()
		open := map[string]bool{
			"GET /healthz": true, "GET /readyz": true,
			"GET /v1/blobs/:fid": true, "HEAD /v1/blobs/:fid": true, // the fid's cookie is the capability
		}
		routes := c.GW.Server.Handler().(*gin.Engine).Routes()
		if len(routes) < 5 {
			t.Fatalf("gateway routes: %v", routes)
		}
		for _, r := range routes {
			p := r.Method + " " + r.Path
			method, path := fillPattern(p)
			got := status(t, hc, method, base+path, nil)
			switch {
			case open[p]:
				if refused(got) {
					t.Errorf("%s: %d, want it open", p, got)
				}
			case !refused(got):
				t.Errorf("%s without credentials: %d, want 401 or 403", p, got)
			}
		}
		// The S3 API (every other path) refuses anonymous requests but
		// for reads of public buckets.
		mc := minioClient(t, c, nil)
		for _, b := range []string{"private", "public"} {
			if err := mc.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := mc.PutObject(ctx, b, "k", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		pub := true
		if _, err := c.AdminClient().SetBucket(ctx, "public", nsclient.BucketSettings{Public: &pub}); err != nil {
			t.Fatal(err)
		}
		// The gateway sees the change once its bucket cache expires
		// (s3.Config.KeyCacheTTL).
		for deadline := time.Now().Add(5 * time.Second); status(t, hc, "GET", base+"/public/k", nil) != http.StatusOK; {
			if time.Now().After(deadline) {
				t.Fatal("anonymous GET of a public bucket's object still refused after 5s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, tc := range []struct {
			method, path string
			open         bool
		}{
			{"GET", "/", false}, {"PUT", "/newbucket", false}, {"GET", "/private/k", false},
			{"GET", "/private", false}, {"DELETE", "/private/k", false}, {"PUT", "/public/k2", false},
			{"DELETE", "/public/k", false}, {"GET", "/public/k", true},
		} {
			got := status(t, hc, tc.method, base+tc.path, nil)
			if tc.open != (got == http.StatusOK) || (!tc.open && !refused(got)) {
				t.Errorf("anonymous %s %s: %d (open: %v)", tc.method, tc.path, got, tc.open)
			}
		}
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// minioClient returns a minio-go client of the cluster's gateway, trusting
// the cluster CA when the gateway serves HTTPS.
func minioClient(t *testing.T, c *testcluster.Cluster, creds *credentials.Credentials) *minio.Client {
	t.Helper()
	u, err := url.Parse(c.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	opts := &minio.Options{Creds: creds, Region: "us-east-1", MaxRetries: 1} // bad credentials: no retries
	if creds == nil {
		opts.Creds, opts.MaxRetries = credentials.NewStaticV4(c.User, c.Password, ""), 0
	}
	if u.Scheme == "https" {
		opts.Secure = true
		opts.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool(t, c.CertDir)}}
	}
	mc, err := minio.New(u.Host, opts)
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

func caPool(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate")
	}
	return pool
}

// TestSecurity_NoSecretsLeak runs a cluster with known secrets, works it
// (including failed authentications of every kind) and looks for the
// secrets in everything an operator or an attacker might read: the logs of
// every role at debug level, every /metrics, the status page and its JSON.
func TestSecurity_NoSecretsLeak(t *testing.T) {
	key, _ := auth.ParseKey("c2VjcmV0LWNsdXN0ZXIta2V5LWZvci10aGUtbGVhay10ZXN0IQ==")
	admin, _ := auth.ParseKey("YWRtaW4tc2VjcmV0LWtleS1mb3ItdGhlLWxlYWstdGVzdCEh")
	const password = "root-password-that-must-not-leak-8137"
	const userSecret = "user-secret-that-must-not-leak-4471"
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := testcluster.New(t, testcluster.Options{Dataservers: 4, K: 2, M: 1, Key: key, Password: password, AdminKey: admin, Logger: log})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	hc := &http.Client{Timeout: 10 * time.Second}

	// Work: S3 writes and reads, a user, and failed authentications.
	mc := minioClient(t, c, nil)
	if err := mc.MakeBucket(ctx, "leak", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.PutObject(ctx, "leak", "k", bytes.NewReader(make([]byte, 200<<10)), 200<<10, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.AdminClient().PutUser(ctx, nsclient.User{AccessKey: "LEAKTESTUSER", Secret: userSecret}); err != nil {
		t.Fatal(err)
	}
	bad := minioClient(t, c, credentials.NewStaticV4(c.User, password+"-wrong", ""))
	if _, err := bad.ListBuckets(ctx); err == nil {
		t.Fatal("wrong root secret accepted")
	}
	badUser := minioClient(t, c, credentials.NewStaticV4("LEAKTESTUSER", "wrong", ""))
	if _, err := badUser.ListBuckets(ctx); err == nil {
		t.Fatal("wrong user secret accepted")
	}
	other, _ := auth.GenerateKey()
	if _, err := nsclient.New(c.NS.Server.URL(), other, nil).Status(ctx); err == nil {
		t.Fatal("wrong cluster key accepted")
	}
	if _, err := c.NSClient().Users(ctx); err == nil {
		t.Fatal("cluster key accepted on an admin route")
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint()+"/v1/blobs", strings.NewReader("x"))
	req.SetBasicAuth(c.User, "wrong-"+password)
	if resp, err := hc.Do(req); err == nil {
		resp.Body.Close()
	}

	// What an operator sees.
	var seen []string
	get := func(u string, sign func(*http.Request)) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if sign != nil {
			sign(req)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", u, resp.StatusCode)
		}
		seen = append(seen, u+"\n"+string(b))
	}
	basic := func(r *http.Request) { r.SetBasicAuth("admin", admin.String()) }
	get(c.NS.Server.URL()+"/ui", basic)
	get(c.NS.Server.URL()+"/ui/health", basic)
	get(c.NS.Server.URL()+"/metrics", nil)
	get(c.Endpoint()+"/metrics", nil)
	for i := range c.Dataservers() {
		get("http://"+c.Dataserver(i).Server.Addr()+"/metrics", nil)
	}
	seen = append(seen, "logs\n"+logs.String())
	if !strings.Contains(logs.String(), "level=DEBUG") {
		t.Fatal("no debug logs captured")
	}

	secrets := map[string]string{
		"cluster key":         key.String(),
		"cluster key (hex)":   hex.EncodeToString(key),
		"cluster key (bytes)": string(key),
		"admin key":           admin.String(),
		"admin key (bytes)":   string(admin),
		"root password":       password,
		"user secret":         userSecret,
	}
	for _, text := range seen {
		where, _, _ := strings.Cut(text, "\n")
		for name, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("the %s appears in %s", name, where)
			}
		}
	}
}

// TestSecurity_MutualTLS runs a cluster with mutual TLS between its roles
// and HTTPS on its gateway: S3 works through minio-go over HTTPS, and a
// dataserver refuses plain HTTP, clients without a certificate (but for
// health checks), clients of another CA, and clients with a certificate
// but no token.
func TestSecurity_MutualTLS(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Dataservers: 4, K: 2, M: 1, TLS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if !strings.HasPrefix(c.Endpoint(), "https://") || !strings.HasPrefix(c.NS.Server.URL(), "https://") {
		t.Fatalf("endpoints %s and %s are not https", c.Endpoint(), c.NS.Server.URL())
	}

	t.Run("S3OverHTTPS", func(t *testing.T) {
		mc := minioClient(t, c, nil)
		if err := mc.MakeBucket(ctx, "tls", minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
		body := bytes.Repeat([]byte("depot over TLS "), 20000) // 300 KB: several stripes
		if _, err := mc.PutObject(ctx, "tls", "obj", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		obj, err := mc.GetObject(ctx, "tls", "obj", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(obj)
		obj.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("read back %d bytes, %v", len(got), err)
		}
		if _, err := c.NSClient().Status(ctx); err != nil {
			t.Fatalf("nameserver API over mutual TLS: %v", err)
		}
	})

	addr := c.Dataserver(0).Server.Addr()
	t.Run("ErrPlainHTTP", func(t *testing.T) {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("plain HTTP to a dataserver: %d", resp.StatusCode)
			}
		}
	})
	t.Run("ErrNoClientCert", func(t *testing.T) {
		// The handshake succeeds, so that probes without a certificate
		// reach the health checks; everything else is refused.
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool(t, c.CertDir)}}}
		for _, base := range []string{"https://" + addr, c.NS.Server.URL()} {
			if got := status(t, hc, "GET", base+"/healthz", nil); got != http.StatusOK {
				t.Errorf("%s/healthz without a client certificate: %d, want 200", base, got)
			}
			if got := status(t, hc, "GET", base+"/status", c.Key.Sign); got != http.StatusUnauthorized {
				t.Errorf("%s/status with a token but no client certificate: %d, want 401", base, got)
			}
		}
	})
	t.Run("ErrOtherCA", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "other")
		if _, err := tlsconf.WriteCerts(dir, []string{"127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
		f := tlsconf.NodeFiles(dir, "127.0.0.1")
		f.CA = filepath.Join(c.CertDir, "ca.pem") // trusts the server, is not trusted by it
		tc, err := tlsconf.LoadCluster(f)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/status", nil)
		c.Key.Sign(req)
		resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: tc.Transport()}).Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("a client of another CA got %d", resp.StatusCode)
		}
	})
	t.Run("CertButNoToken", func(t *testing.T) {
		hc := c.HTTPClient()
		if got := status(t, hc, "GET", "https://"+addr+"/status", nil); got != http.StatusUnauthorized {
			t.Fatalf("certificate without token: %d, want 401", got)
		}
		if got := status(t, hc, "GET", "https://"+addr+"/status", c.Key.Sign); got != http.StatusOK {
			t.Fatalf("certificate and token: %d, want 200", got)
		}
	})
}
