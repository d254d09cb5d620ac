package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServer_TLSAndSIGHUP makes certificates with `depot admin certs`, runs
// `depot server` with HTTPS on the gateway and mutual TLS inside, uses the
// admin CLI over mutual TLS and the data commands over HTTPS, then swaps the gateway's certificate files
// and sends SIGHUP: new connections get the new certificate, a keep-alive
// connection opened before keeps working.
func TestServer_TLSAndSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if out, err := exec.Command(depotBin, "admin", "certs", "--out", certs, "--hosts", "127.0.0.1,other").CombinedOutput(); err != nil {
		t.Fatalf("depot admin certs: %v\n%s", err, out)
	}
	ca := filepath.Join(certs, "ca.pem")
	node := filepath.Join(certs, "node-127.0.0.1.pem")
	nodeKey := filepath.Join(certs, "node-127.0.0.1-key.pem")
	// The gateway's public pair: a copy, so that the test can replace it.
	pub, pubKey := filepath.Join(dir, "gw.pem"), filepath.Join(dir, "gw-key.pem")
	cp(t, node, pub)
	cp(t, nodeKey, pubKey)

	env := []string{"DEPOT_ROOT_USER=tlstest", "DEPOT_ROOT_PASSWORD=tlstest-secret"}
	p := startProc(t, env, "server", "--dir", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0", "--log-level", "error",
		"--dataservers", "3", "--k", "2", "--m", "1",
		"--tls-cert", pub, "--tls-key", pubKey, "--ca", ca, "--cert", node, "--key", nodeKey)
	ep := strings.TrimSpace(strings.TrimPrefix(p.waitLine("endpoint:"), "endpoint:"))
	nsLine := strings.TrimSpace(strings.TrimPrefix(p.waitLine("nameserver:"), "nameserver:"))
	nsURL, _, _ := strings.Cut(nsLine, "/status")
	if !strings.HasPrefix(ep, "https://") || !strings.HasPrefix(nsURL, "https://") {
		t.Fatalf("endpoint %q, nameserver %q: not https", ep, nsURL)
	}

	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	newClient := func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 1}}
	}
	serial := func(hc *http.Client) *big.Int {
		t.Helper()
		resp, err := hc.Get(ep + "/healthz")
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

	// The admin CLI reaches the nameserver over mutual TLS with the admin
	// certificate, and without one it cannot.
	admin := []string{"admin", "--nameserver", nsURL, "--dir", filepath.Join(dir, "data"), "--ca", ca,
		"--cert", filepath.Join(certs, "admin.pem"), "--key", filepath.Join(certs, "admin-key.pem"), "status"}
	if out, err := exec.Command(depotBin, admin...).CombinedOutput(); err != nil {
		t.Fatalf("depot admin status over mutual TLS: %v\n%s", err, out)
	}
	if out, err := exec.Command(depotBin, "admin", "--nameserver", nsURL, "--dir", filepath.Join(dir, "data"), "status").CombinedOutput(); err == nil {
		t.Fatalf("depot admin status without a certificate succeeded:\n%s", out)
	}

	// The data commands and the health check trust the CA with --ca.
	if out, err := exec.Command(depotBin, "healthcheck", "--ca", ca, "--url", ep+"/readyz").CombinedOutput(); err != nil {
		t.Fatalf("depot healthcheck over HTTPS: %v\n%s", err, out)
	}
	file := filepath.Join(dir, "blob")
	if err := os.WriteFile(file, []byte("over https"), 0o600); err != nil {
		t.Fatal(err)
	}
	put := exec.Command(depotBin, "put", "--endpoint", ep, "--ca", ca, "-q", file)
	put.Env = append(os.Environ(), env...)
	if out, err := put.CombinedOutput(); err != nil {
		t.Fatalf("depot put over HTTPS: %v\n%s", err, out)
	}

	old := newClient()
	first := serial(old)
	cp(t, filepath.Join(certs, "node-other.pem"), pub) // also names 127.0.0.1
	cp(t, filepath.Join(certs, "node-other-key.pem"), pubKey)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for serial(newClient()).Cmp(first) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the gateway still serves the old certificate 30s after SIGHUP")
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	if got := serial(old); got.Cmp(first) != 0 {
		t.Fatal("the keep-alive connection changed certificate")
	}
	p.stop()
}

func cp(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
