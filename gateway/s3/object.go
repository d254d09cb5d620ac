package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"depot"
	"depot/gateway/s3/sigv4"
)

func (s *Server) objectOp(q *request) error {
	if !utf8.ValidString(q.key) {
		return errInvalidArgument("object keys must be UTF-8")
	}
	if v := q.r.URL.Query(); v.Has("versionId") && v.Get("versionId") == "" {
		return errInvalidArgument("Version id cannot be the empty string")
	}
	return s.dispatch(q)
}

// getMeta reads an object's metadata, telling a missing bucket from a
// missing key.
func (s *Server) getMeta(q *request, bucket, key string) (depot.Object, error) {
	o, err := q.ns.GetObject(q.ctx, bucket, key)
	if errors.Is(err, depot.ErrNotFound) {
		if _, berr := q.ns.Bucket(q.ctx, bucket); errors.Is(berr, depot.ErrNotFound) {
			return o, errNoSuchBucket(bucket)
		}
		return o, errNoSuchKey(key)
	}
	return o, err
}

// Object metadata kept in depot.Object.Meta: user metadata under its
// lower-case header name ("x-amz-meta-color"), and these headers under
// their lower-case names.
var storedHeaders = []string{"Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Expires",
	"X-Amz-Website-Redirect-Location"}

func metaFromHeaders(h http.Header, limit int) (map[string]string, error) {
	m := map[string]string{}
	size := 0
	for name, vs := range h {
		lname := strings.ToLower(name)
		if strings.HasPrefix(lname, "x-amz-meta-") {
			m[lname] = strings.Join(vs, ",")
			size += len(lname) + len(m[lname])
		}
	}
	if size > limit {
		return nil, s3err("MetadataTooLarge", http.StatusBadRequest, "Your metadata headers exceed the maximum allowed metadata size: %d bytes, at most %d.", size, limit)
	}
	for _, name := range storedHeaders {
		v := h.Get(name)
		if name == "Content-Encoding" {
			v = withoutAWSChunked(v)
		}
		if v != "" {
			m[strings.ToLower(name)] = v
		}
	}
	tags, err := tagsFromHeader(h)
	if err != nil {
		return nil, err
	}
	return setTags(m, tags), nil
}

// withoutAWSChunked drops "aws-chunked" from a Content-Encoding list: it
// names how the request body was framed (sigv4 streaming), not how the
// object is encoded, and S3 does not store it.
func withoutAWSChunked(v string) string {
	var keep []string
	for c := range strings.SplitSeq(v, ",") {
		if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "aws-chunked") {
			keep = append(keep, c)
		}
	}
	return strings.Join(keep, ",")
}

func writeObjectHeaders(h http.Header, o depot.Object) {
	ct := o.ContentType
	if ct == "" {
		ct = "binary/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("ETag", quote(o.ETag))
	h.Set("Last-Modified", o.Modified.UTC().Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	for k, v := range o.Meta {
		if strings.HasPrefix(k, "x-amz-meta-") {
			// Lower case, as AWS sends them: SDKs take the metadata key
			// from the header name as it comes.
			h[k] = []string{v}
		}
	}
	for _, name := range storedHeaders {
		if v, ok := o.Meta[strings.ToLower(name)]; ok {
			h.Set(name, v)
		}
	}
	if len(o.PartSizes) > 0 {
		h.Set("x-amz-mp-parts-count", strconv.Itoa(len(o.PartSizes)))
	}
	writeTagCount(h, o)
	writeLockHeaders(h, o)
}

// etagMatch reports whether an If-Match style header lists etag.
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		t = strings.TrimPrefix(t, "W/")
		if t == "*" || strings.Trim(t, `"`) == etag {
			return true
		}
	}
	return false
}

// conditions evaluates If-Match, If-Unmodified-Since, If-None-Match and
// If-Modified-Since (with names given by prefix, "" or "X-Amz-Copy-Source-")
// and returns 0, 304 or 412.
func conditions(h http.Header, prefix string, o depot.Object) int {
	mod := o.Modified.Truncate(time.Second)
	im, ius := h.Get(prefix+"If-Match"), h.Get(prefix+"If-Unmodified-Since")
	inm, ims := h.Get(prefix+"If-None-Match"), h.Get(prefix+"If-Modified-Since")
	notModified := http.StatusNotModified
	if prefix != "" {
		notModified = http.StatusPreconditionFailed
	}
	if im != "" {
		if !etagMatch(im, o.ETag) {
			return http.StatusPreconditionFailed
		}
	} else if ius != "" {
		if t, err := http.ParseTime(ius); err == nil && mod.After(t) {
			return http.StatusPreconditionFailed
		}
	}
	if inm != "" {
		if etagMatch(inm, o.ETag) {
			return notModified
		}
	} else if ims != "" {
		if t, err := http.ParseTime(ims); err == nil && !mod.After(t) {
			return notModified
		}
	}
	return 0
}

func errPrecondition() *Error {
	return s3err("PreconditionFailed", http.StatusPreconditionFailed, "At least one of the pre-conditions you specified did not hold")
}

// parseRange parses one "bytes=" range against size. ok is false when the
// header is absent or not a single well-formed range (then the whole object
// is served); err is InvalidRange when it cannot be satisfied.
func parseRange(h string, size int64) (off, n int64, ok bool, err error) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, nil
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, nil
	}
	invalid := s3err("InvalidRange", http.StatusRequestedRangeNotSatisfiable, "The requested range is not satisfiable")
	if a == "" {
		sfx, e := strconv.ParseInt(b, 10, 64)
		if e != nil || sfx < 0 {
			return 0, 0, false, nil
		}
		if sfx == 0 || size == 0 {
			return 0, 0, false, invalid
		}
		sfx = min(sfx, size)
		return size - sfx, sfx, true, nil
	}
	first, e := strconv.ParseInt(a, 10, 64)
	if e != nil || first < 0 {
		return 0, 0, false, nil
	}
	last := size - 1
	if b != "" {
		l, e := strconv.ParseInt(b, 10, 64)
		if e != nil || l < first {
			return 0, 0, false, nil
		}
		last = min(l, size-1)
	}
	if first >= size {
		return 0, 0, false, invalid
	}
	return first, last - first + 1, true, nil
}

func (s *Server) getObject(q *request, head bool) error {
	version, versioned := requestedVersion(q)
	o, err := s.objectVersion(q, q.bucket, q.key, version, versioned)
	if err != nil {
		return err
	}
	setVersionHeader(q, s.s3VersionOf(q, q.bucket, o))
	kek, sp, err := s.readKEK(q, objectPrefix, o)
	if err != nil {
		return err
	}
	h := q.w.Header()
	writeObjectHeaders(h, o)
	writeSSEHeaders(h, encMode(o.Encryption), sp.keyMD5)
	switch conditions(q.r.Header, "", o) {
	case http.StatusNotModified:
		h.Del("Content-Type")
		q.w.WriteHeader(http.StatusNotModified)
		return nil
	case http.StatusPreconditionFailed:
		return errPrecondition()
	}
	v := q.r.URL.Query()
	for _, name := range []string{"Content-Type", "Content-Language", "Expires", "Cache-Control", "Content-Disposition", "Content-Encoding"} {
		if rv := v.Get("response-" + strings.ToLower(name)); rv != "" {
			h.Set(name, rv)
		}
	}
	off, n, partial := int64(0), o.Size, false
	if pn := v.Get("partNumber"); pn != "" {
		num, err := strconv.Atoi(pn)
		if err != nil || num < 1 {
			return errInvalidArgument("Part number must be an integer between 1 and 10000")
		}
		sizes := o.PartSizes
		if len(sizes) == 0 {
			sizes = []int64{o.Size}
		}
		if num > len(sizes) {
			return s3err("InvalidPartNumber", http.StatusRequestedRangeNotSatisfiable, "The requested partnumber is not satisfiable")
		}
		for i := 0; i < num-1; i++ {
			off += sizes[i]
		}
		n, partial = sizes[num-1], true
	} else if rh := q.r.Header.Get("Range"); rh != "" {
		ro, rn, ok, err := parseRange(rh, o.Size)
		if err != nil {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", o.Size))
			return err
		}
		if ok {
			off, n, partial = ro, rn, true
		}
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	writeChecksum(q, o, !partial)
	status := http.StatusOK
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, o.Size))
		status = http.StatusPartialContent
	}
	if head || n == 0 {
		q.w.WriteHeader(status)
		return nil
	}
	rc, err := s.open(q, o, kek, off, n)
	if err != nil {
		return unreadable(err)
	}
	defer rc.Close()
	// Read the first bytes before the status goes out, so that a failed
	// read is still an S3 error. A small object is read whole and goes
	// out in one write.
	bp := firstBytes.Get().(*[]byte)
	defer firstBytes.Put(bp)
	buf := (*bp)[:min(n, int64(len(*bp)))]
	k, err := io.ReadFull(rc, buf)
	if err != nil && k < len(buf) {
		return unreadable(fmt.Errorf("read %s/%s: %w", q.bucket, q.key, err))
	}
	q.w.WriteHeader(status)
	q.w.Write(buf[:k])
	if _, err := io.Copy(q.w, rc); err != nil {
		s.cfg.Logger.Warn("s3 get: body cut", "bucket", q.bucket, "key", q.key, "err", err)
		// The body is shorter than its Content-Length: the server closes
		// the connection and the client sees a cut body.
	}
	return nil
}

// firstBytes holds the buffers that read an object's first bytes before
// the status goes out.
var firstBytes = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// unreadable is the error for the bytes of an object whose metadata was
// found: shards that cannot be found are not a missing key (NoSuchKey
// would tell the client the object is gone) but an object that cannot be
// read now.
func unreadable(err error) error {
	if errors.Is(err, depot.ErrNotFound) {
		return s3err("ServiceUnavailable", http.StatusServiceUnavailable, "The object's data cannot be read now: %v", err)
	}
	return err
}

// bodyReader counts the body and remembers why it failed: a body shorter
// than declared, or the error of the signature checks.
type bodyReader struct {
	r    io.Reader
	size int64
	n    int64
	err  error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	// A connection closed early ends the body with ErrUnexpectedEOF.
	if (err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)) && b.size >= 0 && b.n < b.size {
		err = fmt.Errorf("%w: %d of %d bytes", errIncomplete, b.n, b.size)
	}
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// storeBody stores the request body as segments, encrypted as enc says,
// checking its declared length, signature and Content-MD5. On failure
// nothing is kept.
func (s *Server) storeBody(q *request, enc writeEnc) (stored, error) {
	size, err := q.auth.DecodedLength(q.r)
	if err != nil {
		return stored{}, err
	}
	if size < 0 {
		return stored{}, s3err("MissingContentLength", http.StatusLengthRequired, "You must provide the Content-Length HTTP header.")
	}
	if size > s.cfg.MaxObjectSize {
		return stored{}, s3err("EntityTooLarge", http.StatusBadRequest, "Your proposed upload exceeds the maximum allowed object size.")
	}
	var wantMD5 []byte
	if cm := q.r.Header.Get("Content-Md5"); cm != "" {
		b, err := base64.StdEncoding.DecodeString(cm)
		if err != nil || len(b) != md5.Size {
			return stored{}, s3err("InvalidDigest", http.StatusBadRequest, "The Content-MD5 you specified is not valid.")
		}
		wantMD5 = b
	}
	body := q.auth.Body(q.r)
	br := &bodyReader{r: body, size: size}
	st, err := s.put(q, br, size, q.r.Header.Get("Content-Type"), enc)
	if err != nil {
		if br.err != nil {
			return stored{}, br.err
		}
		if errors.Is(err, depot.ErrBadRequest) {
			return stored{}, fmt.Errorf("%w: %v", errIncomplete, err)
		}
		return stored{}, err
	}
	if wantMD5 != nil {
		if !bytes.Equal(st.md5, wantMD5) {
			s.discard(st.Segments)
			return stored{}, s3err("BadDigest", http.StatusBadRequest, "The Content-MD5 you specified did not match what we received.")
		}
	}
	if name, value, ok := sigv4.Checksum(body); ok {
		st.checksum = [2]string{name, value}
	}
	return st, nil
}

// discard deletes segments that were stored but not committed.
func (s *Server) discard(segs []depot.Segment) {
	if len(segs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.cl.Delete(ctx, segs); err != nil {
		s.cfg.Logger.Warn("s3: discard uncommitted segments", "err", err)
	}
}

func (s *Server) putObject(q *request) error {
	meta, err := metaFromHeaders(q.r.Header, s.cfg.MaxMetadataSize)
	if err != nil {
		return err
	}
	cond, err := writeCondition(q.r.Header)
	if err != nil {
		return err
	}
	lock, err := s.lockFromHeaders(q)
	if err != nil {
		return err
	}
	enc, err := s.writeEncryption(q)
	if err != nil {
		return err
	}
	st, err := s.storeBody(q, enc)
	if err != nil {
		return err
	}
	size := st.Size
	if st.stream != nil {
		size = st.stream.Size
	}
	o := depot.Object{Bucket: q.bucket, Key: q.key, Size: size, ETag: st.etag(), ContentType: q.r.Header.Get("Content-Type"),
		Meta: setChecksum(meta, st.checksum), Segments: st.Segments, Encryption: enc.record(), Precondition: cond, Lock: lock}
	if o.Encryption != nil {
		o.Encryption.Streams = []depot.Stream{*st.stream}
	}
	if err := s.commit(q, o); err != nil {
		return err
	}
	q.w.Header().Set("ETag", quote(o.ETag))
	if st.checksum[0] != "" {
		q.w.Header().Set(st.checksum[0], st.checksum[1])
		q.w.Header().Set("x-amz-checksum-type", "FULL_OBJECT")
	}
	writeSSEHeaders(q.w.Header(), enc.mode(), enc.keyMD5)
	q.w.WriteHeader(http.StatusOK)
	return nil
}

// copySource parses x-amz-copy-source: "[/]bucket/key[?versionId=...]",
// URL-encoded.
func copySource(h string) (src copySrc, err error) {
	path, version, versioned := strings.Cut(h, "?versionId=")
	dec, uerr := url.PathUnescape(path)
	if uerr != nil {
		return src, errInvalidArgument("Invalid copy source encoding")
	}
	dec = strings.TrimPrefix(dec, "/")
	bucket, key, ok := strings.Cut(dec, "/")
	if !ok || bucket == "" || key == "" {
		return src, errInvalidArgument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
	}
	return copySrc{bucket: bucket, key: key, version: version, versioned: versioned}, nil
}

// copySrc is the object x-amz-copy-source names.
type copySrc struct {
	bucket, key string
	version     string
	versioned   bool // a versionId was given
}

// copySource reads the object a copy names, authorised as a read of it,
// and sets x-amz-copy-source-version-id. A delete marker cannot be copied.
func (s *Server) copySourceObject(q *request, c copySrc) (depot.Object, error) {
	action := actGetObject
	if c.versioned {
		action = "s3:GetObjectVersion"
		if c.version == "" {
			return depot.Object{}, errInvalidArgument("Version id cannot be the empty string")
		}
	}
	if err := s.authorize(q, action, c.bucket, c.key); err != nil {
		return depot.Object{}, err
	}
	if !c.versioned {
		o, err := s.getMeta(q, c.bucket, c.key)
		if err == nil {
			if v := s.s3VersionOf(q, c.bucket, o); v != "" {
				q.w.Header().Set("x-amz-copy-source-version-id", v)
			}
		}
		return o, err
	}
	o, err := q.ns.GetObjectVersion(q.ctx, c.bucket, c.key, c.version)
	switch {
	case errors.Is(err, depot.ErrNotFound):
		if _, berr := q.ns.Bucket(q.ctx, c.bucket); errors.Is(berr, depot.ErrNotFound) {
			return o, errNoSuchBucket(c.bucket)
		}
		return o, errNoSuchVersion()
	case err != nil:
		return o, err
	case o.DeleteMarker:
		return o, s3err("InvalidRequest", http.StatusBadRequest, "The source of a copy request may not specifically refer to a delete marker by version id.")
	}
	q.w.Header().Set("x-amz-copy-source-version-id", c.version)
	return o, nil
}

type copyResult struct {
	XMLName      xml.Name
	NS           string `xml:"xmlns,attr"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
}

func (s *Server) copyObject(q *request) error {
	cs, err := copySource(q.r.Header.Get("X-Amz-Copy-Source"))
	if err != nil {
		return err
	}
	src, err := s.copySourceObject(q, cs)
	if err != nil {
		return err
	}
	sb, sk := cs.bucket, cs.key
	srcKEK, _, err := s.readKEK(q, copySrcPrefix, src)
	if err != nil {
		return err
	}
	if conditions(q.r.Header, "X-Amz-Copy-Source-", src) != 0 {
		return errPrecondition()
	}
	cond, err := writeCondition(q.r.Header)
	if err != nil {
		return err
	}
	enc, err := s.writeEncryption(q)
	if err != nil {
		return err
	}
	lock, err := s.lockFromHeaders(q)
	if err != nil {
		return err
	}
	o := depot.Object{Lock: lock, Bucket: q.bucket, Key: q.key, Size: src.Size, ETag: src.ETag, ContentType: src.ContentType,
		Meta: maps.Clone(src.Meta), PartSizes: src.PartSizes, Encryption: enc.record(), Precondition: cond}
	switch d := q.r.Header.Get("X-Amz-Metadata-Directive"); d {
	case "", "COPY":
		if sb == q.bucket && sk == q.key && !cs.versioned && !sseRequested(q.r.Header) {
			return s3err("InvalidRequest", http.StatusBadRequest, "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
		}
	case "REPLACE":
		meta, err := metaFromHeaders(q.r.Header, s.cfg.MaxMetadataSize)
		if err != nil {
			return err
		}
		o.Meta, o.ContentType = meta, q.r.Header.Get("Content-Type")
		if name, value := objectChecksum(src); name != "" {
			o.Meta[name] = value // the same bytes, the same checksum
		}
	default:
		return errInvalidArgument("Unknown metadata directive %q", d)
	}
	switch d := q.r.Header.Get("X-Amz-Tagging-Directive"); d {
	case "", "COPY":
		o.Meta = setTags(o.Meta, src.Meta[metaTagging])
	case "REPLACE":
		tags, err := tagsFromHeader(q.r.Header)
		if err != nil {
			return err
		}
		o.Meta = setTags(o.Meta, tags)
	default:
		return errInvalidArgument("Unknown tagging directive %q", d)
	}
	// Bytes are copied, never shared: each object owns its segments, which
	// the nameserver deletes with it.
	// Encrypted bytes are opened and sealed again under new data keys.
	rc, err := s.open(q, src, srcKEK, 0, src.Size)
	if err != nil {
		return unreadable(err)
	}
	defer rc.Close()
	st, err := s.put(q, rc, src.Size, o.ContentType, enc)
	if err != nil {
		return unreadable(err)
	}
	o.Segments = st.Segments
	if o.Encryption != nil {
		o.Encryption.Streams = []depot.Stream{*st.stream}
	}
	// A multipart object's copy keeps its parts and ETag, unless SSE-C
	// is involved: its ETags are no MD5 of the plaintext.
	if len(o.PartSizes) == 0 || encMode(src.Encryption) == depot.EncryptionC || enc.mode() == depot.EncryptionC {
		o.ETag = st.etag()
	}
	if err := s.commit(q, o); err != nil {
		return err
	}
	writeSSEHeaders(q.w.Header(), enc.mode(), enc.keyMD5)
	s.writeXML(q, copyResult{XMLName: xml.Name{Local: "CopyObjectResult"}, NS: s3NS, LastModified: isoTime(s.cfg.Now()), ETag: quote(o.ETag)})
	return nil
}

// sseRequested reports whether a request names an encryption for what it
// writes, which makes a copy of an object onto itself legal.
func sseRequested(h http.Header) bool {
	return h.Get(hdrSSE) != "" || h.Get(hdrSSECAlgo) != ""
}

// deleteObject deletes a key (a delete marker in a versioned bucket) or,
// with ?versionId, one version. Deleting what is not there succeeds, as
// on S3.
func (s *Server) deleteObject(q *request) error {
	var version *string
	if v, ok := requestedVersion(q); ok {
		version = &v
	}
	bypass, err := s.bypassGovernance(q, q.key)
	if err != nil {
		return err
	}
	res, err := q.ns.DeleteVersion(q.ctx, q.bucket, q.key, version, bypass)
	if err != nil {
		if !errors.Is(err, depot.ErrNotFound) {
			return err
		}
		if _, berr := q.ns.Bucket(q.ctx, q.bucket); errors.Is(berr, depot.ErrNotFound) {
			return errNoSuchBucket(q.bucket)
		}
	}
	setVersionHeader(q, res.VersionID)
	if res.DeleteMarker {
		q.w.Header().Set("x-amz-delete-marker", "true")
	}
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}

type deleteRequest struct {
	Quiet   bool `xml:"Quiet"`
	Objects []struct {
		Key       string `xml:"Key"`
		VersionID string `xml:"VersionId"`
	} `xml:"Object"`
}

// validate checks a Delete document: 1 to 1000 objects.
func (r deleteRequest) validate() error {
	if len(r.Objects) == 0 || len(r.Objects) > 1000 {
		return errMalformedXML(fmt.Errorf("want 1 to 1000 objects, got %d", len(r.Objects)))
	}
	return nil
}

type deleteResult struct {
	XMLName xml.Name      `xml:"DeleteResult"`
	NS      string        `xml:"xmlns,attr"`
	Deleted []deleted     `xml:"Deleted"`
	Errors  []deleteError `xml:"Error"`
}

type deleted struct {
	Key                   string `xml:"Key"`
	VersionID             string `xml:"VersionId,omitempty"`
	DeleteMarker          bool   `xml:"DeleteMarker,omitempty"`
	DeleteMarkerVersionID string `xml:"DeleteMarkerVersionId,omitempty"`
}

type deleteError struct {
	Key       string `xml:"Key"`
	VersionID string `xml:"VersionId,omitempty"`
	Code      string `xml:"Code"`
	Message   string `xml:"Message"`
}

func (s *Server) deleteObjects(q *request) error {
	var req deleteRequest
	if err := readXML(q, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	if _, err := q.ns.Bucket(q.ctx, q.bucket); err != nil {
		return bucketErr(q, err)
	}
	res := deleteResult{NS: s3NS}
	for _, o := range req.Objects {
		action := actDeleteObject
		if o.VersionID != "" {
			action = "s3:DeleteObjectVersion"
		}
		ok, err := s.allowed(q, action, q.bucket, o.Key)
		if err != nil {
			return err
		}
		if !ok {
			e := errAccessDenied()
			res.Errors = append(res.Errors, deleteError{Key: o.Key, Code: e.Code, Message: e.Message})
			continue
		}
		var version *string
		if o.VersionID != "" {
			version = &o.VersionID
		}
		bypass, err := s.bypassGovernance(q, o.Key)
		if err != nil {
			return err
		}
		dr, err := q.ns.DeleteVersion(q.ctx, q.bucket, o.Key, version, bypass)
		if err != nil && !errors.Is(err, depot.ErrNotFound) {
			e := toS3(err)
			res.Errors = append(res.Errors, deleteError{Key: o.Key, VersionID: o.VersionID, Code: e.Code, Message: e.Message})
			continue
		}
		if !req.Quiet {
			d := deleted{Key: o.Key, VersionID: o.VersionID, DeleteMarker: dr.DeleteMarker}
			if dr.DeleteMarker && version == nil {
				d.DeleteMarkerVersionID = dr.VersionID
			}
			res.Deleted = append(res.Deleted, d)
		}
	}
	s.writeXML(q, res)
	return nil
}
