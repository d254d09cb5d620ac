package s3

import (
	"encoding/xml"
	"errors"
	"net/http"

	"depot"
	"depot/nameserver/nsclient"
)

// S3 versioning. The nameserver keeps the versions (nameserver/versions.go);
// this file speaks S3 about them: Put/GetBucketVersioning, ?versionId on
// GET, HEAD, DELETE, tagging, attributes and copy sources, the
// x-amz-version-id and x-amz-delete-marker headers, and
// ListObjectVersions. Every object of a bucket that was never versioned is
// its own null version, so the same calls work on any bucket.

// nullVersion is S3's name of the version with no id.
const nullVersion = "null"

func errNoSuchVersion() *Error {
	return s3err("NoSuchVersion", http.StatusNotFound, "The specified version does not exist.")
}

// hasCode reports whether err is an S3 error with code.
func hasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// setVersionHeader sends x-amz-version-id unless v is "" (a bucket that
// was never versioned).
func setVersionHeader(q *request, v string) {
	if v != "" {
		q.w.Header().Set("x-amz-version-id", v)
	}
}

// requestedVersion returns the request's ?versionId, if it has one.
func requestedVersion(q *request) (string, bool) {
	v := q.r.URL.Query()
	if !v.Has("versionId") {
		return "", false
	}
	return v.Get("versionId"), true
}

// versioned reports whether bucket has versioning configured (cached).
func (s *Server) versioned(q *request, bucket string) bool {
	bi, err := s.bucketInfo(q.ctx, q, bucket)
	return err == nil && bi.versioning != ""
}

// s3VersionOf is how S3 names o's version in bucket: its id, "null" for
// the null version of a bucket with versioning configured, "" otherwise.
func (s *Server) s3VersionOf(q *request, bucket string, o depot.Object) string {
	if o.VersionID != "" {
		return o.VersionID
	}
	if bi, err := s.bucketInfo(q.ctx, q, bucket); err == nil && bi.versioning != "" {
		return nullVersion
	}
	return ""
}

// objectVersion reads the object a request names: bucket/key at version
// (the current one when version is ""). A delete marker named by its
// version is answered as S3 does (405 with x-amz-delete-marker); the
// current version being a delete marker reads as NoSuchKey, with the
// marker's headers.
func (s *Server) objectVersion(q *request, bucket, key, version string, versioned bool) (depot.Object, error) {
	if !versioned {
		o, err := s.getMeta(q, bucket, key)
		// Only a bucket with versioning has delete markers: a 404 of any
		// other costs no second lookup.
		if hasCode(err, "NoSuchKey") && s.versioned(q, bucket) {
			if m, merr := q.ns.GetObjectVersion(q.ctx, bucket, key, ""); merr == nil && m.DeleteMarker {
				q.w.Header().Set("x-amz-delete-marker", "true")
				setVersionHeader(q, s.s3VersionOf(q, bucket, m))
			}
		}
		return o, err
	}
	o, err := q.ns.GetObjectVersion(q.ctx, bucket, key, version)
	if errors.Is(err, depot.ErrNotFound) {
		if _, berr := q.ns.Bucket(q.ctx, bucket); errors.Is(berr, depot.ErrNotFound) {
			return o, errNoSuchBucket(bucket)
		}
		return o, errNoSuchVersion()
	}
	if err != nil {
		return o, err
	}
	if o.DeleteMarker {
		h := q.w.Header()
		h.Set("x-amz-delete-marker", "true")
		setVersionHeader(q, s.s3VersionOf(q, bucket, o))
		h.Set("Last-Modified", o.Modified.UTC().Format(http.TimeFormat))
		return o, s3err("MethodNotAllowed", http.StatusMethodNotAllowed, "The specified method is not allowed against this resource.")
	}
	if o.VersionID == "" {
		setVersionHeader(q, nullVersion) // asked for by its name
	}
	return o, nil
}

type versioningConfiguration struct {
	XMLName   xml.Name `xml:"VersioningConfiguration"`
	NS        string   `xml:"xmlns,attr,omitempty"`
	Status    string   `xml:"Status,omitempty"`
	MfaDelete string   `xml:"MfaDelete,omitempty"`
}

func (s *Server) putVersioning(q *request) error {
	var c versioningConfiguration
	if err := readXML(q, &c); err != nil {
		return err
	}
	if c.MfaDelete == "Enabled" {
		return s3err("NotImplemented", http.StatusNotImplemented, "MFA delete is not implemented")
	}
	if c.Status != nsclient.VersioningEnabled && c.Status != nsclient.VersioningSuspended {
		return s3err("IllegalVersioningConfigurationException", http.StatusBadRequest,
			"The versioning configuration specified in the request is invalid: Status %q", c.Status)
	}
	if c.Status == nsclient.VersioningSuspended {
		if bi, err := s.bucketInfo(q.ctx, q, q.bucket); err == nil && bi.objectLock {
			return s3err("InvalidBucketState", http.StatusConflict, "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.")
		}
	}
	if _, err := q.ns.SetBucket(q.ctx, q.bucket, nsclient.BucketSettings{Versioning: &c.Status}); err != nil {
		return bucketErr(q, err)
	}
	s.forgetBucket(q.bucket)
	q.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) getVersioning(q *request) error {
	b, err := q.ns.Bucket(q.ctx, q.bucket)
	if err != nil {
		return bucketErr(q, err)
	}
	s.writeXML(q, versioningConfiguration{NS: s3NS, Status: b.Versioning})
	return nil
}

// versionEntry is a Version or a DeleteMarker of ListVersionsResult; the
// two kinds interleave in listing order, so one type carries both.
type versionEntry struct {
	XMLName      xml.Name
	Key          string `xml:"Key"`
	VersionID    string `xml:"VersionId"`
	IsLatest     bool   `xml:"IsLatest"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag,omitempty"`
	Size         *int64 `xml:"Size,omitempty"`
	Owner        owner  `xml:"Owner"`
	StorageClass string `xml:"StorageClass,omitempty"`
}

type listVersionsResult struct {
	XMLName             xml.Name       `xml:"ListVersionsResult"`
	NS                  string         `xml:"xmlns,attr"`
	Name                string         `xml:"Name"`
	Prefix              string         `xml:"Prefix"`
	KeyMarker           string         `xml:"KeyMarker"`
	VersionIDMarker     string         `xml:"VersionIdMarker"`
	NextKeyMarker       string         `xml:"NextKeyMarker,omitempty"`
	NextVersionIDMarker string         `xml:"NextVersionIdMarker,omitempty"`
	MaxKeys             int            `xml:"MaxKeys"`
	Delimiter           string         `xml:"Delimiter,omitempty"`
	EncodingType        string         `xml:"EncodingType,omitempty"`
	IsTruncated         bool           `xml:"IsTruncated"`
	Entries             []versionEntry `xml:",any"`
	CommonPrefixes      []commonPrefix `xml:"CommonPrefixes"`
}

// listObjectVersions answers ListObjectVersions: keys in byte order, each
// key's versions newest first, delete markers among them.
func (s *Server) listObjectVersions(q *request) error {
	v := q.r.URL.Query()
	maxKeys, enc, err := s.listParams(v)
	if err != nil {
		return err
	}
	keyMarker, vidMarker := v.Get("key-marker"), v.Get("version-id-marker")
	if vidMarker != "" && keyMarker == "" {
		return errInvalidArgument("A version-id marker cannot be specified without a key marker.")
	}
	res := listVersionsResult{NS: s3NS, Name: q.bucket, Prefix: encodeKey(enc, v.Get("prefix")),
		KeyMarker: encodeKey(enc, keyMarker), VersionIDMarker: vidMarker, MaxKeys: maxKeys,
		Delimiter: encodeKey(enc, v.Get("delimiter"))}
	if enc {
		res.EncodingType = "url"
	}
	bi, err := s.bucketInfo(q.ctx, q, q.bucket)
	if err != nil {
		return err
	}
	if !bi.exists {
		return errNoSuchBucket(q.bucket)
	}
	if maxKeys > 0 {
		page, err := q.ns.ListVersions(q.ctx, q.bucket, nsclient.VersionListOptions{Prefix: v.Get("prefix"),
			KeyMarker: keyMarker, VersionIDMarker: vidMarker, Delimiter: v.Get("delimiter"), Limit: maxKeys})
		if err != nil {
			return bucketErr(q, err)
		}
		for _, e := range page.Versions {
			id := e.VersionID
			if id == "" {
				id = nullVersion
			}
			ve := versionEntry{XMLName: xml.Name{Local: "Version"}, Key: encodeKey(enc, e.Key), VersionID: id,
				IsLatest: e.IsLatest, LastModified: isoTime(e.Modified), Owner: s.owner()}
			if e.DeleteMarker {
				ve.XMLName.Local = "DeleteMarker"
			} else {
				size := e.Size
				ve.ETag, ve.Size, ve.StorageClass = quote(e.ETag), &size, "STANDARD"
			}
			res.Entries = append(res.Entries, ve)
		}
		for _, p := range page.Prefixes {
			res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: encodeKey(enc, p)})
		}
		if page.Truncated {
			res.IsTruncated = true
			res.NextKeyMarker = encodeKey(enc, page.NextKeyMarker)
			res.NextVersionIDMarker = page.NextVersionIDMarker
		}
	}
	s.writeXML(q, res)
	return nil
}
