package shop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"depot/shop/catalog"
	"depot/shop/objstore"
	"depot/shop/reviews"
	"depot/shop/web"
)

// Roles a process can run.
const (
	RoleAll     = "all"     // catalog, reviews and pages in one process
	RoleCatalog = "catalog" // the catalog API only
	RoleReviews = "reviews" // the review API only
)

// Config configures the shop. Zero fields take the defaults beside them.
type Config struct {
	// Addr is the HTTP listen address. Default ":8090".
	Addr string
	// Role is RoleAll (default), RoleCatalog or RoleReviews.
	Role string
	// DataDir holds catalog.db and reviews.db. Default "shop-data".
	DataDir string
	// S3 is depot's S3 endpoint and credentials. Endpoint, AccessKey and
	// SecretKey are required; S3.PublicURL is what browsers use.
	S3 objstore.Config
	// Origins may upload from browsers (bucket CORS). Default "*".
	Origins []string
	// CSRFKey signs form tokens. Default random per process.
	CSRFKey []byte
	// SecureCookies marks the pages' cookies Secure even when requests
	// come over plain HTTP (a TLS-terminating proxy in front).
	SecureCookies bool
	// Seed loads the demo catalog when the catalog is empty.
	Seed bool
	// SeedProducts is how many demo products Seed makes. Default 36.
	SeedProducts int
	// Workers per service for image resizing. Default 2.
	Workers int
	// SetupTimeout bounds bucket setup at start; when depot is down the
	// shop starts anyway and retries setup in the background. Default 10s.
	SetupTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Addr == "" {
		c.Addr = ":8090"
	}
	if c.Role == "" {
		c.Role = RoleAll
	}
	switch c.Role {
	case RoleAll, RoleCatalog, RoleReviews:
	default:
		return fmt.Errorf("shop: unknown role %q (want all, catalog or reviews)", c.Role)
	}
	if c.DataDir == "" {
		c.DataDir = "shop-data"
	}
	if c.SeedProducts == 0 {
		c.SeedProducts = 36
	}
	if c.SetupTimeout == 0 {
		c.SetupTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.S3.Logger == nil {
		c.S3.Logger = c.Logger
	}
	return nil
}

// Shop is a running shop: its services and their HTTP handler.
type Shop struct {
	cfg     Config
	Store   *objstore.Store
	Catalog *catalog.Service // nil in the reviews role
	Reviews *reviews.Service // nil in the catalog role
	Web     *web.Server      // nil unless RoleAll
	handler http.Handler

	cancel context.CancelFunc
	done   chan struct{}
}

// New opens the services' databases, starts their workers and sets up
// depot's buckets (in the background when depot does not answer).
func New(ctx context.Context, cfg Config) (*Shop, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	st, err := objstore.New(cfg.S3)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	s := &Shop{cfg: cfg, Store: st, done: make(chan struct{})}
	mux := http.NewServeMux()
	var setups []func(context.Context) error
	if cfg.Role == RoleAll || cfg.Role == RoleCatalog {
		s.Catalog, err = catalog.Open(catalog.Config{DBPath: filepath.Join(cfg.DataDir, "catalog.db"), Store: st, Origins: cfg.Origins, Workers: cfg.Workers, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		mux.Handle("/api/catalog/", s.Catalog.Handler())
		setups = append(setups, s.Catalog.Setup)
	}
	if cfg.Role == RoleAll || cfg.Role == RoleReviews {
		s.Reviews, err = reviews.Open(reviews.Config{DBPath: filepath.Join(cfg.DataDir, "reviews.db"), Store: st, Origins: cfg.Origins, Workers: cfg.Workers, Logger: cfg.Logger})
		if err != nil {
			s.closeServices()
			return nil, err
		}
		mux.Handle("/api/reviews/", s.Reviews.Handler())
		setups = append(setups, s.Reviews.Setup)
	}
	if cfg.Role == RoleAll {
		media := cfg.S3.PublicURL
		if media == "" {
			media = cfg.S3.Endpoint
		}
		s.Web, err = web.New(web.Config{Catalog: s.Catalog, Reviews: s.Reviews, CSRFKey: cfg.CSRFKey, Logger: cfg.Logger,
			MediaOrigins: []string{media}, SecureCookies: cfg.SecureCookies})
		if err != nil {
			s.closeServices()
			return nil, err
		}
		mux.Handle("/", s.Web)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if st.Available() {
			fmt.Fprintln(w, "ok")
			return
		}
		fmt.Fprintln(w, "ok (image storage unavailable)")
	})
	s.handler = mux

	// Bucket setup: once now, then in the background until it works.
	setup := func(ctx context.Context) error {
		for _, f := range setups {
			if err := f(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.SetupTimeout)
	err = setup(sctx)
	cancel()
	bg, bgCancel := context.WithCancel(context.Background())
	s.cancel = bgCancel
	if err != nil {
		cfg.Logger.Warn("depot buckets not set up yet; retrying in the background", "err", err)
		go s.retrySetup(bg, setup)
	} else {
		close(s.done)
	}
	if cfg.Seed && s.Catalog != nil {
		if err := Seed(ctx, s.Catalog, s.Reviews, cfg.SeedProducts); err != nil {
			cfg.Logger.Warn("seeding the demo catalog failed", "err", err)
		}
	}
	return s, nil
}

func (s *Shop) retrySetup(ctx context.Context, setup func(context.Context) error) {
	defer close(s.done)
	wait := time.Second
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, s.cfg.SetupTimeout)
		err := setup(sctx)
		cancel()
		if err == nil {
			s.cfg.Logger.Info("depot buckets set up")
			return
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// Handler serves the APIs and pages.
func (s *Shop) Handler() http.Handler { return s.handler }

func (s *Shop) closeServices() error {
	var errs []error
	if s.Catalog != nil {
		errs = append(errs, s.Catalog.Close())
	}
	if s.Reviews != nil {
		errs = append(errs, s.Reviews.Close())
	}
	return errors.Join(errs...)
}

// Close stops the background work and closes the databases.
func (s *Shop) Close() error {
	s.cancel()
	<-s.done
	return s.closeServices()
}

// Run serves the shop on cfg.Addr until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	s.cfg.Logger.Info("shop listening", "addr", ln.Addr().String(), "role", s.cfg.Role, "s3", s.cfg.S3.Endpoint, "data", s.cfg.DataDir)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !strings.Contains(err.Error(), "closed") {
		return err
	}
	return nil
}
