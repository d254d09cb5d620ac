package gateway

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"depot/client"
	"depot/gateway/s3"
	"depot/internal/auth"
	"depot/internal/guard"
	"depot/internal/httpx"
	"depot/internal/tlsconf"
)

// Config configures a Gateway.
type Config struct {
	// Addr is the listen address. Default "127.0.0.1:9000"; ":0" style
	// addresses pick a free port.
	Addr string
	// Client stores and reads blobs. Required.
	Client *client.Client
	// RootUser and RootPassword are the root credentials. Required.
	RootUser, RootPassword string
	// MaxBlobSize bounds the body of one POST /v1/blobs. Default 5 GiB.
	MaxBlobSize int64
	// ReadHeaderTimeout is how long a client has to send a request's
	// headers: slower (slow-loris) connections are closed. Default 10s.
	ReadHeaderTimeout time.Duration
	// BodyReadTimeout is how long a request body may stall: each read of
	// the body must get bytes within it, else the request fails
	// (S3 RequestTimeout, native 408) and the connection is closed.
	// Default 30s.
	BodyReadTimeout time.Duration
	// IdleTimeout is how long a kept-alive connection may wait for its
	// next request. Default 2m.
	IdleTimeout time.Duration
	// WriteTimeout is how long a response may stall: each write of the
	// response must be taken by the client within it, else the
	// connection is closed (guard.WriteStall). It does not bound a whole
	// download, only a client that stops reading. Default 30s; negative
	// is an error.
	WriteTimeout time.Duration
	// MaxConns caps the connections the gateway holds open; further
	// clients wait to be accepted (guard.LimitListener). Default 4096;
	// negative is an error. Keep it below the process's file limit.
	MaxConns int
	// RateLimit limits requests per client IP and per access key (S3
	// SlowDown with 503; 429 on /v1, per IP). Default: no limits.
	RateLimit guard.Config
	// Ready reports whether the cluster behind the gateway can serve, for
	// /readyz. Default: always ready.
	Ready func(context.Context) error
	// TLS, when not nil, serves HTTPS with its certificate, which Reload
	// may swap while the gateway runs. Default nil: plain HTTP.
	TLS *tlsconf.Cert
	// MetricsToken, when not empty, is the bearer token /metrics requires
	// (auth.MetricsGate). Default empty: /metrics is open.
	MetricsToken string
	// Logger receives request errors. Default slog.Default().
	Logger *slog.Logger
	// S3 configures the S3 API, served on the same port for every request
	// that is not /v1/, /healthz, /readyz or /metrics. Its Client, root
	// credentials and Logger are taken from this Config. The S3 API is
	// off while S3.Namespace is nil.
	S3 s3.Config
}

// Defaults.
const (
	DefaultAddr              = "127.0.0.1:9000"
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultBodyReadTimeout   = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultWriteTimeout      = 30 * time.Second
	DefaultMaxConns          = 4096
)

func (c *Config) setDefaults() error {
	if c.Client == nil {
		return errors.New("gateway: Config.Client is required")
	}
	if c.RootUser == "" || c.RootPassword == "" {
		return errors.New("gateway: root credentials are required")
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxBlobSize <= 0 {
		c.MaxBlobSize = 5 << 30
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.BodyReadTimeout <= 0 {
		c.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.WriteTimeout < 0 || c.MaxConns < 0 {
		return fmt.Errorf("gateway: WriteTimeout %v and MaxConns %d may not be negative", c.WriteTimeout, c.MaxConns)
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Gateway is the HTTP front of depot.
type Gateway struct {
	cfg     Config
	cl      *client.Client
	engine  *gin.Engine
	reg     *prometheus.Registry
	metrics *metrics
	s3      *s3.Server
	limiter *guard.Limiter

	mu     sync.Mutex
	ln     net.Listener
	srv    *http.Server
	closed bool
}

// New returns a Gateway; Start begins serving.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	lim, err := guard.New(cfg.RateLimit)
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, cl: cfg.Client, reg: prometheus.NewRegistry(), limiter: lim}
	g.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g.metrics = newMetrics(g.reg)
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.Use(gin.Recovery(), g.observe, g.guard)
	e.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", g.readyz)
	e.GET("/metrics", gin.WrapH(auth.MetricsGate(cfg.MetricsToken, nil, promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{Registry: g.reg}))))
	v1 := e.Group("/v1", g.rateLimit)
	v1.POST("/blobs", g.requireRoot, g.postBlob)
	v1.GET("/blobs/:fid", g.getBlob)
	v1.HEAD("/blobs/:fid", g.getBlob)
	v1.DELETE("/blobs/:fid", g.requireRoot, g.deleteBlob)
	if cfg.S3.Namespace != nil {
		sc := cfg.S3
		sc.Client, sc.RootUser, sc.RootPassword, sc.Limiter = cfg.Client, cfg.RootUser, cfg.RootPassword, lim
		if sc.Logger == nil {
			sc.Logger = cfg.Logger
		}
		srv, err := s3.New(sc)
		if err != nil {
			return nil, err
		}
		g.s3 = srv
		e.NoRoute(func(c *gin.Context) {
			c.Set("op", "s3")
			c.Status(http.StatusOK) // gin presets 404 for NoRoute
			srv.ServeHTTP(c.Writer, c.Request)
		})
	}
	g.engine = e
	return g, nil
}

// Handler returns the gateway's HTTP handler.
func (g *Gateway) Handler() http.Handler { return g.engine }

// Registry returns the gateway's metrics registry.
func (g *Gateway) Registry() *prometheus.Registry { return g.reg }

// Start listens on Config.Addr and serves in the background.
func (g *Gateway) Start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("gateway: closed")
	}
	ln, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("gateway: listen: %w", err)
	}
	ln = guard.LimitListener(ln, g.cfg.MaxConns)
	if g.cfg.TLS != nil {
		ln = tlsconf.Listener(ln, g.cfg.TLS.ServerConfig())
	}
	g.ln = ln
	if g.s3 != nil {
		g.s3.Start()
	}
	g.srv = &http.Server{
		Handler:           guard.WriteStall(g.engine, g.cfg.WriteTimeout),
		ReadHeaderTimeout: g.cfg.ReadHeaderTimeout,
		IdleTimeout:       g.cfg.IdleTimeout,
		// Generous, so that the S3 handler, not the HTTP server, refuses
		// oversized headers, with an S3 error document.
		MaxHeaderBytes: 1 << 20,
		ErrorLog:       slog.NewLogLogger(g.cfg.Logger.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := g.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.cfg.Logger.Error("gateway serve", "err", err)
		}
	}()
	return nil
}

// Addr returns the address the gateway listens on, once started.
func (g *Gateway) Addr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln == nil {
		return ""
	}
	return g.ln.Addr().String()
}

// URL returns the gateway's base URL, https when it serves TLS.
func (g *Gateway) URL() string {
	if g.cfg.TLS != nil {
		return "https://" + g.Addr()
	}
	return "http://" + g.Addr()
}

// Reload reads the TLS certificate and key files again; new connections get
// the new certificate, open ones keep theirs. On error the old certificate
// stays in use. Without TLS it does nothing.
func (g *Gateway) Reload() error {
	if g.cfg.TLS == nil {
		return nil
	}
	if err := g.cfg.TLS.Reload(); err != nil {
		g.cfg.Logger.Error("gateway: TLS certificate reload failed; the old one stays in use", "err", err)
		return err
	}
	g.cfg.Logger.Info("gateway: TLS certificate reloaded", "subject", g.cfg.TLS.Leaf().Subject.String(), "not_after", g.cfg.TLS.Leaf().NotAfter)
	return nil
}

// Close stops accepting requests and waits up to ctx's deadline for
// in-flight ones to finish. It is safe to call twice.
func (g *Gateway) Close(ctx context.Context) error {
	g.mu.Lock()
	srv := g.srv
	already := g.closed
	g.closed = true
	g.mu.Unlock()
	if already || srv == nil {
		return nil
	}
	if g.s3 != nil {
		g.s3.Close()
	}
	return httpx.Shutdown(ctx, srv, g.cfg.Logger)
}

func (g *Gateway) readyz(c *gin.Context) {
	if g.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
		defer cancel()
		if err := g.cfg.Ready(ctx); err != nil {
			c.String(http.StatusServiceUnavailable, "not ready: %v\n", err)
			return
		}
	}
	c.String(http.StatusOK, "ready\n")
}

// requireRoot admits requests with the root credentials as Basic auth or
// as a bearer token.
func (g *Gateway) requireRoot(c *gin.Context) {
	ok := false
	if user, pass, has := c.Request.BasicAuth(); has {
		ok = subtle.ConstantTimeCompare([]byte(user), []byte(g.cfg.RootUser)) == 1 &&
			subtle.ConstantTimeCompare([]byte(pass), []byte(g.cfg.RootPassword)) == 1
	} else if h := c.GetHeader("Authorization"); len(h) > 7 && h[:7] == "Bearer " {
		ok = subtle.ConstantTimeCompare([]byte(h[7:]), []byte(g.cfg.RootPassword)) == 1
	}
	if !ok {
		c.Header("WWW-Authenticate", `Basic realm="depot"`)
		writeErr(c, http.StatusUnauthorized, "Unauthorized", "credentials required")
		c.Abort()
		return
	}
	c.Next()
}

// guard puts a read deadline on every request body (BodyReadTimeout).
func (g *Gateway) guard(c *gin.Context) {
	c.Request.Body = guard.Body(c.Writer, c.Request, g.cfg.BodyReadTimeout)
	c.Next()
}

// rateLimit refuses native requests over the per-IP rate with 429.
func (g *Gateway) rateLimit(c *gin.Context) {
	if host, _, err := net.SplitHostPort(c.Request.RemoteAddr); err == nil && !g.limiter.AllowIP(host) {
		c.Header("Retry-After", "1")
		writeErr(c, http.StatusTooManyRequests, "SlowDown", "request rate over the limit")
		c.Abort()
		return
	}
	c.Next()
}

func writeErr(c *gin.Context, status int, code, msg string) {
	if c.Request.Method == http.MethodHead {
		c.Status(status)
		return
	}
	c.JSON(status, gin.H{"code": code, "error": msg})
}

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	bytesIn  prometheus.Counter
	bytesOut prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "depot_gateway_requests_total", Help: "Requests by operation and HTTP status.",
		}, []string{"op", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "depot_gateway_request_seconds", Help: "Request latency by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"op"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_gateway_bytes_in_total", Help: "Object bytes received.",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_gateway_bytes_out_total", Help: "Object bytes sent.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.bytesIn, m.bytesOut)
	return m
}

// observe counts every request by the operation set in the "op" key of the
// gin context (or the route) and its status.
func (g *Gateway) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	op := c.GetString("op")
	if op == "" {
		op = c.Request.Method + " " + c.FullPath()
		if c.FullPath() == "" {
			op = "other"
		}
	}
	g.metrics.requests.WithLabelValues(op, strconv.Itoa(c.Writer.Status())).Inc()
	g.metrics.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
}
