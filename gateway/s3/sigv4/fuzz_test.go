package sigv4

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/minio/minio-go/v7/pkg/signer"
)

// The fuzz targets of this package. Seeds are built in code (real
// signatures need the signer) and kept in testdata/fuzz/<Target>/ too,
// with any crasher found, so `go test` replays them without -fuzz.

var (
	fuzzNow    = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fuzzCreds  = aws.Credentials{AccessKeyID: "AKIDFUZZ", SecretAccessKey: "fuzz/secret+key"}
	sentinels  = []error{ErrMissing, ErrMalformed, ErrUnknownKey, ErrSignature, ErrSkew, ErrExpired, ErrContentSHA256, ErrChunk, ErrChecksum, ErrHeadersNotSigned}
	fuzzHost   = "depot.test:9000"
	fuzzRegion = "us-east-1"
)

func fuzzSecret(ak string) (string, error) {
	if ak == fuzzCreds.AccessKeyID {
		return fuzzCreds.SecretAccessKey, nil
	}
	return "", fmt.Errorf("%w: %s", ErrUnknownKey, ak)
}

// sentinel reports whether err wraps one of the package's errors, which is
// what lets the gateway answer with an S3 code rather than InternalError.
func sentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// wire writes req as a client would and parses it back as net/http's
// server does, so the verifier sees exactly what a server would.
func wire(req *http.Request) (*http.Request, bool) {
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		return nil, false
	}
	r, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		return nil, false
	}
	return r, true
}

func newFuzzRequest(method, path string, query url.Values, body []byte) *http.Request {
	u := &url.URL{Scheme: "http", Host: fuzzHost, Path: path, RawQuery: query.Encode()}
	req := &http.Request{Method: method, URL: u, Host: fuzzHost, Header: http.Header{}, ContentLength: int64(len(body)),
		Body: io.NopCloser(bytes.NewReader(body)), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	if len(body) == 0 {
		req.Body = nil
	}
	return req
}

func sdkSigner() *v4.Signer {
	return v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
}

// signHeader signs req with aws-sdk-go-v2's signer, the Authorization form.
func signHeader(req *http.Request, payload, service, region string, at time.Time) {
	req.Header.Set("X-Amz-Content-Sha256", payload)
	if err := sdkSigner().SignHTTP(context.Background(), fuzzCreds, req, payload, service, region, at); err != nil {
		panic(err)
	}
}

// presign turns req into a presigned URL valid for expires seconds.
func presign(req *http.Request, service, region string, at time.Time, expires int) {
	q := req.URL.Query()
	q.Set("X-Amz-Expires", strconv.Itoa(expires))
	req.URL.RawQuery = q.Encode()
	u, hdr, err := sdkSigner().PresignHTTP(context.Background(), fuzzCreds, req, UnsignedPayload, service, region, at)
	if err != nil {
		panic(err)
	}
	pu, err := url.Parse(u)
	if err != nil {
		panic(err)
	}
	req.URL = pu
	for k, vs := range hdr {
		if !strings.EqualFold(k, "host") {
			req.Header[k] = vs
		}
	}
}

func rawRequest(req *http.Request) []byte {
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// FuzzVerify parses arbitrary raw HTTP requests and verifies them: Verify
// and the body decoders never panic, every refusal wraps one of the
// package's errors, and a streaming body never yields more bytes than its
// x-amz-decoded-content-length.
func FuzzVerify(f *testing.F) {
	get := newFuzzRequest(http.MethodGet, "/bucket/some key+%/é", url.Values{"list-type": {"2"}, "prefix": {"a b"}}, nil)
	signHeader(get, emptySHA256, "s3", fuzzRegion, fuzzNow)
	f.Add(rawRequest(get))
	pre := newFuzzRequest(http.MethodGet, "/bucket/photo.jpg", url.Values{"response-content-type": {"image/jpeg"}}, nil)
	presign(pre, "s3", fuzzRegion, fuzzNow.Add(-time.Minute), 3600)
	f.Add(rawRequest(pre))
	body := []byte("hello, depot")
	sum := sha256.Sum256(body)
	put := newFuzzRequest(http.MethodPut, "/bucket/k", nil, body)
	signHeader(put, hex.EncodeToString(sum[:]), "s3", fuzzRegion, fuzzNow)
	f.Add(rawRequest(put))
	for mode := range 3 {
		req, _ := chunkedRequest(bytes.Repeat([]byte("0123456789"), 30), 100, mode)
		f.Add(rawRequest(req))
	}
	f.Add([]byte("GET /b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2F20260102%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260102T030405Z&X-Amz-Expires=99999999999999999999&X-Amz-SignedHeaders=host&X-Amz-Signature=00 HTTP/1.1\r\nHost: h\r\n\r\n"))
	f.Add([]byte("GET /b/k?AWSAccessKeyId=AKIDFUZZ&Expires=1893456000&Signature=abc HTTP/1.1\r\nHost: h\r\n\r\n"))
	f.Add([]byte("PUT /b/k HTTP/1.1\r\nHost: h\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDFUZZ/20260102/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=0\r\nX-Amz-Date: Fri, 02 Jan 2026 03:04:05 GMT\r\nX-Amz-Content-Sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\nX-Amz-Decoded-Content-Length: 3\r\nContent-Length: 5\r\n\r\nfffffffffffffff\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		_ = Signed(r)
		a, err := Verify(r, fuzzSecret, fuzzNow)
		if err != nil {
			if !sentinel(err) {
				t.Fatalf("Verify error %v wraps none of the package's errors", err)
			}
			return
		}
		declared, err := a.DecodedLength(r)
		if err != nil {
			if !sentinel(err) {
				t.Fatalf("DecodedLength error %v wraps none of the package's errors", err)
			}
			return
		}
		n, err := io.Copy(io.Discard, io.LimitReader(a.Body(r), 1<<20))
		if err != nil && !sentinel(err) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("body error %v wraps none of the package's errors", err)
		}
		if a.Streaming() && n > declared {
			t.Fatalf("streaming body gave %d bytes, %d declared", n, declared)
		}
	})
}

// Parts of a signed request that FuzzSignedRequest changes one byte of.
const (
	partMethod = iota
	partPath
	partQuery
	partHeader
	partHost
	partAuth
	partPayload
	partDate
	numParts
)

// FuzzSignedRequest signs requests with aws-sdk-go-v2's signer, the
// Authorization header or a presigned URL: each one verifies, and any one
// byte changed in a signed part (method, path, query, a signed header,
// host, the signature fields, the payload hash, the date) is refused.
func FuzzSignedRequest(f *testing.F) {
	f.Add(uint8(0), "photos/cat.jpg", "prefix", "a b", "blue", false, uint8(partPath), uint16(3), byte('x'))
	f.Add(uint8(1), "a/../../etc/passwd", "uploads", "", "x\ty  z", true, uint8(partQuery), uint16(0), byte('A'))
	f.Add(uint8(2), "k%2Fé ☃+!*'()", "partNumber", "1", "v", false, uint8(partAuth), uint16(40), byte('0'))
	f.Add(uint8(3), "", "acl", "", "", true, uint8(partHeader), uint16(1), byte('~'))
	f.Add(uint8(0), "sp  ace", "x-id", "GetObject", "m", false, uint8(partDate), uint16(7), byte('9'))
	f.Fuzz(func(t *testing.T, m uint8, key, qk, qv, meta string, presigned bool, part uint8, pos uint16, nb byte) {
		methods := []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodHead}
		method := methods[int(m)%len(methods)]
		q := url.Values{}
		if qk != "" {
			q.Set(qk, qv)
		}
		req := newFuzzRequest(method, "/bucket/"+key, q, nil)
		// A header as it arrives at a server: no leading or trailing
		// white space, no control characters but tab.
		meta = strings.Trim(meta, " \t")
		for _, c := range []byte(meta) {
			if c < 0x20 && c != '\t' || c == 0x7f {
				return
			}
		}
		if meta != "" {
			req.Header.Set("X-Amz-Meta-Fuzz", meta)
		}
		if presigned {
			presign(req, "s3", fuzzRegion, fuzzNow.Add(-time.Minute), 900)
		} else {
			signHeader(req, UnsignedPayload, "s3", fuzzRegion, fuzzNow)
		}
		r, ok := wire(req)
		if !ok {
			return
		}
		if _, err := Verify(r, fuzzSecret, fuzzNow); err != nil {
			t.Fatalf("a request signed by aws-sdk-go-v2 fails to verify: %v\n%s", err, rawRequest(req))
		}
		if !mutate(r, int(part)%numParts, int(pos), nb, presigned) {
			return
		}
		if a, err := Verify(r, fuzzSecret, fuzzNow); err == nil {
			t.Fatalf("request changed in part %d verifies (access key %s): %s %s %v", part%numParts, a.AccessKey, r.Method, r.URL, r.Header)
		}
	})
}

// mutate changes one byte of a signed part of r to nb (made a printable,
// non-space ASCII character) and reports whether it changed anything.
func mutate(r *http.Request, part, pos int, nb byte, presigned bool) bool {
	nb = 0x21 + nb%(0x7f-0x21)
	change := func(s string) (string, bool) {
		if s == "" {
			return s, false
		}
		b := []byte(s)
		i := pos % len(b)
		if b[i] == nb {
			return s, false
		}
		b[i] = nb
		return string(b), true
	}
	var ok bool
	switch part {
	case partMethod:
		r.Method, ok = change(r.Method)
	case partPath:
		r.URL.Path, ok = change(r.URL.Path)
		r.URL.RawPath = ""
	case partQuery:
		q := r.URL.Query()
		var keys []string
		for k := range q {
			if !strings.HasPrefix(k, "X-Amz-") {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			return false
		}
		k := keys[pos%len(keys)]
		if q.Get(k) == "" {
			var nk string
			if nk, ok = change(k); ok {
				q[nk] = append(q[nk], q[k]...)
				delete(q, k)
			}
		} else {
			q[k][0], ok = change(q[k][0])
		}
		r.URL.RawQuery = q.Encode()
	case partHeader:
		v := r.Header.Get("X-Amz-Meta-Fuzz")
		if v, ok = change(v); ok {
			r.Header.Set("X-Amz-Meta-Fuzz", v)
		}
	case partHost:
		r.Host, ok = change(r.Host)
	case partAuth:
		if presigned {
			q := r.URL.Query()
			names := []string{"X-Amz-Credential", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Expires", "X-Amz-Algorithm"}
			name := names[pos%len(names)]
			q[name][0], ok = change(q[name][0])
			r.URL.RawQuery = q.Encode()
		} else {
			var v string
			if v, ok = change(r.Header.Get("Authorization")); ok {
				r.Header.Set("Authorization", v)
			}
		}
	case partPayload:
		if presigned {
			return false
		}
		var v string
		if v, ok = change(r.Header.Get("X-Amz-Content-Sha256")); ok {
			r.Header.Set("X-Amz-Content-Sha256", v)
		}
	case partDate:
		if presigned {
			q := r.URL.Query()
			q["X-Amz-Date"][0], ok = change(q["X-Amz-Date"][0])
			r.URL.RawQuery = q.Encode()
		} else {
			var v string
			if v, ok = change(r.Header.Get("X-Amz-Date")); ok {
				r.Header.Set("X-Amz-Date", v)
			}
		}
	}
	return ok
}

// chunkedRequest encodes data as an aws-chunked body. mode 0 is
// STREAMING-AWS4-HMAC-SHA256-PAYLOAD in chunks of chunk bytes, signed with
// aws-sdk-go-v2's stream signer; mode 1 is the -TRAILER form with a CRC32C
// trailer, made by minio-go (64 KiB chunks); mode 2 is
// STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC32 trailer, framed by
// minio-go. The request has been through the wire.
func chunkedRequest(data []byte, chunk, mode int) (*http.Request, *http.Request) {
	req := newFuzzRequest(http.MethodPut, "/bucket/chunked", nil, nil)
	switch mode {
	case 0:
		req.Header.Set("Content-Encoding", "aws-chunked")
		req.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(len(data)))
		req.ContentLength = int64(len(signedChunks(nil, data, chunk, "")))
		signHeader(req, StreamingPayload, "s3", fuzzRegion, fuzzNow)
		seed := req.Header.Get("Authorization")
		seed = seed[strings.LastIndex(seed, "=")+1:]
		body := signedChunks(nil, data, chunk, seed)
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	case 1:
		c := crc32.New(crc32.MakeTable(crc32.Castagnoli))
		c.Write(data)
		req.Body = io.NopCloser(bytes.NewReader(data))
		req.Trailer = http.Header{"X-Amz-Checksum-Crc32c": {base64.StdEncoding.EncodeToString(c.Sum(nil))}}
		req = signer.StreamingSignV4(req, fuzzCreds.AccessKeyID, fuzzCreds.SecretAccessKey, "", fuzzRegion, int64(len(data)), fuzzNow, sha256Hasher{sha256.New()})
	case 2:
		c := crc32.NewIEEE()
		c.Write(data)
		req.Body = io.NopCloser(bytes.NewReader(data))
		req.Trailer = http.Header{"X-Amz-Checksum-Crc32": {base64.StdEncoding.EncodeToString(c.Sum(nil))}}
		req.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
		req.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(len(data)))
		req = signer.StreamingUnsignedV4(req, "", int64(len(data)), fuzzNow)
		signHeader(req, StreamingUnsignedTrailer, "s3", fuzzRegion, fuzzNow)
	}
	client := req.Clone(context.Background())
	r, ok := wire(req)
	if !ok {
		panic("chunked request does not go through the wire")
	}
	return r, client
}

// signedChunks frames data in chunks of at most chunk bytes, each signed
// by aws-sdk-go-v2's stream signer from the seed signature (hex).
func signedChunks(dst, data []byte, chunk int, seed string) []byte {
	seedb, _ := hex.DecodeString(seed)
	ss := v4.NewStreamSigner(fuzzCreds, "s3", fuzzRegion, seedb)
	sign := func(p []byte) string {
		if seed == "" {
			return strings.Repeat("0", 64) // length only
		}
		sig, err := ss.GetSignature(context.Background(), nil, p, fuzzNow)
		if err != nil {
			panic(err)
		}
		return hex.EncodeToString(sig)
	}
	for len(data) > 0 {
		n := min(chunk, len(data))
		dst = fmt.Appendf(dst, "%x;chunk-signature=%s\r\n", n, sign(data[:n]))
		dst = append(append(dst, data[:n]...), "\r\n"...)
		data = data[n:]
	}
	return fmt.Appendf(dst, "0;chunk-signature=%s\r\n\r\n", sign(nil))
}

// sha256Hasher is the hasher minio-go's streaming signer takes.
type sha256Hasher struct{ hash.Hash }

func (sha256Hasher) Close() {}

// FuzzChunked encodes data with real signers in the three aws-chunked
// forms: decoding gives back exactly data; with one byte of the encoded
// body changed, decoding never panics, never yields more bytes than
// declared, and either fails or (for a change with no meaning, such as the
// case of a hex digit) still gives back exactly data.
func FuzzChunked(f *testing.F) {
	f.Add([]byte("hello, depot"), uint16(5), uint8(1), uint8(0), uint32(0), byte(0))
	f.Add([]byte("x"), uint16(1), uint8(3), uint8(1), uint32(7), byte('a'))
	f.Add([]byte("0123456789abcdef"), uint16(3), uint8(9), uint8(2), uint32(100), byte('\n'))
	f.Add([]byte{}, uint16(0), uint8(0), uint8(0), uint32(3), byte('f'))
	f.Fuzz(func(t *testing.T, seed []byte, chunk uint16, reps, mode uint8, pos uint32, nb byte) {
		data := bytes.Repeat(seed, 1+int(reps)%8)
		if len(data) > 256<<10 {
			return
		}
		r, _ := chunkedRequest(data, 1+int(chunk), int(mode)%3)
		a, err := Verify(r, fuzzSecret, fuzzNow)
		if err != nil {
			t.Fatalf("mode %d: seed signature refused: %v", mode%3, err)
		}
		declared, err := a.DecodedLength(r)
		if err != nil || declared != int64(len(data)) {
			t.Fatalf("decoded length %d, %v; want %d", declared, err, len(data))
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		decode := func(b []byte) ([]byte, error) {
			r.Body = io.NopCloser(bytes.NewReader(b))
			return io.ReadAll(a.Body(r))
		}
		got, err := decode(body)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("mode %d round trip: %d of %d bytes, %v", mode%3, len(got), len(data), err)
		}
		if len(body) == 0 {
			return
		}
		i := int(pos % uint32(len(body)))
		if body[i] == nb {
			return
		}
		body[i] = nb
		got, err = decode(body)
		if int64(len(got)) > declared {
			t.Fatalf("decoder gave %d bytes, %d declared", len(got), declared)
		}
		if err == nil && !bytes.Equal(got, data) {
			t.Fatalf("mode %d: byte %d changed to %q: decoded other bytes without an error", mode%3, i, nb)
		}
		if err != nil && !sentinel(err) {
			t.Fatalf("decoder error %v wraps none of the package's errors", err)
		}
	})
}

// FuzzUnsignedChunks decodes arbitrary STREAMING-UNSIGNED-PAYLOAD-TRAILER
// bodies, with and without a checksum trailer: no panic, never more bytes
// than declared, errors from the package's list.
func FuzzUnsignedChunks(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"), int64(5), true)
	f.Add([]byte("3\r\nabc\r\n0\r\n\r\n"), int64(3), false)
	f.Add([]byte("ffffffffffffff\r\nabc"), int64(3), false)
	f.Add([]byte("4\r\nabcdefgh\r\n0\r\n\r\n"), int64(4), false)
	f.Add([]byte("2;x=y\r\nab\r\n1\r\nc\r\n0\r\n\r\n"), int64(3), false)
	f.Fuzz(func(t *testing.T, body []byte, declared int64, trailer bool) {
		r := newFuzzRequest(http.MethodPut, "/b/k", nil, body)
		r.Body = io.NopCloser(bytes.NewReader(body)) // as a server request's, never nil
		r.Header.Set("X-Amz-Decoded-Content-Length", strconv.FormatInt(declared, 10))
		if trailer {
			r.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
		}
		a := &Auth{PayloadHash: StreamingUnsignedTrailer}
		want, err := a.DecodedLength(r)
		if err != nil {
			return
		}
		got, err := io.ReadAll(a.Body(r))
		if int64(len(got)) > want {
			t.Fatalf("decoder gave %d bytes, %d declared", len(got), want)
		}
		if err != nil && !sentinel(err) {
			t.Fatalf("decoder error %v wraps none of the package's errors", err)
		}
		if err == nil && int64(len(got)) != want {
			t.Fatalf("decoder gave %d bytes without an error, %d declared", len(got), want)
		}
	})
}
