package gateway_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"depot"
	"depot/client"
	"depot/gateway"
	"depot/internal/auth"
	"depot/internal/tlsconf"
	"depot/nameserver/nsclient"
)

// noNameserver is a client.Nameserver for a gateway that serves no blobs.
type noNameserver struct{}

func (noNameserver) Assign(context.Context, int, int, int) (nsclient.Assignment, error) {
	return nsclient.Assignment{}, depot.ErrNotEnoughNodes
}
func (noNameserver) Volume(context.Context, depot.VolumeID) (depot.Volume, error) {
	return depot.Volume{}, depot.ErrNotFound
}
func (noNameserver) Missed(context.Context, depot.Fid, []int) error { return nil }

// TestGateway_TLSReload serves HTTPS, swaps the certificate files and
// reloads: a new connection sees the new certificate while a keep-alive
// connection opened before goes on working; a reload of broken files keeps
// the certificate in use.
func TestGateway_TLSReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if _, err := tlsconf.WriteCerts(dir, []string{"127.0.0.1", "other"}); err != nil {
		t.Fatal(err)
	}
	f := tlsconf.NodeFiles(dir, "127.0.0.1")
	cert, err := tlsconf.LoadCert(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := auth.GenerateKey()
	cl, err := client.New(client.Config{Nameserver: noNameserver{}, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{Addr: "127.0.0.1:0", Client: cl, RootUser: "root", RootPassword: "secret-secret",
		TLS: cert, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close(context.Background()) })

	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(f.CA)
	pool.AppendCertsFromPEM(pem)
	newClient := func() (*http.Client, *http.Transport) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 1}
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr
	}
	// serial GETs /healthz and returns the serial number of the
	// certificate the connection used.
	serial := func(hc *http.Client) *big.Int {
		t.Helper()
		resp, err := hc.Get(gw.URL() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz: %d", resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber
	}

	old, _ := newClient()
	first := serial(old)
	if first.Cmp(cert.Leaf().SerialNumber) != 0 {
		t.Fatal("served another certificate than the one loaded")
	}

	// Replace the files with a newly issued certificate for the same host.
	next := tlsconf.NodeFiles(dir, "other") // also valid for 127.0.0.1
	copyFile(t, next.Cert, f.Cert)
	copyFile(t, next.Key, f.Key)
	if err := gw.Reload(); err != nil {
		t.Fatal(err)
	}

	fresh, _ := newClient()
	second := serial(fresh)
	if second.Cmp(first) == 0 {
		t.Fatal("a new connection after the reload got the old certificate")
	}
	if got := serial(old); got.Cmp(first) != 0 {
		t.Fatal("the keep-alive connection was not the old one")
	}

	// Broken files: the reload fails and the certificate stays.
	if err := os.WriteFile(f.Cert, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := gw.Reload(); err == nil {
		t.Fatal("reload of a broken certificate succeeded")
	}
	third, _ := newClient()
	if got := serial(third); got.Cmp(second) != 0 {
		t.Fatal("a failed reload changed the certificate served")
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
