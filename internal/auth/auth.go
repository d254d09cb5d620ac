// Package auth owns the cluster key and the token that every internal
// request between depot processes carries.
//
// The token travels in the X-Depot-Auth header as
//
//	<unix seconds>.<hex HMAC-SHA256(key, "<unix seconds>\n<METHOD>\n<path>")>
//
// where path is the request's URL path without the query. A token is
// accepted for MaxSkew either side of the receiver's clock, so a captured
// token cannot be replayed for long nor against another path.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Header is the HTTP header that carries the internal token.
const Header = "X-Depot-Auth"

// MaxSkew is how far a token's time may be from the receiver's clock.
const MaxSkew = 5 * time.Minute

// KeySize is the length in bytes of a generated cluster key.
const KeySize = 32

// ErrBadToken is returned when a request's internal token is missing,
// malformed, expired or signed with another key.
var ErrBadToken = errors.New("auth: bad internal token")

// Key is the shared cluster key. The zero Key is not usable.
type Key []byte

// GenerateKey returns a new random cluster key.
func GenerateKey() (Key, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("auth: generate key: %w", err)
	}
	return k, nil
}

// ParseKey decodes a base64 (standard or URL alphabet) cluster key. Keys
// shorter than 16 bytes are refused.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) < 16 {
				return nil, fmt.Errorf("auth: cluster key is %d bytes, want at least 16", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("auth: cluster key is not base64")
}

// String returns the base64 form of k.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k) }

// LoadOrCreateKeyFile reads the base64 key in path, or writes a new one there
// (mode 0600) when the file does not exist.
func LoadOrCreateKeyFile(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return ParseKey(string(b))
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("auth: read key: %w", err)
	}
	k, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(k.String()+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("auth: write key: %w", err)
	}
	return k, nil
}

func (k Key) mac(ts, method, path string) string {
	h := hmac.New(sha256.New, k)
	h.Write([]byte(ts + "\n" + method + "\n" + path))
	return hex.EncodeToString(h.Sum(nil))
}

// Token returns the token for a request with method and path at time now.
func (k Key) Token(method, path string, now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	return ts + "." + k.mac(ts, method, path)
}

// Sign sets the token header on r.
func (k Key) Sign(r *http.Request) {
	r.Header.Set(Header, k.Token(r.Method, r.URL.Path, time.Now()))
}

// Verify checks the token of r. It returns an error wrapping ErrBadToken
// when the token is missing or wrong.
func (k Key) Verify(r *http.Request, now time.Time) error {
	tok := r.Header.Get(Header)
	if tok == "" {
		return fmt.Errorf("%w: missing %s header", ErrBadToken, Header)
	}
	ts, sig, ok := strings.Cut(tok, ".")
	if !ok {
		return fmt.Errorf("%w: malformed", ErrBadToken)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed time", ErrBadToken)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("%w: time skew %v", ErrBadToken, d.Round(time.Second))
	}
	if !hmac.Equal([]byte(sig), []byte(k.mac(ts, r.Method, r.URL.Path))) {
		return fmt.Errorf("%w: signature mismatch", ErrBadToken)
	}
	return nil
}

// Middleware refuses requests without a valid token: 401 when the header is
// absent, 403 when it is present but wrong.
func (k Key) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := k.Verify(r, time.Now()); err != nil {
			status := http.StatusForbidden
			if r.Header.Get(Header) == "" {
				status = http.StatusUnauthorized
			}
			http.Error(w, err.Error(), status)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Transport is an http.RoundTripper that signs every request with Key.
type Transport struct {
	Key  Key
	Base http.RoundTripper // http.DefaultTransport when nil
}

// RoundTrip signs a clone of req and sends it.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	r := req.Clone(req.Context())
	t.Key.Sign(r)
	return base.RoundTrip(r)
}

// MetricsGate guards a /metrics handler. With an empty token it lets every
// request through (the default: metrics carry no secrets nor object data).
// Otherwise a request needs "Authorization: Bearer <token>" or a valid
// internal token signed with key; others get 401.
func MetricsGate(token string, key Key, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		bearer, ok := strings.CutPrefix(h, "Bearer ")
		if ok && hmac.Equal([]byte(bearer), []byte(token)) {
			next.ServeHTTP(w, r)
			return
		}
		if len(key) > 0 && key.Verify(r, time.Now()) == nil {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="depot metrics"`)
		http.Error(w, "metrics need a bearer token", http.StatusUnauthorized)
	})
}
