package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
)

// nextProtos keeps every depot listener and client on HTTP/1.1: shard
// streams are tuned for one request per connection, and a plain listener
// behaves the same, so TLS changes nothing but the encryption.
var nextProtos = []string{"http/1.1"}

// Cert is a certificate and its key, loaded from PEM files and reloadable.
// It is safe for concurrent use.
type Cert struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// LoadCert reads the PEM certificate (chain) in certFile and its key in
// keyFile.
func LoadCert(certFile, keyFile string) (*Cert, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tlsconf: both a certificate and a key file are needed")
	}
	c := &Cert{certFile: certFile, keyFile: keyFile}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files again. On error the pair in use stays.
func (c *Cert) Reload() error {
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("tlsconf: load %s: %w", c.certFile, err)
	}
	c.cur.Store(&pair)
	return nil
}

// Leaf returns the certificate in use.
func (c *Cert) Leaf() *x509.Certificate { return c.cur.Load().Leaf }

// GetCertificate serves the pair in use; for tls.Config.GetCertificate.
func (c *Cert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

// GetClientCertificate presents the pair in use; for
// tls.Config.GetClientCertificate.
func (c *Cert) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

// ServerConfig returns a server configuration that serves c and asks no
// client certificate: the gateway's public listener.
func (c *Cert) ServerConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.GetCertificate, NextProtos: nextProtos}
}

// Files names the PEM files of a Cluster.
type Files struct {
	CA   string // the cluster CA certificate(s)
	Cert string // this node's certificate
	Key  string // its private key
}

// Enabled reports whether any file is named.
func (f Files) Enabled() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// Cluster is mutual TLS for depot's internal traffic. The nil *Cluster is
// plain HTTP.
type Cluster struct {
	cert *Cert
	pool *x509.CertPool
}

// LoadCluster reads the CA and the node's pair. All three files are
// required.
func LoadCluster(f Files) (*Cluster, error) {
	if f.CA == "" || f.Cert == "" || f.Key == "" {
		return nil, errors.New("tlsconf: internal TLS needs a CA, a certificate and a key file")
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tlsconf: %s holds no PEM certificate", f.CA)
	}
	cert, err := LoadCert(f.Cert, f.Key)
	if err != nil {
		return nil, err
	}
	return &Cluster{cert: cert, pool: pool}, nil
}

// NewCluster returns a Cluster from a CA pool and a loaded pair.
func NewCluster(pool *x509.CertPool, cert *Cert) *Cluster {
	return &Cluster{cert: cert, pool: pool}
}

// Enabled reports whether c is TLS (c is not nil).
func (c *Cluster) Enabled() bool { return c != nil }

// Scheme returns "https" with TLS, else "http".
func (c *Cluster) Scheme() string {
	if c == nil {
		return "http"
	}
	return "https"
}

// URL returns the base URL of an internal server at hostport.
func (c *Cluster) URL(hostport string) string { return c.Scheme() + "://" + hostport }

// Reload reloads the node's certificate and key (not the CA).
func (c *Cluster) Reload() error {
	if c == nil {
		return nil
	}
	return c.cert.Reload()
}

// ServerConfig returns the internal servers' configuration: the node's
// certificate, and a client certificate, when one is sent, verified
// against the cluster CA (a certificate of another CA fails the
// handshake). A client without a certificate completes the handshake so
// that health checks work (kubelet probes, load balancers);
// RequireClientCert then refuses it every other route. Nil without TLS.
func (c *Cluster) ServerConfig() *tls.Config {
	if c == nil {
		return nil
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: c.cert.GetCertificate,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      c.pool,
		NextProtos:     nextProtos,
	}
}

// ClientConfig returns the internal clients' configuration: server
// certificates verified against the cluster CA, the node's certificate
// presented. Nil without TLS.
func (c *Cluster) ClientConfig() *tls.Config {
	if c == nil {
		return nil
	}
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		RootCAs:              c.pool,
		GetClientCertificate: c.cert.GetClientCertificate,
		NextProtos:           nextProtos,
	}
}

// Transport returns a clone of http.DefaultTransport that speaks TLS with
// ClientConfig when c is not nil.
func (c *Cluster) Transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if c != nil {
		tr.TLSClientConfig = c.ClientConfig()
		tr.ForceAttemptHTTP2 = false
	}
	return tr
}

// RequireClientCert wraps an internal API: over TLS, a request whose
// connection presented no client certificate verified against the cluster
// CA gets 401. Requests not over TLS pass (a plain server has no
// certificates to ask for). Use it on every route but health checks.
func RequireClientCert(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.VerifiedChains) == 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"code":"Unauthorized","error":"a client certificate from the cluster CA is required"}` + "\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Listener wraps ln in TLS with cfg; a nil cfg returns ln unchanged.
func Listener(ln net.Listener, cfg *tls.Config) net.Listener {
	if cfg == nil {
		return ln
	}
	return tls.NewListener(ln, cfg)
}
