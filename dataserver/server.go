package dataserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"depot"
	"depot/internal/auth"
	"depot/internal/httpx"
	"depot/internal/tlsconf"
)

// Config configures a dataserver. DefaultConfig fills every default;
// zero fields of a Config passed to New get the same defaults.
type Config struct {
	// ID is the node id, e.g. "ds1". Required.
	ID string
	// Dirs are the data directories, one per disk; at least one.
	Dirs []string
	// Addr is the HTTP listen address; default "127.0.0.1:0" (any port).
	Addr string
	// Key is the cluster key that signs internal requests. Required.
	Key auth.Key
	// TLS, when not nil, serves the shard API over mutual TLS: clients
	// need a certificate signed by the cluster CA. Default nil: plain HTTP.
	TLS *tlsconf.Cluster
	// MetricsToken, when not empty, is the bearer token /metrics requires
	// (auth.MetricsGate). Default empty: /metrics is open.
	MetricsToken string
	// Fsync is the durability policy of writes; default FsyncGroup.
	Fsync FsyncPolicy
	// GroupCommitDelay bounds how long a group commit waits for companion
	// writes; default 2ms.
	GroupCommitDelay time.Duration
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// MaxNeedleSize is the largest shard accepted in one PUT; default
	// (and upper bound) 128 MiB - 1.
	MaxNeedleSize int64
	// MaxDirBytes, when positive, caps the bytes kept in each data
	// directory (writes past it fail as if the disk were full); default 0,
	// no cap but the filesystem's.
	MaxDirBytes int64
	// MinFreeBytes is the free space a directory needs to take a new shard
	// file; default 0.
	MinFreeBytes int64
	// CheckpointInterval is how often changed indexes are checkpointed;
	// default 30s.
	CheckpointInterval time.Duration
	// ShutdownTimeout bounds how long Close waits for requests in flight;
	// default 10s.
	ShutdownTimeout time.Duration
}

// DefaultConfig returns a Config with every default filled in; ID, Dirs
// and Key remain to be set.
func DefaultConfig() Config {
	sc := DefaultStoreConfig()
	return Config{
		Addr:               "127.0.0.1:0",
		Fsync:              sc.Fsync,
		GroupCommitDelay:   sc.GroupCommitDelay,
		MaxNeedleSize:      sc.MaxNeedleSize,
		CheckpointInterval: sc.CheckpointInterval,
		ShutdownTimeout:    10 * time.Second,
	}
}

func (c *Config) setDefaults() {
	d := DefaultConfig()
	if c.Addr == "" {
		c.Addr = d.Addr
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = d.ShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c Config) storeConfig(reg prometheus.Registerer) StoreConfig {
	return StoreConfig{
		Dirs:               c.Dirs,
		Fsync:              c.Fsync,
		GroupCommitDelay:   c.GroupCommitDelay,
		MaxNeedleSize:      c.MaxNeedleSize,
		MaxDirBytes:        c.MaxDirBytes,
		MinFreeBytes:       c.MinFreeBytes,
		CheckpointInterval: c.CheckpointInterval,
		Logger:             c.Logger,
		Registerer:         reg,
	}
}

// Validate reports the first problem with c, after defaults are applied.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.ID == "":
		return errors.New("dataserver: empty node id")
	case len(c.Key) < 16:
		return errors.New("dataserver: cluster key missing or shorter than 16 bytes")
	case c.ShutdownTimeout < 0:
		return errors.New("dataserver: negative shutdown timeout")
	}
	return c.storeConfig(nil).Validate()
}

// Stats is the summary a dataserver advertises in its gossip metadata.
type Stats struct {
	Used         int64 `json:"used"`           // bytes of depot files over all directories
	Free         int64 `json:"free"`           // bytes still writable over writable directories
	Needles      int64 `json:"needles"`        // live needles
	ShardFiles   int   `json:"shard_files"`    // shard files held
	ReadOnlyDirs int   `json:"read_only_dirs"` // directories turned read-only
}

// Server is a dataserver: a Store served over the internal HTTP shard API.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store *Store
	reg   *prometheus.Registry
	h     http.Handler

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	bytesIn  prometheus.Counter
	bytesOut prometheus.Counter

	readers *readers // GETs being served and readers' holds (readers.go)

	mu      sync.Mutex // guards ln, srv, raw
	ln      net.Listener
	srv     *http.Server
	raw     map[net.Conn]struct{} // connections raw runs took over
	serving sync.WaitGroup
	ready   atomic.Bool
	closed  atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

// New opens the store in cfg.Dirs (recovering every shard file there) and
// builds the HTTP handler. It neither listens nor starts goroutines other
// than the store's checkpointer; Start does.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("node", cfg.ID), reg: prometheus.NewRegistry(), readers: newReaders()}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "depot_dataserver_requests_total",
		Help: "Shard API requests by operation and HTTP status.",
	}, []string{"op", "status"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "depot_dataserver_request_seconds",
		Help:    "Shard API request latency by operation.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
	}, []string{"op"})
	s.bytesIn = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "depot_dataserver_bytes_received_total",
		Help: "Needle bytes stored by PUT requests.",
	})
	s.bytesOut = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "depot_dataserver_bytes_sent_total",
		Help: "Needle bytes sent by GET requests.",
	})
	s.reg.MustRegister(s.requests, s.latency, s.bytesIn, s.bytesOut,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sc := cfg.storeConfig(s.reg)
	sc.Logger = s.log
	st, err := OpenStore(sc)
	if err != nil {
		return nil, err
	}
	s.store = st
	s.h = s.routes()
	return s, nil
}

// Store returns the server's store.
func (s *Server) Store() *Store { return s.store }

// Registry returns the server's own prometheus registry.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Handler returns the HTTP handler: the shard API behind the cluster-key
// middleware, and /healthz, /readyz and /metrics without it.
func (s *Server) Handler() http.Handler { return s.h }

// Start listens on cfg.Addr and serves HTTP in a goroutine that Close
// stops.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if s.srv != nil {
		return errors.New("dataserver: already started")
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("dataserver: listen: %w", err)
	}
	ln = tlsconf.Listener(ln, s.cfg.TLS.ServerConfig())
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	}()
	s.ready.Store(true)
	s.log.Info("dataserver serving", "addr", ln.Addr().String(), "dirs", s.cfg.Dirs)
	return nil
}

// Addr returns the host:port the server listens on, or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops accepting connections, lets requests in flight finish (up to
// ShutdownTimeout), then makes the store durable and closes it. Safe to
// call twice.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.ready.Store(false)
		s.closed.Store(true)
		s.mu.Lock()
		srv := s.srv
		s.mu.Unlock()
		var errs []error
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
			if err := httpx.Shutdown(ctx, srv, s.log); err != nil {
				errs = append(errs, fmt.Errorf("dataserver: shutdown: %w", err))
			}
			cancel()
			s.serving.Wait()
		}
		// Raw runs own their connections: closing them ends the runs.
		s.mu.Lock()
		for c := range s.raw {
			c.Close()
		}
		s.mu.Unlock()
		if err := s.store.Close(); err != nil {
			errs = append(errs, err)
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Stats returns the totals advertised to the cluster.
func (s *Server) Stats() Stats {
	st := s.store.Status()
	var out Stats
	for _, d := range st.Dirs {
		out.Used += d.Used
		if d.ReadOnly {
			out.ReadOnlyDirs++
		} else {
			out.Free += d.Free
		}
	}
	for _, f := range st.Files {
		out.Needles += f.Needles
	}
	out.ShardFiles = len(st.Files)
	return out
}

// route is one route of the shard API.
type route struct {
	pattern string
	h       http.HandlerFunc
}

// apiRoutes returns the shard API's routes, all behind the cluster key
// (and, with TLS, a client certificate).
func (s *Server) apiRoutes() []route {
	return []route{
		{"PUT /shard/{vol}/{idx}/{needle}", s.instrument("put", s.handlePut)},
		{"GET /shard/{vol}/{idx}/{needle}", s.instrument("get", s.handleGet)},
		{"DELETE /shard/{vol}/{idx}/{needle}", s.instrument("delete", s.handleDelete)},
		{"GET /shard/{vol}/{idx}", s.instrument("list", s.handleList)},
		{"GET /shard/{vol}/{idx}/needles", s.instrument("needles", s.handleNeedles)},
		{"POST /shard/{vol}/{idx}/compact", s.instrument("compact", s.handleCompact)},
		{"POST /holds", s.instrument("holds", s.handleHolds)},
		{"GET /status", s.instrument("status", s.handleStatus)},
	}
}

// Routes returns the pattern of every route behind the cluster key, for
// audits and tests.
func (s *Server) Routes() []string {
	var ps []string
	for _, r := range s.apiRoutes() {
		ps = append(ps, r.pattern)
	}
	return ps
}

func (s *Server) routes() http.Handler {
	api := http.NewServeMux()
	for _, r := range s.apiRoutes() {
		api.HandleFunc(r.pattern, r.h)
	}

	top := http.NewServeMux()
	top.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if s.closed.Load() {
			http.Error(w, "closed", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	top.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	top.Handle("GET /metrics", auth.MetricsGate(s.cfg.MetricsToken, s.cfg.Key, promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})))
	top.Handle("/", tlsconf.RequireClientCert(s.cfg.Key.Middleware(api)))
	return top
}

// statusWriter records the status and body bytes of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) instrument(route string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		op := route
		if op == "get" && r.Method == http.MethodHead {
			op = "head"
		}
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		defer func() {
			s.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
			if p := recover(); p != nil {
				s.requests.WithLabelValues(op, "aborted").Inc()
				panic(p)
			}
			s.requests.WithLabelValues(op, strconv.Itoa(sw.status)).Inc()
		}()
		h(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
	}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, _ := httpx.Status(err)
	if errors.Is(err, ErrClosed) {
		err = fmt.Errorf("%w: %w", depot.ErrReadOnly, err)
		status = http.StatusServiceUnavailable
	}
	if status >= 500 {
		s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if status == http.StatusServiceUnavailable {
		_, code := httpx.Status(err)
		httpx.WriteJSON(w, status, httpx.ErrorBody{Code: code, Error: err.Error()})
		return
	}
	httpx.WriteError(w, err)
}

func parseShard(r *http.Request) (depot.VolumeID, int, error) {
	vol, err := strconv.ParseUint(r.PathValue("vol"), 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: volume %q is not a decimal volume id", depot.ErrBadRequest, r.PathValue("vol"))
	}
	idx, err := strconv.ParseUint(r.PathValue("idx"), 10, 16)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: shard index %q is not a decimal index", depot.ErrBadRequest, r.PathValue("idx"))
	}
	return depot.VolumeID(vol), int(idx), nil
}

func parseNeedle(r *http.Request) (depot.NeedleID, depot.Cookie, error) {
	ns := r.PathValue("needle")
	if len(ns) == 0 || len(ns) > 16 || strings.ToLower(ns) != ns {
		return 0, 0, fmt.Errorf("%w: needle %q is not lower-case hex", depot.ErrBadRequest, ns)
	}
	id, err := strconv.ParseUint(ns, 16, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: needle %q is not lower-case hex", depot.ErrBadRequest, ns)
	}
	cs := r.URL.Query().Get("cookie")
	if len(cs) != 8 {
		return 0, 0, fmt.Errorf("%w: cookie %q is not 8 hex digits", depot.ErrBadRequest, cs)
	}
	ck, err := strconv.ParseUint(cs, 16, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: cookie %q is not 8 hex digits", depot.ErrBadRequest, cs)
	}
	return depot.NeedleID(id), depot.Cookie(ck), nil
}

func parseTarget(r *http.Request) (depot.VolumeID, int, depot.NeedleID, depot.Cookie, error) {
	vol, idx, err := parseShard(r)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	id, ck, err := parseNeedle(r)
	return vol, idx, id, ck, err
}

// declaredLength returns the length a PUT's body must have: its
// Content-Length, else its X-Depot-Length, else -1 (unknown).
func declaredLength(r *http.Request) (int64, error) {
	if r.ContentLength >= 0 {
		return r.ContentLength, nil
	}
	v := r.Header.Get(depot.HeaderShardLength)
	if v == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s %q", depot.ErrBadRequest, depot.HeaderShardLength, v)
	}
	return n, nil
}

func (s *Server) handlePut(w http.ResponseWriter, r *http.Request) {
	vol, idx, id, ck, err := parseTarget(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	size, err := declaredLength(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	n, err := s.store.Write(r.Context(), vol, idx, id, ck, r.Body, size)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.bytesIn.Add(float64(n))
	httpx.WriteJSON(w, http.StatusCreated, map[string]int64{"size": n})
}

// outBufSize is the size of the buffer that gathers a GET's verified
// blocks into large writes.
const outBufSize = 256 << 10

var outBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, outBufSize) }}

// lazyWriter sends the status line with the first body byte, so an error
// found before any byte was verified can still become an error response.
type lazyWriter struct {
	w       http.ResponseWriter
	status  int
	started bool
}

func (lw *lazyWriter) Write(b []byte) (int, error) {
	if !lw.started {
		lw.started = true
		lw.w.WriteHeader(lw.status)
	}
	return lw.w.Write(b)
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	vol, idx, id, ck, err := parseTarget(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if r.Method == http.MethodHead {
		size, err := s.store.Stat(r.Context(), vol, idx, id, ck)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set("X-Depot-Size", strconv.FormatInt(size, 10))
		w.Header().Set("Accept-Ranges", "bytes")
		w.WriteHeader(http.StatusOK)
		return
	}
	// While the needle is served, a DELETE ?ifidle=1 of it is refused.
	defer s.readers.start(needleKey{vol: vol, idx: idx, needle: id})()
	nd, err := s.store.Open(r.Context(), vol, idx, id, ck)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer nd.Close()
	size := nd.Size()
	off, length, status := int64(0), size, http.StatusOK
	if rh := r.Header.Get("Range"); rh != "" {
		a, b, ok, satisfiable := parseRange(rh, size)
		switch {
		case ok && !satisfiable:
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			httpx.WriteJSON(w, http.StatusRequestedRangeNotSatisfiable, httpx.ErrorBody{
				Code: "InvalidRange", Error: fmt.Sprintf("range %q not satisfiable for %d bytes", rh, size)})
			return
		case ok:
			off, length, status = a, b-a+1, http.StatusPartialContent
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, size))
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	h.Set("X-Depot-Size", strconv.FormatInt(size, 10))
	h.Set("Accept-Ranges", "bytes")
	lw := &lazyWriter{w: w, status: status}
	// Verified blocks are gathered into large writes: one system call per
	// outBufSize bytes rather than one per checksum block.
	bw := outBufs.Get().(*bufio.Writer)
	bw.Reset(lw)
	n, err := nd.ReadRange(r.Context(), bw, off, length)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	outBufs.Put(bw)
	s.bytesOut.Add(float64(n))
	if err == nil && length == 0 {
		w.WriteHeader(status)
	}
	if err != nil {
		if !lw.started {
			for _, k := range []string{"Content-Length", "Content-Range", "X-Depot-Size", "Accept-Ranges"} {
				h.Del(k)
			}
			s.fail(w, r, err)
			return
		}
		// Headers are out: cut the connection so the client sees a read
		// error rather than a short or corrupt body.
		s.log.Error("aborting read", "path", r.URL.Path, "sent", n, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// parseRange parses a single "bytes=" range against size. ok is false
// when the header should be ignored (malformed or several ranges);
// satisfiable is false when the range lies outside the needle.
func parseRange(h string, size int64) (first, last int64, ok, satisfiable bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	if a == "" { // suffix: the last b bytes
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false, false
		}
		if n == 0 || size == 0 {
			return 0, 0, true, false
		}
		return max(size-n, 0), size - 1, true, true
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return 0, 0, false, false
	}
	last = size - 1
	if b != "" {
		last, err = strconv.ParseInt(b, 10, 64)
		if err != nil || last < first {
			return 0, 0, false, false
		}
		last = min(last, size-1)
	}
	if first >= size {
		return 0, 0, true, false
	}
	return first, last, true, true
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	vol, idx, id, ck, err := parseTarget(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if r.URL.Query().Get("ifidle") == "1" && s.readers.busy(needleKey{vol: vol, idx: idx, needle: id}, time.Now()) {
		s.fail(w, r, fmt.Errorf("needle %d,%x shard %d: %w", vol, id, idx, depot.ErrInUse))
		return
	}
	if err := s.store.Delete(r.Context(), vol, idx, id, ck); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ListEntry is one needle in the JSON answer of GET /shard/{vol}/{idx}.
type ListEntry struct {
	ID      string `json:"id"`     // lower-case hex needle id
	Cookie  string `json:"cookie"` // 8 hex digits
	Size    int64  `json:"size"`
	Deleted bool   `json:"deleted"`
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	vol, idx, err := parseShard(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ns, err := s.store.List(r.Context(), vol, idx)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]ListEntry, len(ns))
	for i, n := range ns {
		out[i] = ListEntry{ID: strconv.FormatUint(uint64(n.ID), 16), Cookie: fmt.Sprintf("%08x", uint32(n.Cookie)), Size: n.Size, Deleted: n.Deleted}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string][]ListEntry{"needles": out})
}

func (s *Server) handleCompact(w http.ResponseWriter, r *http.Request) {
	vol, idx, err := parseShard(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.store.Compact(r.Context(), vol, idx)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}

// StatusResponse is the JSON answer of GET /status.
type StatusResponse struct {
	ID string `json:"id"`
	StoreStatus
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, StatusResponse{ID: s.cfg.ID, StoreStatus: s.store.Status()})
}
