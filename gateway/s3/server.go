package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	"depot"
	"depot/client"
	"depot/gateway/s3/sigv4"
	"depot/gateway/s3/sse"
	"depot/internal/guard"
	"depot/internal/policy"
	"depot/nameserver/nsclient"
)

// Config configures the S3 API. Client, Namespace and the root credentials
// are required; every other zero field takes the default beside it.
type Config struct {
	// Client stores and reads object bytes. Required.
	Client *client.Client
	// Namespace returns the current nameserver client. Required.
	Namespace func() (*nsclient.Client, error)
	// RootUser and RootPassword are the root access key and secret.
	RootUser, RootPassword string
	// Domain enables virtual-hosted-style requests: a Host of
	// "<bucket>.<Domain>" names the bucket. Empty: path style only.
	Domain string
	// Region is reported by GetBucketLocation. Default "us-east-1".
	Region string
	// MaxObjectSize bounds one PutObject or UploadPart body: larger is
	// EntityTooLarge. Default 5 GiB, as on AWS.
	MaxObjectSize int64
	// MaxHeaderBytes bounds a request's header section, names and values:
	// larger is RequestHeaderSectionTooLarge. Default 8 KiB, as on AWS.
	MaxHeaderBytes int
	// MaxKeyLength bounds an object key in bytes: longer is
	// KeyTooLongError. Default 1024, as on AWS.
	MaxKeyLength int
	// MaxMetadataSize bounds the user metadata of an object (x-amz-meta-*
	// names and values): larger is MetadataTooLarge. Default 2 KiB, as on
	// AWS.
	MaxMetadataSize int
	// MaxParts is the highest part number of a multipart upload, and so
	// its most parts. Default and most 10000, as on AWS.
	MaxParts int
	// MaxListKeys caps max-keys, max-parts and max-uploads of listings.
	// Default 1000, as on AWS.
	MaxListKeys int
	// Limiter, when not nil, rate-limits requests per client IP (before
	// authentication) and per access key (after): a refused request gets
	// SlowDown, 503.
	Limiter *guard.Limiter
	// MinPartSize is the smallest part but the last of a multipart
	// upload. Default 5 MiB, as in S3.
	MinPartSize int64
	// UploadMaxAge is the age after which an unfinished multipart upload
	// is aborted by the janitor. Default 24h.
	UploadMaxAge time.Duration
	// JanitorInterval is how often the janitor looks for abandoned
	// uploads. Default 1h.
	JanitorInterval time.Duration
	// KeyCacheTTL is how long an access key looked up in the nameserver,
	// with its policy, and a bucket's owner and policy are remembered: a
	// change made through another gateway or the nameserver holds here
	// after at most this long. Default 2s.
	KeyCacheTTL time.Duration
	// UnknownKeyTTL is how long an access key the nameserver does not know
	// is remembered as unknown, so that a flood of requests signed with a
	// bad key does not ask the nameserver each time; a key created since
	// is refused here for at most this long. Default 1s; at most
	// KeyCacheTTL.
	UnknownKeyTTL time.Duration
	// Keyring holds the SSE-S3 master keys (package sse). Every gateway
	// of a cluster needs the same keys. Nil: requests for SSE-S3 and
	// PutBucketEncryption are answered NotImplemented, and SSE-S3 objects
	// cannot be read. SSE-C needs no keyring.
	Keyring *sse.Keyring
	// SSEChunkSize is the plaintext size of a sealed chunk of new
	// encrypted objects. Default sse.DefaultChunkSize (64 KiB).
	SSEChunkSize int
	// SSECOverHTTP accepts SSE-C keys on requests that came neither over
	// TLS nor through a proxy that says so (X-Forwarded-Proto: https).
	// Default false: they are refused, as S3 does, since a key sent in
	// the clear is no secret.
	SSECOverHTTP bool
	// CommitTimeout bounds a commit: the nameserver write that makes the
	// stored bytes of a PutObject, CopyObject, UploadPart or
	// CompleteMultipartUpload live. A commit runs detached from the
	// client's request (a client that goes away does not cut it short);
	// past this long its outcome is unknown (see settle). Default 30s,
	// above the nameserver client's retry budget.
	CommitTimeout time.Duration
	// Now is the clock, for signature times. Default time.Now.
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultRegion          = "us-east-1"
	DefaultMaxObjectSize   = 5 << 30
	DefaultMinPartSize     = 5 << 20
	DefaultUploadMaxAge    = 24 * time.Hour
	DefaultMaxHeaderBytes  = 8 << 10
	DefaultMaxKeyLength    = 1024
	DefaultMaxMetadataSize = 2 << 10
	DefaultMaxParts        = 10000
	DefaultMaxListKeys     = 1000
	DefaultCommitTimeout   = 30 * time.Second
	DefaultUnknownKeyTTL   = time.Second
	maxXMLBody             = 2 << 20
)

func (c *Config) setDefaults() error {
	if c.Client == nil || c.Namespace == nil {
		return errors.New("s3: Config.Client and Config.Namespace are required")
	}
	if c.RootUser == "" || c.RootPassword == "" {
		return errors.New("s3: root credentials are required")
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.MaxObjectSize <= 0 {
		c.MaxObjectSize = DefaultMaxObjectSize
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxKeyLength <= 0 {
		c.MaxKeyLength = DefaultMaxKeyLength
	}
	if c.MaxMetadataSize <= 0 {
		c.MaxMetadataSize = DefaultMaxMetadataSize
	}
	if c.MaxParts <= 0 {
		c.MaxParts = DefaultMaxParts
	}
	if c.MaxParts > DefaultMaxParts {
		return fmt.Errorf("s3: MaxParts %d is above %d, the nameserver's highest part number", c.MaxParts, DefaultMaxParts)
	}
	if c.MaxListKeys <= 0 {
		c.MaxListKeys = DefaultMaxListKeys
	}
	if c.MinPartSize <= 0 {
		c.MinPartSize = DefaultMinPartSize
	}
	if c.UploadMaxAge <= 0 {
		c.UploadMaxAge = DefaultUploadMaxAge
	}
	if c.JanitorInterval <= 0 {
		c.JanitorInterval = time.Hour
	}
	if c.KeyCacheTTL <= 0 {
		c.KeyCacheTTL = 2 * time.Second
	}
	if c.UnknownKeyTTL <= 0 {
		c.UnknownKeyTTL = min(DefaultUnknownKeyTTL, c.KeyCacheTTL)
	}
	if c.UnknownKeyTTL > c.KeyCacheTTL {
		return fmt.Errorf("s3: UnknownKeyTTL %v is above KeyCacheTTL %v", c.UnknownKeyTTL, c.KeyCacheTTL)
	}
	if c.SSEChunkSize <= 0 {
		c.SSEChunkSize = sse.DefaultChunkSize
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = DefaultCommitTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Server is the S3 API as an http.Handler.
type Server struct {
	cfg Config
	cl  *client.Client

	keyMu   sync.Mutex
	keys    map[string]cachedKey
	buckets map[string]cachedBucket

	runMu  sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type cachedKey struct {
	unknown bool // the nameserver does not know the key
	secret  string
	policy  *policy.Document // nil: none, grants nothing
	at      time.Time
}

// New returns a Server. It starts nothing; Start runs the janitor.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, cl: cfg.Client, keys: make(map[string]cachedKey), buckets: make(map[string]cachedBucket)}, nil
}

// Start runs the janitor that aborts abandoned multipart uploads.
func (s *Server) Start() {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Go(func() { s.janitor(ctx) })
}

// Close stops the janitor and waits for it. Safe to call twice.
func (s *Server) Close() {
	s.runMu.Lock()
	cancel := s.cancel
	s.runMu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
}

func (s *Server) ns() (*nsclient.Client, error) {
	ns, err := s.cfg.Namespace()
	if err != nil {
		return nil, fmt.Errorf("nameserver: %w", err)
	}
	return ns, nil
}

// secret returns the secret of an access key: the root's, or one kept in
// the nameserver.
func (s *Server) secret(ctx context.Context) sigv4.SecretFunc {
	return func(ak string) (string, error) {
		if ak == s.cfg.RootUser {
			return s.cfg.RootPassword, nil
		}
		u, err := s.user(ctx, ak)
		return u.secret, err
	}
}

// user returns an access key kept in the nameserver, with its parsed
// policy, cached for Config.KeyCacheTTL.
func (s *Server) user(ctx context.Context, ak string) (cachedKey, error) {
	s.keyMu.Lock()
	ck, ok := s.keys[ak]
	s.keyMu.Unlock()
	switch age := s.cfg.Now().Sub(ck.at); {
	case ok && ck.unknown && age < s.cfg.UnknownKeyTTL:
		return cachedKey{}, fmt.Errorf("%w: %s", sigv4.ErrUnknownKey, ak)
	case ok && !ck.unknown && age < s.cfg.KeyCacheTTL:
		return ck, nil
	}
	ns, err := s.ns()
	if err != nil {
		return cachedKey{}, err
	}
	u, err := ns.User(ctx, ak)
	if errors.Is(err, depot.ErrNotFound) {
		s.cacheKey(ak, cachedKey{unknown: true, at: s.cfg.Now()})
		return cachedKey{}, fmt.Errorf("%w: %s", sigv4.ErrUnknownKey, ak)
	}
	if err != nil {
		return ck, err
	}
	ck = cachedKey{secret: u.Secret, at: s.cfg.Now()}
	if u.Policy != "" {
		if ck.policy, err = policy.ParseStored([]byte(u.Policy), policy.Identity); err != nil {
			s.cfg.Logger.Warn("s3: user policy does not parse; the key may do nothing", "access_key", ak, "err", err)
		}
	}
	s.cacheKey(ak, ck)
	return ck, nil
}

// cacheKey remembers a key, known or unknown. The cache is bounded: when
// full it starts afresh, which costs lookups, never a wrong answer.
func (s *Server) cacheKey(ak string, ck cachedKey) {
	s.keyMu.Lock()
	if len(s.keys) > maxCached {
		clear(s.keys)
	}
	s.keys[ak] = ck
	s.keyMu.Unlock()
}

// request is one S3 request being served.
type request struct {
	w      http.ResponseWriter
	r      *http.Request
	ctx    context.Context
	id     string
	bucket string
	key    string
	auth   *sigv4.Auth // nil for anonymous requests
	ns     *nsclient.Client
	op     op // what the request does (opFor): authorised, then run
}

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// ServeHTTP serves one S3 request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := &request{w: w, r: r, ctx: r.Context(), id: newRequestID()}
	w.Header().Set("x-amz-request-id", q.id)
	w.Header().Set("x-amz-id-2", q.id)
	w.Header().Set("Server", "depot")
	q.bucket, q.key = s.route(r)
	err := s.serve(q)
	if err != nil {
		s.writeError(q, err)
	}
}

// route splits the request into bucket and key, virtual-hosted style when
// the host is a subdomain of Config.Domain, path style otherwise.
func (s *Server) route(r *http.Request) (bucket, key string) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	if s.cfg.Domain != "" {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if b, ok := strings.CutSuffix(strings.ToLower(host), "."+strings.ToLower(s.cfg.Domain)); ok && b != "" {
			return b, path
		}
	}
	bucket, key, _ = strings.Cut(path, "/")
	return bucket, key
}

func (s *Server) serve(q *request) error {
	r := q.r
	if n := headerSize(r.Header); n > s.cfg.MaxHeaderBytes {
		return s3err("RequestHeaderSectionTooLarge", http.StatusBadRequest,
			"Your request header section exceeds the maximum allowed size: %d bytes, at most %d.", n, s.cfg.MaxHeaderBytes)
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil && !s.cfg.Limiter.AllowIP(host) {
		return errSlowDown()
	}
	if r.Method == http.MethodOptions {
		return s.preflight(q)
	}
	if sigv4.Signed(r) {
		a, err := sigv4.Verify(r, s.secret(q.ctx), s.cfg.Now())
		if errors.Is(err, sigv4.ErrMalformed) && r.Header.Get("Authorization") == "" {
			return s3err("AuthorizationQueryParametersError", http.StatusBadRequest, "%v", err)
		}
		if err != nil {
			return err
		}
		if err := s.checkRegion(q, a); err != nil {
			return err
		}
		q.auth = a
		if !s.cfg.Limiter.AllowKey(a.AccessKey) {
			return errSlowDown()
		}
	}
	ns, err := s.ns()
	if err != nil {
		return err
	}
	q.ns = ns
	if q.bucket == "." || q.bucket == ".." || strings.ContainsFunc(q.bucket, unicode.IsControl) {
		// No bucket has such a name, and it must not reach the nameserver
		// as a path segment.
		switch {
		case q.auth == nil:
			return errAccessDenied()
		case r.Method == http.MethodPut && q.key == "":
			return s3err("InvalidBucketName", http.StatusBadRequest, "The specified bucket is not valid: %q", q.bucket)
		}
		return errNoSuchBucket(q.bucket)
	}
	q.op = opFor(r, q.bucket, q.key)
	if err := s.authorizeRequest(q); err != nil {
		return err
	}
	if r.Header.Get("Origin") != "" && q.bucket != "" {
		s.corsHeaders(q)
	}
	if q.bucket == "" {
		return s.dispatch(q)
	}
	if len(q.key) > s.cfg.MaxKeyLength {
		return s3err("KeyTooLongError", http.StatusBadRequest, "Your key is too long: %d bytes, at most %d", len(q.key), s.cfg.MaxKeyLength)
	}
	if err := unsupported(r); err != nil {
		return err
	}
	if q.key == "" {
		return s.dispatch(q)
	}
	return s.objectOp(q)
}

// checkRegion refuses a signature made for another region, as S3 does:
// AuthorizationHeaderMalformed, or AuthorizationQueryParametersError for
// a presigned URL. GetBucketLocation is let through signed for us-east-1,
// the region clients use to discover a bucket's region.
func (s *Server) checkRegion(q *request, a *sigv4.Auth) error {
	if a.Region == "" || a.Region == s.cfg.Region ||
		a.Region == DefaultRegion && q.r.Method == http.MethodGet && q.key == "" && q.r.URL.Query().Has("location") {
		return nil
	}
	if a.Presigned {
		return s3err("AuthorizationQueryParametersError", http.StatusBadRequest,
			"Error parsing the X-Amz-Credential parameter; the region '%s' is wrong; expecting '%s'", a.Region, s.cfg.Region)
	}
	return s3err("AuthorizationHeaderMalformed", http.StatusBadRequest,
		"The authorization header is malformed; the region '%s' is wrong; expecting '%s'", a.Region, s.cfg.Region)
}

// unsupportedSub are S3 subresources depot does not implement.
var unsupportedSub = []string{"website", "logging", "notification",
	"replication", "torrent", "restore", "select",
	"accelerate", "analytics", "inventory", "metrics", "ownershipControls", "publicAccessBlock",
	"requestPayment", "intelligent-tiering", "policyStatus", "renameObject", "session"}

func unsupported(r *http.Request) error {
	q := r.URL.Query()
	for _, sub := range unsupportedSub {
		if q.Has(sub) {
			return s3err("NotImplemented", http.StatusNotImplemented, "A header or query you provided implies functionality that is not implemented: ?%s", sub)
		}
	}
	return nil
}

func (s *Server) writeError(q *request, err error) {
	e := toS3(err)
	if e.Status >= 500 {
		s.cfg.Logger.Error("s3 request", "method", q.r.Method, "path", q.r.URL.Path, "err", err)
	} else {
		s.cfg.Logger.Debug("s3 request", "method", q.r.Method, "path", q.r.URL.Path, "err", err)
	}
	h := q.w.Header()
	h.Del("ETag")
	h.Del("Last-Modified")
	h.Del("Content-Length")
	if q.r.Method == http.MethodHead {
		q.w.WriteHeader(e.Status)
		return
	}
	doc := errorDoc{Code: e.Code, Message: e.Message, Resource: q.r.URL.Path, RequestID: q.id, HostID: q.id}
	var hns *sigv4.HeadersNotSignedError
	if errors.As(err, &hns) {
		doc.HeadersNotSigned = strings.Join(hns.Headers, ",")
	}
	s.writeXMLStatus(q, e.Status, doc)
}

func (s *Server) writeXML(q *request, v any) { s.writeXMLStatus(q, http.StatusOK, v) }

func (s *Server) writeXMLStatus(q *request, status int, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		s.cfg.Logger.Error("s3: marshal", "err", err)
		status, b = http.StatusInternalServerError, nil
	}
	q.w.Header().Set("Content-Type", "application/xml")
	q.w.Header().Set("Content-Length", fmt.Sprint(len(xml.Header)+len(b)))
	q.w.WriteHeader(status)
	io.WriteString(q.w, xml.Header)
	q.w.Write(b)
}

// readXML decodes a request body of at most maxXMLBody bytes into v.
func readXML(q *request, v any) error {
	body := q.auth.Body(q.r)
	b, err := io.ReadAll(io.LimitReader(body, maxXMLBody+1))
	if err != nil {
		return err
	}
	if len(b) > maxXMLBody {
		return s3err("MaxMessageLengthExceeded", http.StatusBadRequest, "Your request was too big.")
	}
	if err := xml.Unmarshal(b, v); err != nil {
		return errMalformedXML(err)
	}
	return nil
}

// janitor aborts multipart uploads older than UploadMaxAge.
func (s *Server) janitor(ctx context.Context) {
	t := time.NewTicker(s.cfg.JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := s.CleanUploads(ctx, s.cfg.Now().Add(-s.cfg.UploadMaxAge)); err != nil {
			s.cfg.Logger.Warn("s3 janitor", "err", err, "aborted", n)
		} else if n > 0 {
			s.cfg.Logger.Info("s3 janitor: aborted abandoned uploads", "aborted", n)
		}
	}
}

// CleanUploads aborts every multipart upload initiated before cutoff and
// returns how many it aborted.
func (s *Server) CleanUploads(ctx context.Context, cutoff time.Time) (int, error) {
	ns, err := s.ns()
	if err != nil {
		return 0, err
	}
	buckets, err := ns.Buckets(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, b := range buckets {
		opts := nsclient.UploadListOptions{}
		for page := 0; page < 1_000_000; page++ {
			l, err := ns.Uploads(ctx, b.Name, opts)
			if err != nil {
				if errors.Is(err, depot.ErrNotFound) {
					break
				}
				return n, err
			}
			for _, u := range l.Uploads {
				if u.Initiated.Before(cutoff) {
					if err := ns.AbortUpload(ctx, u.Bucket, u.Key, u.ID); err != nil && !errors.Is(err, depot.ErrNotFound) {
						return n, err
					}
					n++
				}
				opts.AfterKey, opts.AfterID = u.Key, u.ID
			}
			if !l.Truncated {
				break
			}
		}
	}
	return n, nil
}

// headerSize is the size of a header section as sent: "Name: value\r\n"
// per value.
func headerSize(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}
