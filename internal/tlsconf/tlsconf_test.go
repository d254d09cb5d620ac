package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// mustCerts writes a CA and node certificates for 127.0.0.1 in a
// temporary directory.
func mustCerts(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	if _, err := WriteCerts(dir, []string{"127.0.0.1", "node-b"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustCluster(t *testing.T, f Files) *Cluster {
	t.Helper()
	c, err := LoadCluster(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serve starts an HTTPS server with cfg on 127.0.0.1 that answers the
// common name of the client's certificate.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: RequireClientCert(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
		})),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go srv.Serve(Listener(ln, cfg))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestWriteCerts(t *testing.T) {
	dir := mustCerts(t)
	for _, name := range []string{"ca.pem", "ca-key.pem", "node-127.0.0.1.pem", "node-127.0.0.1-key.pem", "node-node-b.pem", "admin.pem", "admin-key.pem"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Ext(name) == ".pem" && len(name) > 8 && name[len(name)-8:] == "-key.pem" && st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, st.Mode().Perm())
		}
	}
	c := mustCluster(t, NodeFiles(dir, "node-b"))
	leaf := c.cert.Leaf()
	if err := leaf.VerifyHostname("node-b"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if _, err := WriteCerts(dir, nil); err == nil {
		t.Fatal("WriteCerts overwrote an existing CA")
	}
}

func TestCluster_MutualTLS(t *testing.T) {
	dir := mustCerts(t)
	node := mustCluster(t, NodeFiles(dir, "127.0.0.1"))
	addr := serve(t, node.ServerConfig())
	url := node.URL(addr)
	if url != "https://"+addr {
		t.Fatalf("URL = %q", url)
	}

	t.Run("OK", func(t *testing.T) {
		for _, c := range []*Cluster{node, mustCluster(t, AdminFiles(dir))} {
			resp, err := (&http.Client{Transport: c.Transport()}).Get(url)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
	t.Run("ErrNoClientCert", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AddCert(node.cert.Leaf()) // any root will do: the server refuses first
		pem, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
		pool.AppendCertsFromPEM(pem)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err != nil {
			t.Fatal(err) // the handshake succeeds, for health checks
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a client without a certificate got %d, want 401", resp.StatusCode)
		}
	})
	t.Run("ErrOtherCA", func(t *testing.T) {
		other := mustCluster(t, NodeFiles(mustCerts(t), "127.0.0.1"))
		resp, err := (&http.Client{Transport: other.Transport()}).Get(url)
		if err == nil {
			resp.Body.Close()
			t.Fatal("a client of another CA was served")
		}
		var uerr x509.UnknownAuthorityError
		if !errors.As(err, &uerr) {
			t.Logf("error: %v", err) // the client refuses the server first
		}
	})
	t.Run("ErrPlainHTTP", func(t *testing.T) {
		var plain *Cluster
		resp, err := (&http.Client{Transport: plain.Transport()}).Get(plain.URL(addr))
		if err == nil {
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("plain HTTP to a TLS server: status %d", resp.StatusCode)
			}
		}
	})
}

func TestCert_Reload(t *testing.T) {
	dir := mustCerts(t)
	f := NodeFiles(dir, "127.0.0.1")
	cert, err := LoadCert(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	first := cert.Leaf().SerialNumber
	other := NodeFiles(dir, "node-b")

	// A key that does not match the certificate: the reload fails and the
	// old pair stays.
	copyFile(t, other.Cert, f.Cert)
	if err := cert.Reload(); err == nil {
		t.Fatal("Reload accepted a certificate with another key")
	}
	if cert.Leaf().SerialNumber.Cmp(first) != 0 {
		t.Fatal("failed reload replaced the certificate")
	}
	copyFile(t, other.Key, f.Key)
	if err := cert.Reload(); err != nil {
		t.Fatal(err)
	}
	if cert.Leaf().SerialNumber.Cmp(first) == 0 {
		t.Fatal("reload kept the old certificate")
	}
	got, _ := cert.GetCertificate(&tls.ClientHelloInfo{})
	if got.Leaf.Subject.CommonName != "node-b" {
		t.Fatalf("serving %q", got.Leaf.Subject.CommonName)
	}
}

func TestNilCluster(t *testing.T) {
	var c *Cluster
	if c.Enabled() || c.Scheme() != "http" || c.ServerConfig() != nil || c.ClientConfig() != nil || c.Reload() != nil {
		t.Fatal("nil Cluster is not plain HTTP")
	}
	if tc := c.Transport().TLSClientConfig; tc != nil && (tc.RootCAs != nil || tc.GetClientCertificate != nil) {
		t.Fatal("nil Cluster transport has a TLS config")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if Listener(ln, nil) != ln {
		t.Fatal("Listener wrapped a plain listener")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestWriteCerts_SharedName: a host entry name=san+san makes one
// certificate for every pod behind a wildcard, under its own file name.
func TestWriteCerts_SharedName(t *testing.T) {
	dir := t.TempDir()
	if _, err := WriteCerts(dir, []string{"dataserver=*.depot-dataserver.depot.svc+depot-dataserver"}); err != nil {
		t.Fatal(err)
	}
	leaf := mustCluster(t, NodeFiles(dir, "dataserver")).cert.Leaf()
	for _, h := range []string{"depot-dataserver-3.depot-dataserver.depot.svc", "depot-dataserver", "127.0.0.1"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	if err := leaf.VerifyHostname("dataserver"); err == nil {
		t.Error("the name alone is not a SAN, yet it verified")
	}
	if _, err := WriteCerts(t.TempDir(), []string{"*.x=a"}); err == nil {
		t.Error("a wildcard file name was accepted")
	}
}
