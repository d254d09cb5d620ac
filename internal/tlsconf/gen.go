package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Validity of generated certificates.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	CertValidity = 2 * 365 * 24 * time.Hour
)

// Usage says what a generated certificate is for.
type Usage int

const (
	// UsageNode certificates serve and act as clients (every depot role).
	UsageNode Usage = iota
	// UsageClient certificates only act as clients (the admin CLI).
	UsageClient
	// UsageServer certificates only serve (the gateway's public side).
	UsageServer
)

// CA is a certificate authority that can sign certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte // Cert as PEM
}

// Pair is a certificate and its key as PEM.
type Pair struct {
	CertPEM, KeyPEM []byte
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// GenerateCA makes a self-signed ECDSA P-256 CA named name.
func GenerateCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: CA key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"depot"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// KeyPEM returns the CA's private key as PKCS#8 PEM.
func (ca *CA) KeyPEM() ([]byte, error) { return keyPEM(ca.Key) }

func keyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Issue makes an ECDSA P-256 certificate for cn signed by ca, valid for
// CertValidity. hosts become SANs (IP addresses or DNS names).
func (ca *CA) Issue(cn string, hosts []string, usage Usage) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, fmt.Errorf("tlsconf: key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return Pair{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"depot"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(CertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	switch usage {
	case UsageNode:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	case UsageClient:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	case UsageServer:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return Pair{}, fmt.Errorf("tlsconf: certificate for %s: %w", cn, err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return Pair{}, err
	}
	return Pair{CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), KeyPEM: kp}, nil
}

// LocalHosts are added to every node certificate's SANs, so that a node
// also answers on the loopback interface.
var LocalHosts = []string{"localhost", "127.0.0.1", "::1"}

// WriteCerts makes a CA, one node certificate per host and an admin client
// certificate in dir (see the package documentation for the file names).
// A host entry "name=san1+san2" makes node-<name>.pem for those SANs.
// It refuses to overwrite an existing ca.pem. It returns the files written.
func WriteCerts(dir string, hosts []string) ([]string, error) {
	if len(hosts) == 0 {
		hosts = []string{"localhost"}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlsconf: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.pem")); err == nil {
		return nil, fmt.Errorf("tlsconf: %s already holds a ca.pem; use another directory", dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tlsconf: %w", err)
	}
	ca, err := GenerateCA("depot cluster CA")
	if err != nil {
		return nil, err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	var written []string
	write := func(name string, b []byte, mode os.FileMode) error {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			return fmt.Errorf("tlsconf: %w", err)
		}
		written = append(written, p)
		return nil
	}
	if err := write("ca.pem", ca.PEM, 0o644); err != nil {
		return written, err
	}
	if err := write("ca-key.pem", caKey, 0o600); err != nil {
		return written, err
	}
	for _, h := range hosts {
		h, sans := nodeSpec(h)
		if h == "" || strings.ContainsAny(h, `/\*`) || len(sans) == 0 {
			return written, fmt.Errorf("tlsconf: bad host name %q", h)
		}
		p, err := ca.Issue(h, append(sans, LocalHosts...), UsageNode)
		if err != nil {
			return written, err
		}
		if err := write("node-"+h+".pem", p.CertPEM, 0o644); err != nil {
			return written, err
		}
		if err := write("node-"+h+"-key.pem", p.KeyPEM, 0o600); err != nil {
			return written, err
		}
	}
	p, err := ca.Issue("depot-admin", nil, UsageClient)
	if err != nil {
		return written, err
	}
	if err := write("admin.pem", p.CertPEM, 0o644); err != nil {
		return written, err
	}
	return written, write("admin-key.pem", p.KeyPEM, 0o600)
}

// nodeSpec splits a WriteCerts host entry: "host" names the certificate
// and is its SAN; "name=san1+san2" names it name with those SANs (for one
// certificate shared by pods, e.g. name=*.depot-nameserver.depot.svc).
func nodeSpec(entry string) (name string, sans []string) {
	entry = strings.TrimSpace(entry)
	name, list, ok := strings.Cut(entry, "=")
	if !ok {
		return entry, []string{entry}
	}
	for _, s := range strings.Split(list, "+") {
		if s = strings.TrimSpace(s); s != "" {
			sans = append(sans, s)
		}
	}
	return strings.TrimSpace(name), sans
}

// NodeFiles names the files WriteCerts made for host in dir.
func NodeFiles(dir, host string) Files {
	return Files{
		CA:   filepath.Join(dir, "ca.pem"),
		Cert: filepath.Join(dir, "node-"+host+".pem"),
		Key:  filepath.Join(dir, "node-"+host+"-key.pem"),
	}
}

// AdminFiles names the admin client files WriteCerts made in dir.
func AdminFiles(dir string) Files {
	return Files{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "admin.pem"), Key: filepath.Join(dir, "admin-key.pem")}
}
