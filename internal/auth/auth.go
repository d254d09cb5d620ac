package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Header is the HTTP header that carries the internal token.
const Header = "X-Depot-Auth"

// BodyHeader is the signed header that says how the body is bound: its
// hash, or "trailer" (doc.go).
const BodyHeader = "X-Depot-Body"

// BodyMacTrailer is the trailer that binds a streamed body to its token.
const BodyMacTrailer = "X-Depot-Body-Mac"

// MaxBufferedBody is the largest body a signer hashes before sending and a
// receiver reads whole before its handler runs.
const MaxBufferedBody = 1 << 20

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

// Token version 2 (doc.go).
const (
	version     = "2"
	macPrefix   = "depot-auth/2\n"
	bodyPrefix  = "depot-auth/2 body\n"
	sha256Field = "sha256="
	trailerMode = "trailer"
	nonceBytes  = 12
)

// emptySum is the X-Depot-Body value of a request without a body.
var emptySum = sha256Field + hex.EncodeToString(sha256.New().Sum(nil))

// canonicalQuery is the query as signed: parsed and re-encoded, so that
// two spellings of one query sign alike.
func canonicalQuery(u *url.URL) string {
	return u.Query().Encode()
}

func (k Key) mac(ts, nonce, method, path, query, body string) string {
	h := hmac.New(sha256.New, k)
	h.Write([]byte(macPrefix + ts + "\n" + nonce + "\n" + method + "\n" + path + "\n" + query + "\n" + body))
	return hex.EncodeToString(h.Sum(nil))
}

// bodyMac is the trailer value binding a streamed body's hash to a token.
func (k Key) bodyMac(tokenMac string, sum []byte) string {
	h := hmac.New(sha256.New, k)
	h.Write([]byte(bodyPrefix + tokenMac + "\n" + hex.EncodeToString(sum)))
	return hex.EncodeToString(h.Sum(nil))
}

func newNonce() string {
	var b [nonceBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on the platforms Go supports; a
		// token without a fresh nonce would be refused as a replay.
		panic(fmt.Sprintf("auth: nonce: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// token returns the X-Depot-Auth value and its mac.
func (k Key) token(method string, u *url.URL, body string, now time.Time) (tok, mac string) {
	ts := strconv.FormatInt(now.Unix(), 10)
	nonce := newNonce()
	mac = k.mac(ts, nonce, method, u.Path, canonicalQuery(u), body)
	return version + "." + ts + "." + nonce + "." + mac, mac
}

// Sign sets the token headers on r, for the request as it is now: a later
// change of its method, URL or body makes it fail verification. Each call
// makes a new token (a retry must be signed again). A body that r.GetBody
// can read again, of at most MaxBufferedBody bytes, is hashed at once;
// any other body is hashed as it is sent and bound by the trailer, and r
// goes chunked (ContentLength -1).
func (k Key) Sign(r *http.Request) {
	now := time.Now()
	if sum, ok := knownBodySum(r); ok {
		r.Header.Set(BodyHeader, sum)
		tok, _ := k.token(r.Method, r.URL, sum, now)
		r.Header.Set(Header, tok)
		return
	}
	r.Header.Set(BodyHeader, trailerMode)
	tok, mac := k.token(r.Method, r.URL, trailerMode, now)
	r.Header.Set(Header, tok)
	if r.Trailer == nil {
		r.Trailer = http.Header{}
	}
	r.Trailer[BodyMacTrailer] = nil
	r.ContentLength = -1
	r.GetBody = nil
	r.Body = &signingBody{rc: r.Body, h: sha256.New(), done: func(sum []byte) {
		r.Trailer.Set(BodyMacTrailer, k.bodyMac(mac, sum))
	}}
}

// knownBodySum returns the X-Depot-Body value of a body that is absent or
// can be read again cheaply.
func knownBodySum(r *http.Request) (string, bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return emptySum, true
	}
	if r.GetBody == nil || r.ContentLength < 0 || r.ContentLength > MaxBufferedBody {
		return "", false
	}
	rc, err := r.GetBody()
	if err != nil {
		return "", false
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(rc, MaxBufferedBody+1))
	if err != nil || n != r.ContentLength {
		return "", false
	}
	return sha256Field + hex.EncodeToString(h.Sum(nil)), true
}

// signingBody hashes a request body as the transport reads it and hands
// the hash over at its end, before the transport writes the trailers.
type signingBody struct {
	rc   io.ReadCloser
	h    hash.Hash
	done func(sum []byte)
	fin  bool
}

func (b *signingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.h.Write(p[:n])
	if err == io.EOF && !b.fin {
		b.fin = true
		b.done(b.h.Sum(nil))
	}
	return n, err
}

func (b *signingBody) Close() error { return b.rc.Close() }

// Verify checks the token of r against k and seen (doc.go). On success
// the nonce is spent and r.Body is replaced by one that is verified: read
// and checked already (a body hashed in the header, up to
// MaxBufferedBody), or checked as it is read. It returns an error
// wrapping ErrBadToken when the token is missing, malformed, expired,
// signed with another key or for another request, seen before, or when
// the body read to check it does not match.
func (k Key) Verify(r *http.Request, now time.Time, seen *ReplayCache) error {
	tok := r.Header.Get(Header)
	if tok == "" {
		return fmt.Errorf("%w: missing %s header", ErrBadToken, Header)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 4 || parts[0] != version {
		return fmt.Errorf("%w: malformed or not version %s", ErrBadToken, version)
	}
	ts, nonce, sig := parts[1], parts[2], parts[3]
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed time", ErrBadToken)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("%w: time skew %v", ErrBadToken, d.Round(time.Second))
	}
	var nb [nonceBytes]byte
	if len(nonce) != 2*nonceBytes {
		return fmt.Errorf("%w: malformed nonce", ErrBadToken)
	}
	if _, err := hex.Decode(nb[:], []byte(nonce)); err != nil {
		return fmt.Errorf("%w: malformed nonce", ErrBadToken)
	}
	body := r.Header.Get(BodyHeader)
	want := k.mac(ts, nonce, r.Method, r.URL.Path, canonicalQuery(r.URL), body)
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return fmt.Errorf("%w: signature mismatch", ErrBadToken)
	}
	if err := seen.spend(nb, sec, now); err != nil {
		return err
	}
	return k.bindBody(r, body, want)
}

// bindBody replaces r.Body by a verified body for the X-Depot-Body value.
func (k Key) bindBody(r *http.Request, body, tokenMac string) error {
	if body == trailerMode {
		r.Body = &verifyingBody{rc: r.Body, h: sha256.New(), check: func(sum []byte) error {
			got := r.Trailer.Get(BodyMacTrailer)
			if !hmac.Equal([]byte(got), []byte(k.bodyMac(tokenMac, sum))) {
				return fmt.Errorf("%w: body does not match its %s trailer", ErrBadToken, BodyMacTrailer)
			}
			return nil
		}}
		return nil
	}
	hexSum, ok := strings.CutPrefix(body, sha256Field)
	want, err := hex.DecodeString(hexSum)
	if !ok || err != nil || len(want) != sha256.Size {
		return fmt.Errorf("%w: malformed %s header", ErrBadToken, BodyHeader)
	}
	check := func(sum []byte) error {
		if !hmac.Equal(sum, want) {
			return fmt.Errorf("%w: body does not match its signed hash", ErrBadToken)
		}
		return nil
	}
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return check(sha256.New().Sum(nil))
	}
	if r.ContentLength < 0 || r.ContentLength > MaxBufferedBody {
		r.Body = &verifyingBody{rc: r.Body, h: sha256.New(), check: check}
		return nil
	}
	// A small body is checked whole before the handler sees any of it, so
	// that a handler that stops reading early never acts on forged bytes.
	b, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength+1))
	r.Body.Close()
	if err != nil {
		return fmt.Errorf("%w: reading body: %w", ErrBadToken, err)
	}
	sum := sha256.Sum256(b)
	if err := check(sum[:]); err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return nil
}

// verifyingBody hashes a request body as the handler reads it; at its end
// it returns check's error instead of io.EOF.
type verifyingBody struct {
	rc    io.ReadCloser
	h     hash.Hash
	check func(sum []byte) error
	err   error
}

func (b *verifyingBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	b.h.Write(p[:n])
	if err == io.EOF {
		if cerr := b.check(b.h.Sum(nil)); cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

func (b *verifyingBody) Close() error { return b.rc.Close() }

// Middleware refuses requests without a valid token: 401 when the header is
// absent, 403 when it is present but wrong. It keeps its own ReplayCache.
func (k Key) Middleware(next http.Handler) http.Handler {
	seen := NewReplayCache(DefaultReplayCapacity)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := k.Verify(r, time.Now(), seen); err != nil {
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
	seen := NewReplayCache(DefaultReplayCapacity)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		bearer, ok := strings.CutPrefix(h, "Bearer ")
		if ok && hmac.Equal([]byte(bearer), []byte(token)) {
			next.ServeHTTP(w, r)
			return
		}
		if len(key) > 0 && key.Verify(r, time.Now(), seen) == nil {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="depot metrics"`)
		http.Error(w, "metrics need a bearer token", http.StatusUnauthorized)
	})
}
