// Package sigv4 verifies AWS Signature Version 4 on S3 requests: the
// Authorization header (with a signed payload hash or UNSIGNED-PAYLOAD),
// presigned URLs (X-Amz-* query parameters, X-Amz-Expires enforced), and
// the aws-chunked streaming bodies (STREAMING-AWS4-HMAC-SHA256-PAYLOAD with
// a signature on every chunk, its -TRAILER variant, and
// STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC32, CRC32C, SHA1 or SHA256
// checksum in the trailer). It follows the AWS "Signature Version 4
// signing process" and "Authenticating requests: Using the Authorization
// header / query parameters / chunked upload" documents.
package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Errors. Each is returned wrapped with detail; callers map them to S3 codes.
var (
	// ErrMissing is returned when a request carries no signature at all.
	ErrMissing = errors.New("request is not signed")
	// ErrMalformed is returned when the Authorization header or the
	// presigned query is malformed or uses another algorithm.
	ErrMalformed = errors.New("malformed authorization")
	// ErrUnknownKey is returned when the access key is not known.
	ErrUnknownKey = errors.New("unknown access key")
	// ErrSignature is returned when a signature does not match.
	ErrSignature = errors.New("signature does not match")
	// ErrSkew is returned when the request time is too far from now.
	ErrSkew = errors.New("request time too skewed")
	// ErrExpired is returned when a presigned URL has expired.
	ErrExpired = errors.New("request has expired")
	// ErrContentSHA256 is returned when the body does not match its
	// declared SHA-256.
	ErrContentSHA256 = errors.New("x-amz-content-sha256 does not match the body")
	// ErrChunk is returned for a malformed aws-chunked body.
	ErrChunk = errors.New("malformed chunked body")
	// ErrChecksum is returned when a trailing or header checksum does not
	// match the body.
	ErrChecksum = errors.New("checksum does not match the body")
	// ErrChecksumHeader: an x-amz-checksum-* header that is not one
	// well-formed value of a known algorithm, or more than one checksum.
	ErrChecksumHeader = errors.New("malformed or conflicting x-amz-checksum header")
	// ErrHeadersNotSigned is returned (as a *HeadersNotSignedError) when
	// a request carries x-amz-* headers that its signature does not
	// cover. Its text is S3's message for the case.
	ErrHeadersNotSigned = errors.New("There were headers present in the request which were not signed")
)

// HeadersNotSignedError names the x-amz-* headers of a request that its
// signature does not cover. S3 refuses such a request whatever the
// headers: they steer what a request does (x-amz-copy-source turns a PUT
// into a copy, x-amz-meta-*, x-amz-acl, x-amz-server-side-encryption...),
// and the holder of a presigned URL could otherwise add any of them and
// have them acted on in the signer's name.
type HeadersNotSignedError struct {
	Headers []string // lower-case, sorted
}

func (e *HeadersNotSignedError) Error() string { return ErrHeadersNotSigned.Error() }

// Unwrap returns ErrHeadersNotSigned.
func (e *HeadersNotSignedError) Unwrap() error { return ErrHeadersNotSigned }

// checkAmzSigned returns a *HeadersNotSignedError when r has x-amz-*
// headers that signed does not list. As on S3, x-amz-content-sha256 need
// not be listed on a presigned request: its value is the payload hash of
// the canonical request, so the signature covers it anyway. A request
// signed in the Authorization header must list it.
func checkAmzSigned(r *http.Request, signed []string, presigned bool) error {
	var missing []string
	for name := range r.Header {
		l := strings.ToLower(name)
		if !strings.HasPrefix(l, "x-amz-") || presigned && l == "x-amz-content-sha256" {
			continue
		}
		if !slices.Contains(signed, l) {
			missing = append(missing, l)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return &HeadersNotSignedError{Headers: missing}
}

// Payload hash values with a meaning of their own.
const (
	UnsignedPayload          = "UNSIGNED-PAYLOAD"
	StreamingPayload         = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	StreamingPayloadTrailer  = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	StreamingUnsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	algorithm                = "AWS4-HMAC-SHA256"
	timeFormat               = "20060102T150405Z"
	emptySHA256              = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// MaxSkew is the largest difference between a request's time and now.
const MaxSkew = 15 * time.Minute

// SecretFunc returns the secret of an access key, or an error wrapping
// ErrUnknownKey.
type SecretFunc func(accessKey string) (string, error)

// Auth is a verified request.
type Auth struct {
	AccessKey string
	// PayloadHash is the x-amz-content-sha256 value (UNSIGNED-PAYLOAD for
	// presigned requests without one).
	PayloadHash string
	// Presigned is set for query-string authentication.
	Presigned bool
	// Region is the region of the credential scope the request was signed
	// for ("" for Signature Version 2, which has none). Verify does not
	// check it; the caller compares it with its own region.
	Region string

	signingKey []byte
	signature  string
	amzDate    string
	scope      string
}

// Streaming reports whether the body is aws-chunked.
func (a *Auth) Streaming() bool { return strings.HasPrefix(a.PayloadHash, "STREAMING-") }

// Signed reports whether the request carries a signature of either form.
func Signed(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || r.URL.Query().Has("X-Amz-Signature") ||
		r.URL.Query().Has("X-Amz-Credential") || signedV2(r)
}

// Verify checks the signature of r at time now. The body is not read: for
// a hex PayloadHash wrap the body with (*Auth).Body to check it as it is
// read; streaming bodies are decoded by (*Auth).Body too.
func Verify(r *http.Request, secret SecretFunc, now time.Time) (*Auth, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		return verifyHeader(r, h, secret, now)
	}
	if r.URL.Query().Has("X-Amz-Signature") || r.URL.Query().Has("X-Amz-Credential") {
		return verifyQuery(r, secret, now)
	}
	if signedV2(r) {
		return verifyQueryV2(r, secret, now)
	}
	return nil, ErrMissing
}

type credential struct {
	accessKey, date, region, service string
}

func (c credential) scope() string {
	return c.date + "/" + c.region + "/" + c.service + "/aws4_request"
}

func parseCredential(s string) (credential, error) {
	// The access key may itself contain '/', so split from the right.
	parts := strings.Split(s, "/")
	if len(parts) < 5 || parts[len(parts)-1] != "aws4_request" {
		return credential{}, fmt.Errorf("%w: credential %q", ErrMalformed, s)
	}
	n := len(parts)
	c := credential{accessKey: strings.Join(parts[:n-4], "/"), date: parts[n-4], region: parts[n-3], service: parts[n-2]}
	if c.service != "s3" || len(c.date) != 8 {
		return credential{}, fmt.Errorf("%w: credential scope %q", ErrMalformed, s)
	}
	return c, nil
}

func verifyHeader(r *http.Request, h string, secret SecretFunc, now time.Time) (*Auth, error) {
	rest, ok := strings.CutPrefix(h, algorithm+" ")
	if !ok {
		return nil, fmt.Errorf("%w: algorithm must be %s", ErrMalformed, algorithm)
	}
	var credS, signedS, sig string
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		switch k {
		case "Credential":
			credS = v
		case "SignedHeaders":
			signedS = v
		case "Signature":
			sig = v
		}
	}
	if credS == "" || signedS == "" || sig == "" {
		return nil, fmt.Errorf("%w: Authorization needs Credential, SignedHeaders and Signature", ErrMalformed)
	}
	cred, err := parseCredential(credS)
	if err != nil {
		return nil, err
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" {
		amzDate = r.Header.Get("Date")
	}
	t, err := time.Parse(timeFormat, amzDate)
	if err != nil {
		if t2, err2 := http.ParseTime(amzDate); err2 == nil {
			t, amzDate = t2, t2.UTC().Format(timeFormat)
		} else {
			return nil, fmt.Errorf("%w: X-Amz-Date %q", ErrMalformed, amzDate)
		}
	}
	if d := now.Sub(t); d > MaxSkew || d < -MaxSkew {
		return nil, fmt.Errorf("%w: request time %s, server time %s", ErrSkew, t.UTC().Format(timeFormat), now.UTC().Format(timeFormat))
	}
	if !strings.HasPrefix(amzDate, cred.date) {
		return nil, fmt.Errorf("%w: credential date %s is not the request date", ErrMalformed, cred.date)
	}
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		return nil, fmt.Errorf("%w: missing x-amz-content-sha256", ErrMalformed)
	}
	sec, err := secret(cred.accessKey)
	if err != nil {
		return nil, err
	}
	signed := strings.Split(signedS, ";")
	a := &Auth{AccessKey: cred.accessKey, PayloadHash: payload, Region: cred.region, amzDate: amzDate, scope: cred.scope()}
	a.signingKey = signingKey(sec, cred)
	query := canonicalQuery(r.URL.Query(), "")
	if err := a.check(r, signed, query, payload, sig); err != nil {
		return nil, err
	}
	if err := checkAmzSigned(r, signed, false); err != nil {
		return nil, err
	}
	return a, nil
}

func verifyQuery(r *http.Request, secret SecretFunc, now time.Time) (*Auth, error) {
	q := r.URL.Query()
	if q.Get("X-Amz-Algorithm") != algorithm {
		return nil, fmt.Errorf("%w: X-Amz-Algorithm must be %s", ErrMalformed, algorithm)
	}
	cred, err := parseCredential(q.Get("X-Amz-Credential"))
	if err != nil {
		return nil, err
	}
	amzDate := q.Get("X-Amz-Date")
	t, err := time.Parse(timeFormat, amzDate)
	if err != nil {
		return nil, fmt.Errorf("%w: X-Amz-Date %q", ErrMalformed, amzDate)
	}
	exp, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || exp < 0 || exp > 7*24*3600 {
		return nil, fmt.Errorf("%w: X-Amz-Expires %q must be 0 to 604800", ErrMalformed, q.Get("X-Amz-Expires"))
	}
	if now.Before(t.Add(-MaxSkew)) {
		return nil, fmt.Errorf("%w: request time %s is in the future", ErrSkew, amzDate)
	}
	if now.After(t.Add(time.Duration(exp) * time.Second)) {
		return nil, fmt.Errorf("%w: expired at %s", ErrExpired, t.Add(time.Duration(exp)*time.Second).UTC().Format(time.RFC3339))
	}
	sig := q.Get("X-Amz-Signature")
	signedS := q.Get("X-Amz-SignedHeaders")
	if sig == "" || signedS == "" {
		return nil, fmt.Errorf("%w: missing X-Amz-Signature or X-Amz-SignedHeaders", ErrMalformed)
	}
	sec, err := secret(cred.accessKey)
	if err != nil {
		return nil, err
	}
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		payload = UnsignedPayload
	}
	a := &Auth{AccessKey: cred.accessKey, PayloadHash: payload, Presigned: true, Region: cred.region, amzDate: amzDate, scope: cred.scope()}
	a.signingKey = signingKey(sec, cred)
	signed := strings.Split(signedS, ";")
	if err := a.check(r, signed, canonicalQuery(q, "X-Amz-Signature"), payload, sig); err != nil {
		return nil, err
	}
	if err := checkAmzSigned(r, signed, true); err != nil {
		return nil, err
	}
	return a, nil
}

// check compares sig with the signature of the canonical request, trying
// the path as re-encoded by the AWS rules and as sent.
//
// Header values are canonicalised the AWS way (runs of spaces made one),
// and when that differs, also with every run of white space made one
// space, as minio-go and botocore sign them.
func (a *Auth) check(r *http.Request, signed []string, query, payload, sig string) error {
	headers, err := canonicalHeaders(r, signed, trimSpaces)
	if err != nil {
		return err
	}
	paths := []string{uriEncode(r.URL.Path, false)}
	if raw := r.URL.EscapedPath(); raw != paths[0] {
		paths = append(paths, raw)
	}
	signedList := strings.Join(signed, ";")
	var creq string
	try := func(h string) bool {
		for _, p := range paths {
			creq = strings.Join([]string{r.Method, p, query, h, signedList, payload}, "\n")
			want := hex.EncodeToString(hmacSHA256(a.signingKey, a.stringToSign(creq)))
			if subtle.ConstantTimeCompare([]byte(want), []byte(sig)) == 1 {
				a.signature = sig
				return true
			}
		}
		return false
	}
	if try(headers) {
		return nil
	}
	// The other header form only when the AWS one did not match: most
	// clients sign the AWS way.
	if h, _ := canonicalHeaders(r, signed, trimAllSpace); h != headers && try(h) {
		return nil
	}
	return fmt.Errorf("%w: canonical request was %q", ErrSignature, creq)
}

// trimSpaces is the AWS "Trimall": leading and trailing spaces removed,
// runs of spaces made one.
func trimSpaces(v string) string {
	v = strings.Trim(v, " ")
	for strings.Contains(v, "  ") {
		v = strings.ReplaceAll(v, "  ", " ")
	}
	return v
}

// trimAllSpace makes every run of white space one space.
func trimAllSpace(v string) string { return strings.Join(strings.Fields(v), " ") }

func (a *Auth) stringToSign(creq string) []byte {
	sum := sha256.Sum256([]byte(creq))
	return []byte(algorithm + "\n" + a.amzDate + "\n" + a.scope + "\n" + hex.EncodeToString(sum[:]))
}

func signingKey(secret string, c credential) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), []byte(c.date))
	k = hmacSHA256(k, []byte(c.region))
	k = hmacSHA256(k, []byte(c.service))
	return hmacSHA256(k, []byte("aws4_request"))
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

func canonicalHeaders(r *http.Request, signed []string, trim func(string) string) (string, error) {
	if !sort.StringsAreSorted(signed) {
		return "", fmt.Errorf("%w: SignedHeaders not sorted", ErrMalformed)
	}
	hasHost := false
	var b strings.Builder
	for _, h := range signed {
		var vals []string
		switch h {
		case "host":
			hasHost = true
			vals = []string{r.Host}
		case "content-length":
			if v := r.Header.Values("Content-Length"); len(v) > 0 {
				vals = v
			} else {
				vals = []string{strconv.FormatInt(r.ContentLength, 10)}
			}
		case "transfer-encoding":
			vals = []string{strings.Join(r.TransferEncoding, ",")}
		default:
			vals = r.Header.Values(h)
		}
		b.WriteString(h)
		b.WriteByte(':')
		for i, v := range vals {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(trim(v))
		}
		b.WriteByte('\n')
	}
	if !hasHost {
		return "", fmt.Errorf("%w: host must be signed", ErrMalformed)
	}
	return b.String(), nil
}

func canonicalQuery(q url.Values, skip string) string {
	type kv struct{ k, v string }
	var all []kv
	for k, vs := range q {
		if k == skip {
			continue
		}
		for _, v := range vs {
			all = append(all, kv{uriEncode(k, true), uriEncode(v, true)})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].k != all[j].k {
			return all[i].k < all[j].k
		}
		return all[i].v < all[j].v
	})
	var b strings.Builder
	for i, p := range all {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// uriEncode is AWS's UriEncode: every byte but A-Z a-z 0-9 - . _ ~ as %XX
// (upper-case hex), and '/' kept when encodeSlash is false.
func uriEncode(s string, encodeSlash bool) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' ||
			c == '/' && !encodeSlash {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexd[c>>4])
		b.WriteByte(hexd[c&15])
	}
	return b.String()
}
