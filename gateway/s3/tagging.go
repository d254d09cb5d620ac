package s3

import (
	"encoding/xml"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"depot"
	"depot/nameserver/nsclient"
)

// Object tags live in the object's metadata under metaTagging, in the form
// of the x-amz-tagging header: URL-encoded key=value pairs joined by "&",
// in the order the client gave them. GET and HEAD report their number in
// x-amz-tagging-count; GetObjectTagging lists them.
const metaTagging = "x-amz-tagging"

// Tag limits, as AWS has them.
const (
	maxObjectTags  = 10
	maxTagKeyLen   = 128 // Unicode characters
	maxTagValueLen = 256
)

type tag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

type tagging struct {
	XMLName xml.Name `xml:"Tagging"`
	NS      string   `xml:"xmlns,attr,omitempty"`
	TagSet  []tag    `xml:"TagSet>Tag"`
}

func errInvalidTag(format string, args ...any) *Error {
	return s3err("InvalidTag", http.StatusBadRequest, format, args...)
}

// checkTags applies AWS's rules for a tag set of at most limit tags.
func checkTags(tags []tag, limit int) error {
	if len(tags) > limit {
		return s3err("BadRequest", http.StatusBadRequest, "Object tags cannot be greater than %d", limit)
	}
	seen := make(map[string]bool, len(tags))
	for _, t := range tags {
		switch {
		case t.Key == "":
			return errInvalidTag("The TagKey you have provided is invalid")
		case utf8.RuneCountInString(t.Key) > maxTagKeyLen:
			return errInvalidTag("The TagKey you have provided is too long, max %d", maxTagKeyLen)
		case utf8.RuneCountInString(t.Value) > maxTagValueLen:
			return errInvalidTag("The TagValue you have provided is too long, max %d", maxTagValueLen)
		case strings.HasPrefix(strings.ToLower(t.Key), "aws:"):
			return errInvalidTag("Your TagKey cannot be prefixed with aws:")
		case !validTagText(t.Key):
			return errInvalidTag("The TagKey you have provided is invalid")
		case !validTagText(t.Value):
			return errInvalidTag("The TagValue you have provided is invalid")
		case seen[t.Key]:
			return errInvalidTag("Cannot provide multiple Tags with the same key")
		}
		seen[t.Key] = true
	}
	return nil
}

// validTagText reports whether s holds only what AWS allows in tags:
// letters, digits, white space and + - = . _ : / @.
func validTagText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsSpace(r) && !strings.ContainsRune("+-=._:/@", r) {
			return false
		}
	}
	return true
}

// parseTagHeader reads an x-amz-tagging header value.
func parseTagHeader(v string) ([]tag, error) {
	var tags []tag
	for pair := range strings.SplitSeq(v, "&") {
		if pair == "" {
			continue
		}
		k, val, _ := strings.Cut(pair, "=")
		key, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(val)
		if err := errors.Join(err1, err2); err != nil {
			return nil, errInvalidArgument("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.")
		}
		tags = append(tags, tag{Key: key, Value: value})
	}
	return tags, nil
}

// encodeTags is the stored (and header) form of tags.
func encodeTags(tags []tag) string {
	var b strings.Builder
	for i, t := range tags {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(t.Key))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(t.Value))
	}
	return b.String()
}

// objectTags returns the tags stored with o.
func objectTags(o depot.Object) []tag {
	tags, _ := parseTagHeader(o.Meta[metaTagging]) // stored only after checks
	return tags
}

// tagsFromHeader checks the request's x-amz-tagging header and returns its
// stored form ("" when it has no tags).
func tagsFromHeader(h http.Header) (string, error) {
	tags, err := parseTagHeader(h.Get("X-Amz-Tagging"))
	if err != nil {
		return "", err
	}
	if err := checkTags(tags, maxObjectTags); err != nil {
		return "", err
	}
	return encodeTags(tags), nil
}

// setTags stores enc (a stored form) in meta, or removes the tags when
// enc is "".
func setTags(meta map[string]string, enc string) map[string]string {
	if enc == "" {
		delete(meta, metaTagging)
		return meta
	}
	if meta == nil {
		meta = make(map[string]string)
	}
	meta[metaTagging] = enc
	return meta
}

// writeTagCount sets x-amz-tagging-count on a GET or HEAD of o.
func writeTagCount(h http.Header, o depot.Object) {
	if n := len(objectTags(o)); n > 0 {
		h.Set("x-amz-tagging-count", strconv.Itoa(n))
	}
}

func (s *Server) getObjectTagging(q *request) error {
	version, versioned := requestedVersion(q)
	o, err := s.objectVersion(q, q.bucket, q.key, version, versioned)
	if err != nil {
		return err
	}
	setVersionHeader(q, s.s3VersionOf(q, q.bucket, o))
	tags := objectTags(o)
	if tags == nil {
		tags = []tag{}
	}
	s.writeXML(q, tagging{NS: s3NS, TagSet: tags})
	return nil
}

func (s *Server) putObjectTagging(q *request) error {
	var t tagging
	if err := readXML(q, &t); err != nil {
		return err
	}
	if err := checkTags(t.TagSet, maxObjectTags); err != nil {
		return err
	}
	return s.retag(q, encodeTags(t.TagSet), http.StatusOK)
}

func (s *Server) deleteObjectTagging(q *request) error {
	return s.retag(q, "", http.StatusNoContent)
}

// retagAttempts bounds how often retag reads the object again when it was
// replaced between the read and the update.
const retagAttempts = 5

// retag replaces the tags of the key's current object, keeping its bytes
// and Last-Modified: the same object record is committed again with new
// metadata, on condition that the key still holds that very object. A
// refusal never discards anything (the segments are the live object's);
// an object replaced meanwhile is read again.
func (s *Server) retag(q *request, enc string, status int) error {
	version, versioned := requestedVersion(q)
	for range retagAttempts {
		o, err := s.getMeta(q, q.bucket, q.key)
		if err != nil {
			return err
		}
		if versioned && s.s3VersionOf(q, q.bucket, o) != version && !(version == nullVersion && o.VersionID == "") {
			// Only the current version's record can be rewritten.
			if _, err := s.objectVersion(q, q.bucket, q.key, version, true); err != nil {
				return err
			}
			return s3err("NotImplemented", http.StatusNotImplemented, "Tagging a non-current version is not implemented")
		}
		setVersionHeader(q, s.s3VersionOf(q, q.bucket, o))
		if o.Meta[metaTagging] == enc {
			q.w.WriteHeader(status)
			return nil
		}
		at := o.Modified
		o.Meta = setTags(o.Meta, enc)
		o.Precondition = &depot.Precondition{IfUnchanged: &at}
		ctx, cancel := s.commitContext(q)
		_, err = q.ns.PutObject(ctx, o)
		cancel()
		switch {
		case err == nil:
			q.w.WriteHeader(status)
			return nil
		case errors.Is(err, depot.ErrPrecondition):
			continue // replaced meanwhile: tag what the key holds now
		case errors.Is(err, depot.ErrNotFound):
			return errNoSuchKey(q.key)
		default:
			return err
		}
	}
	return s3err("OperationAborted", http.StatusConflict, "A conflicting conditional operation is currently in progress against this resource. Please try again.")
}

// maxBucketTags is AWS's limit of tags on a bucket.
const maxBucketTags = 50

func (s *Server) getBucketTagging(q *request) error {
	b, err := q.ns.Bucket(q.ctx, q.bucket)
	if err != nil {
		return bucketErr(q, err)
	}
	if b.Tags == "" {
		return s3err("NoSuchTagSet", http.StatusNotFound, "The TagSet does not exist")
	}
	tags, _ := parseTagHeader(b.Tags) // stored only after checks
	s.writeXML(q, tagging{NS: s3NS, TagSet: tags})
	return nil
}

func (s *Server) putBucketTagging(q *request) error {
	var t tagging
	if err := readXML(q, &t); err != nil {
		return err
	}
	if len(t.TagSet) > maxBucketTags {
		return errInvalidTag("The TagSet has more than %d tags", maxBucketTags)
	}
	if err := checkTags(t.TagSet, maxBucketTags); err != nil {
		return err
	}
	enc := encodeTags(t.TagSet)
	if _, err := q.ns.SetBucket(q.ctx, q.bucket, nsclient.BucketSettings{Tags: &enc}); err != nil {
		return bucketErr(q, err)
	}
	s.forgetBucket(q.bucket)
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) deleteBucketTagging(q *request) error {
	none := ""
	if _, err := q.ns.SetBucket(q.ctx, q.bucket, nsclient.BucketSettings{Tags: &none}); err != nil {
		return bucketErr(q, err)
	}
	s.forgetBucket(q.bucket)
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}
