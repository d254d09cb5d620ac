package s3

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"depot"
	"depot/nameserver/nsclient"
)

func newUploadID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type initiateResult struct {
	XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
	NS       string   `xml:"xmlns,attr"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	UploadID string   `xml:"UploadId"`
}

func (s *Server) createUpload(q *request) error {
	meta, err := metaFromHeaders(q.r.Header, s.cfg.MaxMetadataSize)
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
	id := newUploadID()
	u, err := q.ns.CreateUpload(q.ctx, nsclient.Upload{Bucket: q.bucket, Key: q.key, ID: id,
		ContentType: q.r.Header.Get("Content-Type"), Meta: meta, Encryption: enc.record(), Lock: lock})
	if errors.Is(err, depot.ErrExists) {
		// The id is new and random: it exists only because the nameserver
		// client retried this very call after its first try applied.
		if info, uerr := q.ns.Upload(q.ctx, q.bucket, q.key, id); uerr == nil {
			u, err = info.Upload, nil
		}
	}
	if err != nil {
		return bucketErr(q, err)
	}
	writeSSEHeaders(q.w.Header(), enc.mode(), enc.keyMD5)
	s.writeXML(q, initiateResult{NS: s3NS, Bucket: q.bucket, Key: q.key, UploadID: u.ID})
	return nil
}

// upload returns the upload named by the request's uploadId.
func (s *Server) upload(q *request) (nsclient.UploadInfo, error) {
	id := q.r.URL.Query().Get("uploadId")
	info, err := q.ns.Upload(q.ctx, q.bucket, q.key, id)
	if errors.Is(err, depot.ErrNotFound) {
		if _, berr := q.ns.Bucket(q.ctx, q.bucket); errors.Is(berr, depot.ErrNotFound) {
			return info, errNoSuchBucket(q.bucket)
		}
		return info, errNoSuchUpload(id)
	}
	return info, err
}

func (s *Server) uploadPart(q *request) error {
	v := q.r.URL.Query()
	num, err := strconv.Atoi(v.Get("partNumber"))
	if err != nil || num < 1 || num > s.cfg.MaxParts {
		return errInvalidArgument("Part number must be an integer between 1 and %d, inclusive", s.cfg.MaxParts)
	}
	if !v.Has("uploadId") {
		return errInvalidArgument("uploadId is required with partNumber")
	}
	info, err := s.upload(q)
	if err != nil {
		return err
	}
	enc, err := s.partEncryption(q, info.Upload)
	if err != nil {
		return err
	}
	var st stored
	copying := q.r.Header.Get("X-Amz-Copy-Source") != ""
	if copying {
		st, err = s.copyPart(q, enc)
	} else {
		st, err = s.storeBody(q, enc)
	}
	if err != nil {
		return err
	}
	p := nsclient.Part{Number: num, ETag: st.etag(), Size: st.Size, Segments: st.Segments, Stream: st.stream}
	if st.stream != nil {
		p.Size = st.stream.Size
	}
	writeSSEHeaders(q.w.Header(), enc.mode(), enc.keyMD5)
	ctx, cancel := s.commitContext(q)
	_, err = q.ns.PutPart(ctx, q.bucket, q.key, info.Upload.ID, p)
	cancel()
	if err != nil {
		err = s.settle(q, "put part", st.Segments, err, partHolds(q.ns, q.bucket, q.key, info.Upload.ID, p))
		if errors.Is(err, depot.ErrNotFound) {
			return errNoSuchUpload(info.Upload.ID)
		}
		if err != nil {
			return err
		}
	}
	if copying {
		s.writeXML(q, copyResult{XMLName: xml.Name{Local: "CopyPartResult"}, NS: s3NS, LastModified: isoTime(s.cfg.Now()), ETag: quote(p.ETag)})
		return nil
	}
	q.w.Header().Set("ETag", quote(p.ETag))
	for name := range q.r.Header {
		if strings.HasPrefix(strings.ToLower(name), "x-amz-checksum-") {
			q.w.Header().Set(name, q.r.Header.Get(name))
		}
	}
	q.w.WriteHeader(http.StatusOK)
	return nil
}

// copyPart stores a byte range of another object as a part (UploadPartCopy),
// encrypted as enc says.
func (s *Server) copyPart(q *request, enc writeEnc) (stored, error) {
	cs, err := copySource(q.r.Header.Get("X-Amz-Copy-Source"))
	if err != nil {
		return stored{}, err
	}
	src, err := s.copySourceObject(q, cs)
	if err != nil {
		return stored{}, err
	}
	srcKEK, _, err := s.readKEK(q, copySrcPrefix, src)
	if err != nil {
		return stored{}, err
	}
	if conditions(q.r.Header, "X-Amz-Copy-Source-", src) != 0 {
		return stored{}, errPrecondition()
	}
	off, n := int64(0), src.Size
	if rh := q.r.Header.Get("X-Amz-Copy-Source-Range"); rh != "" {
		var a, b int64
		if _, err := fmt.Sscanf(rh, "bytes=%d-%d", &a, &b); err != nil || a < 0 || b < a {
			return stored{}, errInvalidArgument("The x-amz-copy-source-range value must be of the form bytes=first-last")
		}
		if b >= src.Size {
			return stored{}, s3err("InvalidRange", http.StatusRequestedRangeNotSatisfiable, "The requested range is not satisfiable")
		}
		off, n = a, b-a+1
	}
	rc, err := s.open(q, src, srcKEK, off, n)
	if err != nil {
		return stored{}, unreadable(err)
	}
	defer rc.Close()
	st, err := s.put(q, rc, n, "", enc)
	return st, unreadable(err)
}

type completeRequest struct {
	Parts []struct {
		PartNumber int    `xml:"PartNumber"`
		ETag       string `xml:"ETag"`
	} `xml:"Part"`
}

// validate checks a CompleteMultipartUpload list on its own: 1 to
// maxParts parts with valid numbers in ascending order.
func (r completeRequest) validate(maxParts int) error {
	if len(r.Parts) == 0 || len(r.Parts) > maxParts {
		return errMalformedXML(fmt.Errorf("want 1 to %d parts, got %d", maxParts, len(r.Parts)))
	}
	for i, rp := range r.Parts {
		if rp.PartNumber < 1 || rp.PartNumber > maxParts {
			return errInvalidArgument("Part number must be an integer between 1 and %d, inclusive", maxParts)
		}
		if i > 0 && rp.PartNumber <= r.Parts[i-1].PartNumber {
			return s3err("InvalidPartOrder", http.StatusBadRequest, "The list of parts was not in ascending order. The parts list must be specified in order by part number.")
		}
	}
	return nil
}

type completeResult struct {
	XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
	NS       string   `xml:"xmlns,attr"`
	Location string   `xml:"Location"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	ETag     string   `xml:"ETag"`
}

// partHolds returns a read-back for settle: whether the upload now records
// part p with p's segments.
func partHolds(ns *nsclient.Client, bucket, key, id string, p nsclient.Part) func(context.Context) (bool, error) {
	if len(p.Segments) == 0 {
		return nil
	}
	return func(ctx context.Context) (bool, error) {
		info, err := ns.Upload(ctx, bucket, key, id)
		if err != nil {
			return false, err
		}
		for _, have := range info.Parts {
			if have.Number == p.Number {
				return slices.Equal(have.Segments, p.Segments), nil
			}
		}
		return false, nil
	}
}

func (s *Server) completeUpload(q *request) error {
	var req completeRequest
	if err := readXML(q, &req); err != nil {
		return err
	}
	if err := req.validate(s.cfg.MaxParts); err != nil {
		return err
	}
	cond, err := writeCondition(q.r.Header)
	if err != nil {
		return err
	}
	info, err := s.upload(q)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Code == "NoSuchUpload" {
			return s.completedAgain(q, req, err)
		}
		return err
	}
	have := make(map[int]nsclient.Part, len(info.Parts))
	for _, p := range info.Parts {
		have[p.Number] = p
	}
	creq := nsclient.CompleteRequest{}
	for i, rp := range req.Parts {
		etag := strings.Trim(strings.TrimSpace(rp.ETag), `"`)
		p, ok := have[rp.PartNumber]
		if !ok || p.ETag != etag {
			return s3err("InvalidPart", http.StatusBadRequest, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag: part %d", rp.PartNumber)
		}
		if i < len(req.Parts)-1 && p.Size < s.cfg.MinPartSize {
			return s3err("EntityTooSmall", http.StatusBadRequest, "Your proposed upload is smaller than the minimum allowed object size: part %d has %d bytes", rp.PartNumber, p.Size)
		}
		creq.Parts = append(creq.Parts, nsclient.CompletePart{Number: p.Number, ETag: p.ETag})
	}
	creq.ETag = req.etag() // the parts' ETags are the request's, checked above
	// The data keys of the parts are not sent: the nameserver takes them
	// from its part records, which a part uploaded again since the read
	// above has changed.
	creq.Precondition = cond
	if err := s.commitUpload(q, info, creq); err != nil {
		return err
	}
	writeSSEHeaders(q.w.Header(), encMode(info.Upload.Encryption), "")
	s.writeXML(q, completeResult{NS: s3NS, Location: "/" + q.bucket + "/" + q.key, Bucket: q.bucket, Key: q.key, ETag: quote(creq.ETag)})
	return nil
}

// completedAgain answers a CompleteMultipartUpload of an upload that is
// gone. As S3 does, a repeat of a completion that succeeded (its answer
// was lost, and the client sent it again) answers 200 with the same ETag,
// provided it names the same parts and the key still holds the object that
// completion made; the nameserver remembers completions for
// nameserver.RequestRetention. Anything else is notFound (NoSuchUpload).
func (s *Server) completedAgain(q *request, req completeRequest, notFound error) error {
	id := q.r.URL.Query().Get("uploadId")
	done, err := q.ns.CompletedUpload(q.ctx, q.bucket, q.key, id)
	if errors.Is(err, depot.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	if len(done.Parts) != len(req.Parts) {
		return notFound
	}
	for i, rp := range req.Parts {
		if done.Parts[i].Number != rp.PartNumber || done.Parts[i].ETag != strings.Trim(strings.TrimSpace(rp.ETag), `"`) {
			return notFound
		}
	}
	o, err := q.ns.GetObject(q.ctx, q.bucket, q.key)
	if errors.Is(err, depot.ErrNotFound) || err == nil && (o.ETag != done.ETag || !o.Modified.Equal(done.Completed)) {
		return notFound // overwritten or deleted since
	}
	if err != nil {
		return err
	}
	writeSSEHeaders(q.w.Header(), encMode(o.Encryption), "")
	setVersionHeader(q, s.s3VersionOf(q, q.bucket, o))
	s.writeXML(q, completeResult{NS: s3NS, Location: "/" + q.bucket + "/" + q.key, Bucket: q.bucket, Key: q.key, ETag: quote(done.ETag)})
	return nil
}

// commitUpload runs the nameserver's CompleteUpload for info on a context
// of its own (commitContext) and maps its failure. The parts' segments
// belong to the upload until the completion applies, so nothing is
// discarded; an unknown outcome is read back (the key holds exactly the
// named parts' segments only if this completion applied).
func (s *Server) commitUpload(q *request, info nsclient.UploadInfo, creq nsclient.CompleteRequest) error {
	ctx, cancel := s.commitContext(q)
	res, err := q.ns.CompleteUpload(ctx, q.bucket, q.key, info.Upload.ID, creq)
	cancel()
	if err == nil {
		setVersionHeader(q, res.VersionID)
		return nil
	}
	var segs []depot.Segment
	for _, cp := range creq.Parts {
		for _, p := range info.Parts {
			if p.Number == cp.Number {
				segs = append(segs, p.Segments...)
			}
		}
	}
	applied := holds(q.ns, q.bucket, q.key, segs)
	err = s.settle(q, "complete", nil, err, applied)
	if errors.Is(err, depot.ErrNotFound) && applied != nil {
		// No upload: a retry of this command whose first try applied
		// finds it gone. The key then holds the parts.
		ctx, cancel := s.commitContext(q)
		ok, rerr := applied(ctx)
		cancel()
		if rerr == nil && ok {
			s.readBackVersion(q, q.bucket, q.key)
			return nil
		}
	}
	switch {
	case err == nil:
		s.readBackVersion(q, q.bucket, q.key)
		return nil
	case errors.Is(err, depot.ErrPrecondition):
		return errPrecondition()
	case errors.Is(err, depot.ErrNotFound):
		if creq.Precondition != nil && creq.Precondition.IfMatch != "" {
			if _, uerr := q.ns.Upload(q.ctx, q.bucket, q.key, info.Upload.ID); uerr == nil {
				return errNoSuchKey(q.key) // If-Match on a key that does not exist
			}
		}
		return errNoSuchUpload(info.Upload.ID)
	case errors.Is(err, depot.ErrBadRequest):
		return s3err("InvalidPart", http.StatusBadRequest, "%v", err)
	}
	return err
}

// etag returns the ETag of the object completed from r's parts: the MD5
// of their binary MD5s, a dash and their count.
func (r completeRequest) etag() string {
	var all []byte
	for _, rp := range r.Parts {
		b, _ := hex.DecodeString(strings.Trim(strings.TrimSpace(rp.ETag), `"`))
		all = append(all, b...)
	}
	sum := md5.Sum(all)
	return fmt.Sprintf("%s-%d", hex.EncodeToString(sum[:]), len(r.Parts))
}

// abortUpload aborts an upload. An upload that is gone, completed ones
// included, answers NoSuchUpload, as S3 does (an abort after a completion
// deletes nothing).
func (s *Server) abortUpload(q *request) error {
	info, err := s.upload(q)
	if err != nil {
		return err // NoSuchBucket, NoSuchUpload
	}
	err = q.ns.AbortUpload(q.ctx, q.bucket, q.key, info.Upload.ID)
	if err != nil && !errors.Is(err, depot.ErrNotFound) {
		return err
	}
	// The upload was there when this abort began: gone now, it was taken
	// by this abort's first try (the nameserver client retries after a
	// lost answer) or by another abort racing it. S3 answers an abort of
	// an upload just aborted 204 too.
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}

type partEntry struct {
	PartNumber   int    `xml:"PartNumber"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
}

type listPartsResult struct {
	XMLName              xml.Name    `xml:"ListPartsResult"`
	NS                   string      `xml:"xmlns,attr"`
	Bucket               string      `xml:"Bucket"`
	Key                  string      `xml:"Key"`
	UploadID             string      `xml:"UploadId"`
	Initiator            owner       `xml:"Initiator"`
	Owner                owner       `xml:"Owner"`
	StorageClass         string      `xml:"StorageClass"`
	PartNumberMarker     int         `xml:"PartNumberMarker"`
	NextPartNumberMarker int         `xml:"NextPartNumberMarker"`
	MaxParts             int         `xml:"MaxParts"`
	IsTruncated          bool        `xml:"IsTruncated"`
	Parts                []partEntry `xml:"Part"`
}

func (s *Server) listParts(q *request) error {
	info, err := s.upload(q)
	if err != nil {
		return err
	}
	v := q.r.URL.Query()
	maxParts := s.cfg.MaxListKeys
	if mp := v.Get("max-parts"); mp != "" {
		n, err := strconv.Atoi(mp)
		if err != nil || n < 0 {
			return errInvalidArgument("max-parts must be a non-negative integer")
		}
		maxParts = min(n, s.cfg.MaxListKeys)
	}
	marker, _ := strconv.Atoi(v.Get("part-number-marker"))
	res := listPartsResult{NS: s3NS, Bucket: q.bucket, Key: q.key, UploadID: info.Upload.ID, Initiator: s.owner(),
		Owner: s.owner(), StorageClass: "STANDARD", PartNumberMarker: marker, MaxParts: maxParts}
	for _, p := range info.Parts {
		if p.Number <= marker {
			continue
		}
		if len(res.Parts) == maxParts {
			res.IsTruncated = true
			break
		}
		res.Parts = append(res.Parts, partEntry{PartNumber: p.Number, LastModified: isoTime(p.Modified), ETag: quote(p.ETag), Size: p.Size})
		res.NextPartNumberMarker = p.Number
	}
	s.writeXML(q, res)
	return nil
}

type uploadEntry struct {
	Key          string `xml:"Key"`
	UploadID     string `xml:"UploadId"`
	Initiator    owner  `xml:"Initiator"`
	Owner        owner  `xml:"Owner"`
	StorageClass string `xml:"StorageClass"`
	Initiated    string `xml:"Initiated"`
}

type listUploadsResult struct {
	XMLName            xml.Name       `xml:"ListMultipartUploadsResult"`
	NS                 string         `xml:"xmlns,attr"`
	Bucket             string         `xml:"Bucket"`
	KeyMarker          string         `xml:"KeyMarker"`
	UploadIDMarker     string         `xml:"UploadIdMarker"`
	NextKeyMarker      string         `xml:"NextKeyMarker"`
	NextUploadIDMarker string         `xml:"NextUploadIdMarker"`
	Prefix             string         `xml:"Prefix"`
	Delimiter          string         `xml:"Delimiter,omitempty"`
	MaxUploads         int            `xml:"MaxUploads"`
	IsTruncated        bool           `xml:"IsTruncated"`
	Uploads            []uploadEntry  `xml:"Upload"`
	CommonPrefixes     []commonPrefix `xml:"CommonPrefixes"`
}

func (s *Server) listUploads(q *request) error {
	v := q.r.URL.Query()
	maxUploads := s.cfg.MaxListKeys
	if mu := v.Get("max-uploads"); mu != "" {
		n, err := strconv.Atoi(mu)
		if err != nil || n < 0 {
			return errInvalidArgument("max-uploads must be a non-negative integer")
		}
		maxUploads = max(min(n, s.cfg.MaxListKeys), 1)
	}
	prefix, delim := v.Get("prefix"), v.Get("delimiter")
	res := listUploadsResult{NS: s3NS, Bucket: q.bucket, KeyMarker: v.Get("key-marker"), UploadIDMarker: v.Get("upload-id-marker"),
		Prefix: prefix, Delimiter: delim, MaxUploads: maxUploads}
	opts := nsclient.UploadListOptions{Prefix: prefix, AfterKey: v.Get("key-marker"), AfterID: v.Get("upload-id-marker"), Limit: maxUploads}
	if delim != "" && strings.HasSuffix(opts.AfterKey, delim) && strings.HasPrefix(opts.AfterKey, prefix) {
		// A marker that is a common prefix continues after every key
		// under it.
		opts.AfterKey, opts.AfterID = opts.AfterKey+"\xff", ""
	}
	// With a delimiter, the uploads under one common prefix count once:
	// after a common prefix the listing resumes past every key under it.
	// The loop ends: each page moves opts.AfterKey forward or is the last.
	n := 0
pages:
	for {
		l, err := q.ns.Uploads(q.ctx, q.bucket, opts)
		if err != nil {
			return bucketErr(q, err)
		}
		for _, u := range l.Uploads {
			if n == maxUploads {
				res.IsTruncated = true
				break pages
			}
			n++
			cp := ""
			if delim != "" {
				if i := strings.Index(u.Key[len(prefix):], delim); i >= 0 {
					cp = u.Key[:len(prefix)+i+len(delim)]
				}
			}
			if cp != "" {
				res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: cp})
				res.NextKeyMarker, res.NextUploadIDMarker = cp, ""
				// Every key under cp sorts below cp+0xff: no byte of
				// UTF-8 is 0xff.
				opts.AfterKey, opts.AfterID = cp+"\xff", ""
				continue pages
			}
			res.Uploads = append(res.Uploads, uploadEntry{Key: u.Key, UploadID: u.ID, Initiator: s.owner(), Owner: s.owner(),
				StorageClass: "STANDARD", Initiated: isoTime(u.Initiated)})
			res.NextKeyMarker, res.NextUploadIDMarker = u.Key, u.ID
			opts.AfterKey, opts.AfterID = u.Key, u.ID
		}
		if !l.Truncated {
			break
		}
	}
	if !res.IsTruncated {
		res.NextKeyMarker, res.NextUploadIDMarker = "", ""
	}
	s.writeXML(q, res)
	return nil
}
