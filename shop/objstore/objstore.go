// Package objstore owns the shop's only road to depot: an S3 client
// (minio-go) wrapped in per-operation timeouts, retries with exponential
// backoff and a circuit breaker, so that a slow or stopped depot makes the
// shop fail fast with ErrUnavailable instead of hanging, and recover by
// itself when depot is back. It also sets up the shop's buckets (public
// read, CORS for browser uploads) and signs presigned PUT URLs.
//
// It keeps no state on disk and never touches depot's disks.
package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/cors"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ErrUnavailable wraps every error that means depot could not be reached
// or answered with a server error (or the circuit breaker is open).
var ErrUnavailable = errors.New("image storage is unavailable")

// ErrNotFound is returned when an object does not exist.
var ErrNotFound = errors.New("object not found")

// ImmutableCacheControl is the Cache-Control of every derived image: its
// key never changes content, so browsers and CDNs may keep it a year.
const ImmutableCacheControl = "public, max-age=31536000, immutable"

// Config configures a Store. Zero fields take the defaults beside them.
type Config struct {
	Endpoint  string // S3 endpoint, e.g. http://127.0.0.1:8080. Required.
	AccessKey string // Required.
	SecretKey string // Required.
	Region    string // default "us-east-1"
	// PublicURL is the base URL browsers use to reach the gateway (image
	// URLs and presigned PUTs). Default Endpoint.
	PublicURL string
	// OpTimeout bounds a small operation (stat, delete, bucket setup)
	// including its retries. Default 4s.
	OpTimeout time.Duration
	// TransferTimeout bounds an object put or get including retries.
	// Default 60s.
	TransferTimeout time.Duration
	// DialTimeout bounds a TCP connect. Default 1s.
	DialTimeout time.Duration
	// Retries is how many times a failed idempotent operation is retried.
	// Default 2.
	Retries int
	// RetryBackoff is the first retry's wait, doubled each time. Default
	// 100ms.
	RetryBackoff time.Duration
	// BreakerThreshold consecutive failures open the breaker. Default 3.
	BreakerThreshold int
	// BreakerCooldown is how long an open breaker rejects calls before it
	// lets one probe through. Default 2s.
	BreakerCooldown time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Endpoint == "" || c.AccessKey == "" || c.SecretKey == "" {
		return errors.New("objstore: Endpoint, AccessKey and SecretKey are required")
	}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.PublicURL == "" {
		c.PublicURL = c.Endpoint
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.OpTimeout == 0 {
		c.OpTimeout = 4 * time.Second
	}
	if c.TransferTimeout == 0 {
		c.TransferTimeout = 60 * time.Second
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = time.Second
	}
	if c.Retries == 0 {
		c.Retries = 2
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 100 * time.Millisecond
	}
	if c.BreakerThreshold == 0 {
		c.BreakerThreshold = 3
	}
	if c.BreakerCooldown == 0 {
		c.BreakerCooldown = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Store is a resilient S3 client. It is safe for concurrent use.
type Store struct {
	cfg       Config
	c         *minio.Client
	presigner *minio.Client
	br        breaker
}

func newClient(cfg Config, endpoint string) (*minio.Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("objstore: bad endpoint %q", endpoint)
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: cfg.OpTimeout,
		ExpectContinueTimeout: time.Second,
	}
	return minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       u.Scheme == "https",
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
		Transport:    tr,
		MaxRetries:   1, // retries are ours, bounded by our deadlines
	})
}

// New returns a Store. It does not contact depot.
func New(cfg Config) (*Store, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	c, err := newClient(cfg, cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	p := c
	if cfg.PublicURL != strings.TrimRight(cfg.Endpoint, "/") {
		if p, err = newClient(cfg, cfg.PublicURL); err != nil {
			return nil, err
		}
	}
	s := &Store{cfg: cfg, c: c, presigner: p}
	s.br.threshold, s.br.cooldown = cfg.BreakerThreshold, cfg.BreakerCooldown
	return s, nil
}

// Available reports whether the breaker lets calls through (depot was
// reachable at the last attempt, or the cool-down has passed).
func (s *Store) Available() bool { return s.br.state(time.Now()) != stateOpen }

// URL is the public URL of an object, for browsers.
func (s *Store) URL(bucket, key string) string {
	return s.cfg.PublicURL + "/" + bucket + "/" + (&url.URL{Path: key}).EscapedPath()
}

// EnsureBucket creates bucket when missing, makes it publicly readable
// (anonymous GetObject) and allows browser PUT/GET from origins.
func (s *Store) EnsureBucket(ctx context.Context, bucket string, origins []string) error {
	return s.do(ctx, s.cfg.OpTimeout, func(ctx context.Context) error {
		ok, err := s.c.BucketExists(ctx, bucket)
		if err != nil {
			return err
		}
		if !ok {
			if err := s.c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: s.cfg.Region}); err != nil {
				var er minio.ErrorResponse
				if !errors.As(err, &er) || er.Code != "BucketAlreadyOwnedByYou" {
					return err
				}
			}
		}
		policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%s/*"]}]}`, bucket)
		if err := s.c.SetBucketPolicy(ctx, bucket, policy); err != nil {
			return fmt.Errorf("public-read policy: %w", err)
		}
		if len(origins) == 0 {
			origins = []string{"*"}
		}
		cfg := cors.NewConfig([]cors.Rule{{
			AllowedOrigin: origins,
			AllowedMethod: []string{"PUT", "GET", "HEAD"},
			AllowedHeader: []string{"*"},
			ExposeHeader:  []string{"ETag"},
			MaxAgeSeconds: 3600,
		}})
		if err := s.c.SetBucketCors(ctx, bucket, cfg); err != nil {
			return fmt.Errorf("CORS: %w", err)
		}
		return nil
	})
}

// PutBytes stores b under key with a content type and Cache-Control.
func (s *Store) PutBytes(ctx context.Context, bucket, key string, b []byte, contentType, cacheControl string) error {
	return s.Put(ctx, bucket, key, bytes.NewReader(b), int64(len(b)), contentType, cacheControl)
}

// Put stores size bytes of r under key. The body is retried only when r
// is an io.Seeker.
func (s *Store) Put(ctx context.Context, bucket, key string, r io.Reader, size int64, contentType, cacheControl string) error {
	seeker, _ := r.(io.Seeker)
	first := true
	return s.do(ctx, s.cfg.TransferTimeout, func(ctx context.Context) error {
		if !first {
			if seeker == nil {
				return permanent{errors.New("upload interrupted and its body cannot be replayed")}
			}
			if _, err := seeker.Seek(0, io.SeekStart); err != nil {
				return permanent{err}
			}
		}
		first = false
		_, err := s.c.PutObject(ctx, bucket, key, r, size, minio.PutObjectOptions{
			ContentType: contentType, CacheControl: cacheControl, DisableMultipart: size >= 0 && size < 64<<20,
		})
		return err
	})
}

// Info describes an object.
type Info struct {
	Size        int64
	ContentType string
	ETag        string
}

// Head returns an object's metadata and up to n of its first bytes.
func (s *Store) Head(ctx context.Context, bucket, key string, n int) (Info, []byte, error) {
	var info Info
	var head []byte
	err := s.do(ctx, s.cfg.OpTimeout, func(ctx context.Context) error {
		st, err := s.c.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
		if err != nil {
			return err
		}
		info = Info{Size: st.Size, ContentType: st.ContentType, ETag: st.ETag}
		if n <= 0 || st.Size == 0 {
			return nil
		}
		opts := minio.GetObjectOptions{}
		if err := opts.SetRange(0, int64(min(n, int(st.Size)))-1); err != nil {
			return permanent{err}
		}
		o, err := s.c.GetObject(ctx, bucket, key, opts)
		if err != nil {
			return err
		}
		defer o.Close()
		head, err = io.ReadAll(io.LimitReader(o, int64(n)))
		return err
	})
	return info, head, err
}

// Get reads a whole object of at most limit bytes.
func (s *Store) Get(ctx context.Context, bucket, key string, limit int64) ([]byte, error) {
	var out []byte
	err := s.do(ctx, s.cfg.TransferTimeout, func(ctx context.Context) error {
		o, err := s.c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		defer o.Close()
		b, err := io.ReadAll(io.LimitReader(o, limit+1))
		if err != nil {
			return err
		}
		if int64(len(b)) > limit {
			return permanent{fmt.Errorf("object %s/%s is larger than %d bytes", bucket, key, limit)}
		}
		out = b
		return nil
	})
	return out, err
}

// Remove deletes an object; a missing object is not an error.
func (s *Store) Remove(ctx context.Context, bucket, key string) error {
	return s.do(ctx, s.cfg.OpTimeout, func(ctx context.Context) error {
		return s.c.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{})
	})
}

// PresignPut returns a URL that lets a browser PUT one object for expiry.
// It is computed locally: depot is not contacted.
func (s *Store) PresignPut(ctx context.Context, bucket, key string, expiry time.Duration) (string, error) {
	u, err := s.presigner.PresignedPutObject(ctx, bucket, key, expiry)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// permanent marks an error that retrying cannot fix.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// classify tells whether err means depot is unhealthy (a breaker failure,
// worth a retry) and maps not-found errors to ErrNotFound.
func classify(err error) (mapped error, failure bool) {
	var p permanent
	if errors.As(err, &p) {
		return p.error, false
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) && er.StatusCode > 0 && er.StatusCode < 500 {
		switch er.Code {
		case "NoSuchKey", "NoSuchBucket", "NotFound":
			return fmt.Errorf("%w: %s", ErrNotFound, er.Message), false
		}
		if er.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%w: %s", ErrNotFound, er.Message), false
		}
		if er.StatusCode != http.StatusTooManyRequests && er.StatusCode != http.StatusRequestTimeout {
			return err, false
		}
	}
	return err, true
}

// do runs fn with retries inside one deadline, through the breaker.
func (s *Store) do(ctx context.Context, timeout time.Duration, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	wait := s.cfg.RetryBackoff
	var last error
	for attempt := 0; attempt <= s.cfg.Retries; attempt++ {
		if !s.br.allow(time.Now()) {
			if last != nil {
				return fmt.Errorf("%w: %v", ErrUnavailable, last)
			}
			return fmt.Errorf("%w: depot did not answer recently (circuit breaker open)", ErrUnavailable)
		}
		err := fn(ctx)
		if err == nil {
			s.br.success()
			return nil
		}
		mapped, failure := classify(err)
		if !failure {
			s.br.success() // depot answered
			return mapped
		}
		if ctx.Err() != nil && context.Cause(ctx) == context.Canceled {
			s.br.release()
			return err // the caller gave up; depot is not to blame
		}
		if s.br.failure(time.Now()) {
			s.cfg.Logger.Warn("depot unavailable: circuit breaker open", "err", err, "cooldown", s.cfg.BreakerCooldown)
		}
		last = err
		if attempt == s.cfg.Retries {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %v", ErrUnavailable, last)
		case <-t.C:
		}
		wait *= 2
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, last)
}

type breakerState int

const (
	stateClosed breakerState = iota
	stateOpen
	stateHalfOpen
)

// breaker is a consecutive-failure circuit breaker: threshold failures
// open it for cooldown, then one probe call decides.
type breaker struct {
	threshold int
	cooldown  time.Duration

	mu        sync.Mutex
	fails     int
	openUntil time.Time
	open      bool
	probing   bool
}

func (b *breaker) state(now time.Time) breakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !b.open:
		return stateClosed
	case now.Before(b.openUntil):
		return stateOpen
	default:
		return stateHalfOpen
	}
}

func (b *breaker) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return true
	}
	if now.Before(b.openUntil) || b.probing {
		return false
	}
	b.probing = true
	return true
}

func (b *breaker) success() {
	b.mu.Lock()
	b.fails, b.open, b.probing = 0, false, false
	b.mu.Unlock()
}

func (b *breaker) release() {
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

// failure records a failure and reports whether it opened the breaker.
func (b *breaker) failure(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails++
	b.probing = false
	if b.open || b.fails >= b.threshold {
		opened := !b.open
		b.open = true
		b.openUntil = now.Add(b.cooldown)
		return opened
	}
	return false
}
