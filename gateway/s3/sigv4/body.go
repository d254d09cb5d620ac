package sigv4

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/minio/crc64nvme"
)

// maxChunkLine bounds a chunk header or trailer line.
const maxChunkLine = 4096

// checksumHash returns the hash for an x-amz-checksum-* header name, or nil
// for an algorithm this package does not check.
func checksumHash(name string) hash.Hash {
	switch strings.ToLower(name) {
	case "x-amz-checksum-crc32":
		return crc32.NewIEEE()
	case "x-amz-checksum-crc32c":
		return crc32.New(crc32.MakeTable(crc32.Castagnoli))
	case "x-amz-checksum-sha1":
		return sha1.New()
	case "x-amz-checksum-sha256":
		return sha256.New()
	case "x-amz-checksum-crc64nvme":
		return crc64nvme.New()
	}
	return nil
}

// checksumHeaderName returns the name of a checksum header of h, if any.
func checksumHeaderName(h http.Header) (string, bool) {
	for name := range h {
		if checksumHash(name) != nil {
			return name, true
		}
	}
	return "", false
}

// Checksum returns the x-amz-checksum-* a body read from Body carried
// (header or trailer: lower-case name and base64 value) once it has been
// read to its end and verified; ok is false before that, or when the body
// carried none.
func Checksum(r io.Reader) (name, value string, ok bool) {
	switch b := r.(type) {
	case *checkReader:
		if b.verified != nil {
			return b.verified.name, b.verified.value, true
		}
	case *chunkReader:
		if b.verified != nil {
			return b.verified.name, b.verified.value, true
		}
	}
	return "", "", false
}

// verifiedSum is a checksum that matched the body.
type verifiedSum struct{ name, value string }

// DecodedLength returns the length of the object bytes in r's body: the
// x-amz-decoded-content-length of an aws-chunked body, else the
// Content-Length (-1 when unknown).
func (a *Auth) DecodedLength(r *http.Request) (int64, error) {
	if a != nil && a.Streaming() {
		s := r.Header.Get("X-Amz-Decoded-Content-Length")
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%w: x-amz-decoded-content-length %q", ErrChunk, s)
		}
		return n, nil
	}
	return r.ContentLength, nil
}

// Body returns a reader of the object bytes of r's body that fails, no later
// than at its end, when the body does not match what was signed: the
// x-amz-content-sha256 hash, every chunk signature, and any x-amz-checksum-*
// header or trailer. A nil a (an anonymous request) checks only checksum
// headers.
func (a *Auth) Body(r *http.Request) io.Reader {
	var body io.Reader = r.Body
	payload := ""
	if a != nil {
		payload = a.PayloadHash
	}
	switch payload {
	case StreamingPayload, StreamingPayloadTrailer, StreamingUnsignedTrailer:
		declared, err := a.DecodedLength(r)
		if err != nil {
			return errReader{err}
		}
		cr := &chunkReader{a: a, br: bufio.NewReaderSize(r.Body, 64<<10), signed: payload != StreamingUnsignedTrailer,
			trailer: payload != StreamingPayload, prevSig: a.signature, trailerName: r.Header.Get("X-Amz-Trailer"),
			sum: checksumHash(r.Header.Get("X-Amz-Trailer")), declared: declared}
		if cr.sum != nil {
			if name, ok := checksumHeaderName(r.Header); ok && !strings.EqualFold(name, cr.trailerName) {
				return errReader{fmt.Errorf("%w: %s beside the trailer %s", ErrChecksumHeader, name, cr.trailerName)}
			}
			return cr
		}
		body, payload = cr, "" // a checksum header, if any, is checked on the decoded bytes
	}
	var checks []check
	if len(payload) == 64 && payload != emptySHA256 || payload == emptySHA256 {
		if want, err := hex.DecodeString(payload); err == nil {
			checks = append(checks, check{h: sha256.New(), want: want, err: ErrContentSHA256})
		}
	}
	sums := 0
	for name, vs := range r.Header {
		h := checksumHash(name)
		if h == nil {
			continue
		}
		want, err := base64.StdEncoding.DecodeString(vs[0])
		if sums++; len(vs) != 1 || err != nil || len(want) != h.Size() || sums > 1 {
			return errReader{fmt.Errorf("%w: %s", ErrChecksumHeader, name)}
		}
		checks = append(checks, check{h: h, want: want, err: ErrChecksum, name: strings.ToLower(name), value: vs[0]})
	}
	if len(checks) == 0 {
		return body
	}
	return &checkReader{r: body, checks: checks}
}

// errReader fails every read with its error.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type check struct {
	h    hash.Hash
	want []byte
	err  error
	// name and value of an x-amz-checksum-* header ("" for the payload
	// hash)
	name, value string
}

type checkReader struct {
	r        io.Reader
	checks   []check
	verified *verifiedSum
}

func (c *checkReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for _, ch := range c.checks {
		ch.h.Write(p[:n])
	}
	if err == io.EOF {
		for _, ch := range c.checks {
			if !bytes.Equal(ch.h.Sum(nil), ch.want) {
				return n, ch.err
			}
		}
		for _, ch := range c.checks {
			if ch.name != "" {
				c.verified = &verifiedSum{ch.name, ch.value}
			}
		}
	}
	return n, err
}

// chunkReader decodes an aws-chunked body:
//
//	hex-size [";chunk-signature=" sig] CRLF data CRLF ... 0 [;chunk-signature=sig] CRLF
//	[trailer lines "name:value" CRLF ... ["x-amz-trailer-signature:" sig CRLF]] CRLF
type chunkReader struct {
	a           *Auth
	br          *bufio.Reader
	signed      bool
	trailer     bool
	trailerName string
	sum         hash.Hash // checksum named by x-amz-trailer, if checked

	prevSig  string
	declared int64 // x-amz-decoded-content-length
	total    int64 // bytes of all chunks so far
	left     int64 // bytes left in the current chunk
	chunkSig string
	chunk    hash.Hash
	done     bool
	err      error
	verified *verifiedSum
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for c.left == 0 {
		if c.done {
			return 0, io.EOF
		}
		if err := c.nextChunk(); err != nil {
			c.err = err
			return 0, err
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= int64(n)
	if c.chunk != nil {
		c.chunk.Write(p[:n])
	}
	if c.sum != nil {
		c.sum.Write(p[:n])
	}
	if err == io.EOF {
		err = fmt.Errorf("%w: body ended inside a chunk", ErrChunk)
	}
	if err != nil {
		c.err = err
		return n, err
	}
	if c.left == 0 {
		if err := c.endChunk(); err != nil {
			c.err = err
			return n, err
		}
	}
	return n, nil
}

func (c *chunkReader) line() (string, error) {
	var b []byte
	for {
		frag, err := c.br.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > maxChunkLine {
			return "", fmt.Errorf("%w: line too long", ErrChunk)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrChunk, err)
		}
		break
	}
	s, ok := strings.CutSuffix(string(b), "\r\n")
	if !ok {
		return "", fmt.Errorf("%w: line without CRLF", ErrChunk)
	}
	return s, nil
}

// trailerLine reads a trailer line, which may end in a bare LF (minio-go
// ends checksum trailer lines so).
func (c *chunkReader) trailerLine() (string, error) {
	b, err := c.br.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull {
			return "", fmt.Errorf("%w: line too long", ErrChunk)
		}
		return "", fmt.Errorf("%w: %v", ErrChunk, err)
	}
	if len(b) > maxChunkLine {
		return "", fmt.Errorf("%w: line too long", ErrChunk)
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

func (c *chunkReader) nextChunk() error {
	h, err := c.line()
	if err != nil {
		return err
	}
	sizeS, ext, _ := strings.Cut(h, ";")
	size, err := strconv.ParseInt(sizeS, 16, 64)
	if err != nil || size < 0 {
		return fmt.Errorf("%w: chunk size %q", ErrChunk, sizeS)
	}
	// Chunks may not add up to more than the declared length: a chunk
	// claiming gigabytes is refused before any of its bytes is read.
	if size > c.declared-c.total {
		return fmt.Errorf("%w: chunk of %d bytes after %d runs past the declared %d", ErrChunk, size, c.total, c.declared)
	}
	if size == 0 && c.total != c.declared {
		return fmt.Errorf("%w: chunks hold %d bytes, %d declared", ErrChunk, c.total, c.declared)
	}
	c.total += size
	c.chunkSig = ""
	if c.signed {
		sig, ok := strings.CutPrefix(ext, "chunk-signature=")
		if !ok || sig == "" {
			return fmt.Errorf("%w: chunk without signature", ErrChunk)
		}
		c.chunkSig = sig
		c.chunk = sha256.New()
	}
	c.left = size
	if size == 0 {
		return c.finish()
	}
	return nil
}

// endChunk checks the chunk's signature and reads its trailing CRLF.
func (c *chunkReader) endChunk() error {
	if err := c.verifyChunk(); err != nil {
		return err
	}
	crlf, err := c.line()
	if err != nil {
		return err
	}
	if crlf != "" {
		return fmt.Errorf("%w: data longer than its chunk size", ErrChunk)
	}
	return nil
}

func (c *chunkReader) verifyChunk() error {
	if !c.signed {
		return nil
	}
	sts := "AWS4-HMAC-SHA256-PAYLOAD\n" + c.a.amzDate + "\n" + c.a.scope + "\n" + c.prevSig + "\n" +
		emptySHA256 + "\n" + hex.EncodeToString(c.chunk.Sum(nil))
	want := hex.EncodeToString(hmacSHA256(c.a.signingKey, []byte(sts)))
	if subtle.ConstantTimeCompare([]byte(want), []byte(c.chunkSig)) != 1 {
		return fmt.Errorf("%w: chunk signature", ErrSignature)
	}
	c.prevSig = c.chunkSig
	return nil
}

// finish handles the final zero-size chunk, the trailer and the last CRLF.
func (c *chunkReader) finish() error {
	c.done = true
	if err := c.verifyChunk(); err != nil {
		return err
	}
	var trailers []string
	trailerSig, sumSeen := "", false
	for range 16 {
		l, err := c.trailerLine()
		if err != nil {
			return err
		}
		if l == "" {
			if c.signed && c.trailer && trailerSig == "" && len(trailers) > 0 {
				continue // minio-go puts an empty line before the trailer signature
			}
			break
		}
		name, val, ok := strings.Cut(l, ":")
		if !ok {
			return fmt.Errorf("%w: trailer line %q", ErrChunk, l)
		}
		name = strings.ToLower(strings.TrimSpace(name))
		val = strings.TrimSpace(val)
		if name == "x-amz-trailer-signature" {
			trailerSig = val
			continue
		}
		trailers = append(trailers, name+":"+val+"\n")
		if c.sum != nil && strings.EqualFold(name, c.trailerName) {
			want, err := base64.StdEncoding.DecodeString(val)
			if err != nil || !bytes.Equal(want, c.sum.Sum(nil)) {
				return fmt.Errorf("%w: %s", ErrChecksum, name)
			}
			sumSeen = true
			c.verified = &verifiedSum{name, val}
		}
	}
	if c.sum != nil && !sumSeen {
		return fmt.Errorf("%w: trailer %s declared but not sent", ErrChunk, c.trailerName)
	}
	if c.signed && c.trailer {
		sum := sha256.Sum256([]byte(strings.Join(trailers, "")))
		sts := "AWS4-HMAC-SHA256-TRAILER\n" + c.a.amzDate + "\n" + c.a.scope + "\n" + c.prevSig + "\n" + hex.EncodeToString(sum[:])
		if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(hmacSHA256(c.a.signingKey, []byte(sts)))), []byte(trailerSig)) != 1 {
			return fmt.Errorf("%w: trailer signature", ErrSignature)
		}
	}
	return nil
}
