package s3

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"depot"
	"depot/client"
	"depot/gateway/s3/sse"
	"depot/nameserver/nsclient"
)

// Server-side encryption: the S3 headers and bucket settings on top of
// package sse, which owns the format.

const (
	hdrSSE         = "X-Amz-Server-Side-Encryption"
	hdrSSECAlgo    = "X-Amz-Server-Side-Encryption-Customer-Algorithm"
	hdrSSECKeyMD5  = "X-Amz-Server-Side-Encryption-Customer-Key-Md5"
	objectPrefix   = "X-Amz-"             // the SSE-C headers of the object written or read
	copySrcPrefix  = "X-Amz-Copy-Source-" // the SSE-C headers of a copy source
	sseCAlgo       = "Server-Side-Encryption-Customer-Algorithm"
	sseCKey        = "Server-Side-Encryption-Customer-Key"
	sseCKeyMD5     = "Server-Side-Encryption-Customer-Key-Md5"
	sseAES256      = "AES256"
	msgSSECMissing = "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."
	msgSSENotApply = "The encryption parameters are not applicable to this object."
)

// sseParams is the encryption a request names in its headers.
type sseParams struct {
	s3       bool             // x-amz-server-side-encryption: AES256
	customer *sse.CustomerKey // SSE-C key, nil when absent
	keyMD5   string           // base64 MD5 of the SSE-C key, as sent
}

// parseSSE reads the SSE headers of a request: with objectPrefix the
// object's own, with copySrcPrefix the copy source's SSE-C key.
func (s *Server) parseSSE(r *http.Request, prefix string) (sseParams, error) {
	h := r.Header
	var p sseParams
	if prefix == objectPrefix {
		switch v := h.Get(hdrSSE); v {
		case "":
		case sseAES256:
			p.s3 = true
		case "aws:kms", "aws:kms:dsse":
			return p, s3err("NotImplemented", http.StatusNotImplemented, "Server-side encryption with KMS keys (%s) is not implemented: use AES256 or SSE-C", v)
		default:
			return p, errInvalidArgument("The encryption method specified is not supported: %q", v)
		}
	}
	algo, key, keyMD5 := h.Get(prefix+sseCAlgo), h.Get(prefix+sseCKey), h.Get(prefix+sseCKeyMD5)
	if algo == "" && key == "" && keyMD5 == "" {
		return p, nil
	}
	if p.s3 {
		return p, errInvalidArgument("Server Side Encryption with Customer provided key is incompatible with the encryption method specified")
	}
	if algo == "" {
		return p, errInvalidArgument("Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.")
	}
	if algo != sseAES256 {
		return p, s3err("InvalidEncryptionAlgorithmError", http.StatusBadRequest, "The encryption algorithm specified is not valid: %q", algo)
	}
	if r.TLS == nil && !strings.EqualFold(h.Get("X-Forwarded-Proto"), "https") && !s.cfg.SSECOverHTTP {
		return p, s3err("InvalidRequest", http.StatusBadRequest, "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.")
	}
	if key == "" {
		return p, errInvalidArgument("Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key.")
	}
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != sse.KeySize {
		return p, errInvalidArgument("The secret key was invalid for the specified algorithm.")
	}
	if keyMD5 == "" {
		return p, errInvalidArgument("Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key.")
	}
	sum := md5.Sum(raw)
	if base64.StdEncoding.EncodeToString(sum[:]) != keyMD5 {
		return p, errInvalidArgument("The calculated MD5 hash of the key did not match the hash that was provided.")
	}
	p.customer, err = sse.NewCustomerKey(raw)
	if err != nil {
		return p, errInvalidArgument("The secret key was invalid for the specified algorithm.")
	}
	p.keyMD5 = keyMD5
	return p, nil
}

// writeEnc is how new bytes are to be stored: plain when kek is nil.
type writeEnc struct {
	kek      sse.KEK
	keyCheck string // SSE-C
	keyMD5   string // SSE-C, to echo
}

func (w writeEnc) mode() string {
	if w.kek == nil {
		return ""
	}
	return w.kek.Mode()
}

// record returns the object's encryption record without streams, or nil.
func (w writeEnc) record() *depot.Encryption {
	if w.kek == nil {
		return nil
	}
	return &depot.Encryption{Mode: w.kek.Mode(), KeyCheck: w.keyCheck}
}

// writeEncryption decides how a new object (PUT, copy, multipart upload)
// in q.bucket is stored: as its headers ask, else as the bucket's default
// encryption asks, else plain.
func (s *Server) writeEncryption(q *request) (writeEnc, error) {
	p, err := s.parseSSE(q.r, objectPrefix)
	if err != nil {
		return writeEnc{}, err
	}
	if p.customer != nil {
		check, err := p.customer.KeyCheck()
		if err != nil {
			return writeEnc{}, err
		}
		return writeEnc{kek: p.customer, keyCheck: check, keyMD5: p.keyMD5}, nil
	}
	if !p.s3 {
		// From the bucket cache: a default set through another gateway
		// applies here within Config.KeyCacheTTL.
		b, err := s.bucketInfo(q.ctx, q, q.bucket)
		if err != nil {
			return writeEnc{}, err
		}
		if !b.exists {
			return writeEnc{}, errNoSuchBucket(q.bucket)
		}
		p.s3 = b.encryption == sseAES256
	}
	if !p.s3 {
		return writeEnc{}, nil
	}
	if s.cfg.Keyring == nil {
		return writeEnc{}, errNoKeyring()
	}
	return writeEnc{kek: s.cfg.Keyring}, nil
}

func errNoKeyring() *Error {
	return s3err("NotImplemented", http.StatusNotImplemented, "Server-side encryption with AES256 is not configured on this gateway: it has no master key")
}

// partEncryption is how the parts of upload u are stored; UploadPart with
// SSE-C must present the upload's key.
func (s *Server) partEncryption(q *request, u nsclient.Upload) (writeEnc, error) {
	p, err := s.parseSSE(q.r, objectPrefix)
	if err != nil {
		return writeEnc{}, err
	}
	e := u.Encryption
	switch {
	case e == nil:
		if p.customer != nil {
			return writeEnc{}, s3err("InvalidRequest", http.StatusBadRequest, "The multipart upload was not initiated with Server Side Encryption with Customer provided keys.")
		}
		return writeEnc{}, nil
	case e.Mode == depot.EncryptionC:
		if p.customer == nil {
			return writeEnc{}, s3err("InvalidRequest", http.StatusBadRequest, "The multipart upload initiate requested encryption. Subsequent part requests must include the appropriate encryption parameters.")
		}
		if !p.customer.Matches(e.KeyCheck) {
			return writeEnc{}, s3err("AccessDenied", http.StatusForbidden, "The provided customer key does not match the key of the multipart upload.")
		}
		return writeEnc{kek: p.customer, keyCheck: e.KeyCheck, keyMD5: p.keyMD5}, nil
	default:
		if p.customer != nil {
			return writeEnc{}, s3err("InvalidRequest", http.StatusBadRequest, "The multipart upload was not initiated with Server Side Encryption with Customer provided keys.")
		}
		if s.cfg.Keyring == nil {
			return writeEnc{}, errNoKeyring()
		}
		return writeEnc{kek: s.cfg.Keyring}, nil
	}
}

// readKEK returns what opens o's bytes: nil for a plain object, the
// keyring for SSE-S3, the request's key for SSE-C (headers with prefix
// objectPrefix or copySrcPrefix). A missing SSE-C key is 400
// InvalidRequest, a wrong one 403 AccessDenied, as in S3.
func (s *Server) readKEK(q *request, prefix string, o depot.Object) (sse.KEK, sseParams, error) {
	p, err := s.parseSSE(q.r, prefix)
	if err != nil {
		return nil, p, err
	}
	e := o.Encryption
	switch {
	case e == nil:
		if p.customer != nil {
			return nil, p, s3err("InvalidRequest", http.StatusBadRequest, msgSSENotApply)
		}
		return nil, p, nil
	case e.Mode == depot.EncryptionC:
		if p.customer == nil {
			return nil, p, s3err("InvalidRequest", http.StatusBadRequest, msgSSECMissing)
		}
		if !p.customer.Matches(e.KeyCheck) {
			return nil, p, s3err("AccessDenied", http.StatusForbidden, "Access Denied: the provided customer key does not match the object's")
		}
		return p.customer, p, nil
	case e.Mode == depot.EncryptionS3:
		if p.customer != nil {
			return nil, p, s3err("InvalidRequest", http.StatusBadRequest, msgSSENotApply)
		}
		if s.cfg.Keyring == nil {
			return nil, p, fmt.Errorf("object %s/%s is encrypted with SSE-S3 and this gateway has no master key", o.Bucket, o.Key)
		}
		return s.cfg.Keyring, p, nil
	}
	return nil, p, fmt.Errorf("object %s/%s: unknown encryption mode %q: %w", o.Bucket, o.Key, e.Mode, depot.ErrCorrupt)
}

// writeSSEHeaders sets the response headers S3 returns for an object stored
// with encryption mode (depot.EncryptionS3, depot.EncryptionC or "").
func writeSSEHeaders(h http.Header, mode, keyMD5 string) {
	switch mode {
	case depot.EncryptionS3:
		h.Set(hdrSSE, sseAES256)
	case depot.EncryptionC:
		h.Set(hdrSSECAlgo, sseAES256)
		if keyMD5 != "" {
			h.Set(hdrSSECKeyMD5, keyMD5)
		}
	}
}

func encMode(e *depot.Encryption) string {
	if e == nil {
		return ""
	}
	return e.Mode
}

// open returns the bytes [off, off+n) of o, decrypted by kek when o is
// encrypted.
func (s *Server) open(q *request, o depot.Object, kek sse.KEK, off, n int64) (io.ReadCloser, error) {
	if o.Encryption == nil {
		return s.cl.Get(q.ctx, o.Segments, off, n)
	}
	if kek == nil {
		return nil, fmt.Errorf("object %s/%s is encrypted: no key to open it", o.Bucket, o.Key)
	}
	return sse.NewReader(kek, o.Encryption.Streams, off, n, func(off, n int64) (io.ReadCloser, error) {
		return s.cl.Get(q.ctx, o.Segments, off, n)
	})
}

// stored is a body stored as segments.
type stored struct {
	*client.Stored
	md5    []byte        // MD5 of the plaintext
	mode   string        // encryption mode, "" for plain
	stream *depot.Stream // set when encrypted
	// checksum is the x-amz-checksum-* the client sent with the body
	// and the body matched (name, base64 value); empty when none
	checksum [2]string
}

// etag returns the ETag of the stored bytes: the hex MD5 of the plaintext,
// except under SSE-C, where S3 does not return the plaintext's MD5: there
// it is the hex MD5 of the stored (encrypted) bytes, which tells nothing
// of the plaintext and changes with every write.
func (st stored) etag() string {
	if st.mode == depot.EncryptionC {
		return st.Stored.ETag
	}
	return hex.EncodeToString(st.md5)
}

// put stores size bytes of r as segments, encrypted as enc says.
func (s *Server) put(q *request, r io.Reader, size int64, contentType string, enc writeEnc) (stored, error) {
	opts := client.PutOptions{ContentType: contentType, Pending: true}
	if enc.kek == nil {
		st, err := s.cl.Put(q.ctx, r, size, opts)
		if err != nil {
			return stored{}, err
		}
		sum, _ := hex.DecodeString(st.ETag)
		return stored{Stored: st, md5: sum}, nil
	}
	e, err := sse.NewEncrypter(enc.kek, r, size, s.cfg.SSEChunkSize)
	if err != nil {
		return stored{}, err
	}
	st, err := s.cl.Put(q.ctx, e, e.StoredSize(), opts)
	if err != nil {
		return stored{}, err
	}
	stream := e.Stream()
	return stored{Stored: st, md5: e.MD5(), mode: enc.kek.Mode(), stream: &stream}, nil
}

// ServerSideEncryptionConfiguration, as PutBucketEncryption sends and
// GetBucketEncryption answers.
type sseConfiguration struct {
	XMLName xml.Name  `xml:"ServerSideEncryptionConfiguration"`
	NS      string    `xml:"xmlns,attr,omitempty"`
	Rules   []sseRule `xml:"Rule"`
}

type sseRule struct {
	Default *struct {
		Algorithm   string `xml:"SSEAlgorithm"`
		KMSMasterID string `xml:"KMSMasterKeyID,omitempty"`
	} `xml:"ApplyServerSideEncryptionByDefault"`
	BucketKeyEnabled bool `xml:"BucketKeyEnabled"`
}

func (s *Server) putBucketEncryption(q *request) error {
	var c sseConfiguration
	if err := readXML(q, &c); err != nil {
		return err
	}
	if len(c.Rules) != 1 || c.Rules[0].Default == nil {
		return errMalformedXML(errors.New("want one Rule with ApplyServerSideEncryptionByDefault"))
	}
	switch a := c.Rules[0].Default.Algorithm; a {
	case sseAES256:
	case "aws:kms", "aws:kms:dsse":
		return s3err("NotImplemented", http.StatusNotImplemented, "Server-side encryption with KMS keys (%s) is not implemented: use AES256", a)
	default:
		return errMalformedXML(fmt.Errorf("unknown SSEAlgorithm %q", a))
	}
	if s.cfg.Keyring == nil {
		return errNoKeyring()
	}
	v := sseAES256
	return s.setBucket(q, nsclient.BucketSettings{Encryption: &v}, http.StatusOK)
}

func (s *Server) getBucketEncryption(q *request) error {
	b, err := q.ns.Bucket(q.ctx, q.bucket)
	if err != nil {
		return bucketErr(q, err)
	}
	if b.Encryption == "" {
		return s3err("ServerSideEncryptionConfigurationNotFoundError", http.StatusNotFound, "The server side encryption configuration was not found")
	}
	c := sseConfiguration{NS: s3NS, Rules: []sseRule{{}}}
	c.Rules[0].Default = &struct {
		Algorithm   string `xml:"SSEAlgorithm"`
		KMSMasterID string `xml:"KMSMasterKeyID,omitempty"`
	}{Algorithm: b.Encryption}
	s.writeXML(q, c)
	return nil
}
