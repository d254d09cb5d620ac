package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"depot/internal/auth"
	"depot/internal/node"
	"depot/internal/tlsconf"
	"depot/nameserver/nsclient"
)

// clusterTLSFlags name the files of the cluster's mutual TLS, shared by
// every role and the admin CLI.
type clusterTLSFlags struct{ ca, cert, key string }

func (f *clusterTLSFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.ca, "ca", envOr("DEPOT_CA_FILE", ""), "cluster CA certificate (PEM): turns on mutual TLS for internal traffic, with --cert and --key (env DEPOT_CA_FILE)")
	fs.StringVar(&f.cert, "cert", envOr("DEPOT_CERT_FILE", ""), "this node's certificate, signed by the cluster CA (env DEPOT_CERT_FILE)")
	fs.StringVar(&f.key, "key", envOr("DEPOT_CERT_KEY_FILE", ""), "the private key of --cert (env DEPOT_CERT_KEY_FILE)")
}

// load returns the cluster TLS, or nil when no file is named.
func (f *clusterTLSFlags) load() (*tlsconf.Cluster, error) {
	files := tlsconf.Files{CA: f.ca, Cert: f.cert, Key: f.key}
	if !files.Enabled() {
		return nil, nil
	}
	return tlsconf.LoadCluster(files)
}

// publicTLSFlags name the gateway's HTTPS certificate.
type publicTLSFlags struct{ cert, key string }

func (f *publicTLSFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cert, "tls-cert", envOr("DEPOT_TLS_CERT_FILE", ""), "serve the gateway over HTTPS with this certificate (PEM chain; reloaded on SIGHUP) (env DEPOT_TLS_CERT_FILE)")
	fs.StringVar(&f.key, "tls-key", envOr("DEPOT_TLS_KEY_FILE", ""), "the private key of --tls-cert (env DEPOT_TLS_KEY_FILE)")
}

// load returns the gateway's certificate, or nil without --tls-cert.
func (f *publicTLSFlags) load() (*tlsconf.Cert, error) {
	if f.cert == "" && f.key == "" {
		return nil, nil
	}
	return tlsconf.LoadCert(f.cert, f.key)
}

// secretFromEnvOrFile returns the environment variable env, or the
// trimmed contents of file, or "" when neither is set.
func secretFromEnvOrFile(env, file string) (string, error) {
	if v := os.Getenv(env); v != "" {
		return strings.TrimSpace(v), nil
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", file)
	}
	return s, nil
}

// loadAdminKey reads the admin credential from DEPOT_ADMIN_KEY or file;
// nil when neither is set.
func loadAdminKey(file string) (auth.Key, error) {
	s, err := secretFromEnvOrFile("DEPOT_ADMIN_KEY", file)
	if err != nil || s == "" {
		return nil, err
	}
	k, err := auth.ParseKey(s)
	if err != nil {
		return nil, fmt.Errorf("admin key: %w", err)
	}
	return k, nil
}

// reloadOnSIGHUP calls reload on every SIGHUP until ctx ends; reload logs
// its own failures (the old certificates stay in use). The returned stop
// waits for the goroutine.
func reloadOnSIGHUP(ctx context.Context, log *slog.Logger, reload func() error) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := reload(); err == nil {
					log.Info("SIGHUP: certificates reloaded")
				}
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}

// caClient returns an HTTP client that trusts the CA certificates in
// file, or http.DefaultClient (the system's roots) when file is "".
func caClient(file string) (*http.Client, error) {
	if file == "" {
		return http.DefaultClient, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	return &http.Client{Transport: tr}, nil
}

// adminConn is how the admin CLI reaches the nameserver.
type adminConn struct {
	nsURL, keyFile, dir, adminKeyFile string
	tls                               clusterTLSFlags
}

func (c *adminConn) register(fs *flag.FlagSet) {
	fs.StringVar(&c.nsURL, "nameserver", envOr("DEPOT_NAMESERVER", ""), "nameserver URL (env DEPOT_NAMESERVER)")
	fs.StringVar(&c.keyFile, "cluster-key-file", envOr("DEPOT_CLUSTER_KEY_FILE", ""), "file with the base64 cluster key (or env DEPOT_CLUSTER_KEY)")
	fs.StringVar(&c.dir, "dir", "", "data directory of a depot server, to read its cluster.key")
	fs.StringVar(&c.adminKeyFile, "admin-key-file", envOr("DEPOT_ADMIN_KEY_FILE", ""), "file with the base64 admin key, when the nameserver has one (or env DEPOT_ADMIN_KEY); signs instead of the cluster key")
	c.tls.register(fs)
}

// client returns a nameserver client signing with the admin key when one
// is given, else with the cluster key.
func (c *adminConn) client() (*nsclient.Client, error) {
	if c.nsURL == "" {
		return nil, errors.New("--nameserver (or DEPOT_NAMESERVER) is required: depot server prints it")
	}
	key, err := loadAdminKey(c.adminKeyFile)
	if err != nil {
		return nil, err
	}
	if key == nil {
		if c.keyFile == "" && c.dir == "" && os.Getenv("DEPOT_CLUSTER_KEY") == "" {
			return nil, errors.New("no key: set DEPOT_ADMIN_KEY, --admin-key-file, DEPOT_CLUSTER_KEY, --cluster-key-file or --dir")
		}
		if key, err = loadKey(c.keyFile, c.dir, false); errors.Is(err, errNoClusterKey) {
			return nil, fmt.Errorf("no cluster key in %s: set DEPOT_CLUSTER_KEY or --dir of the server", c.dir)
		} else if err != nil {
			return nil, err
		}
	}
	tc, err := c.tls.load()
	if err != nil {
		return nil, err
	}
	return nsclient.NewTLS(c.nsURL, key, tc), nil
}

// internalReload returns a function that reloads g's internal TLS
// certificate, logging a failure (the old certificate stays in use).
func internalReload(g node.Gossip) func() error {
	return func() error {
		if err := g.TLS.Reload(); err != nil {
			g.Logger.Error("internal TLS certificate reload failed; the old one stays in use", "err", err)
			return err
		}
		return nil
	}
}
