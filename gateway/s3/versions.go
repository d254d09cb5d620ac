package s3

import (
	"encoding/xml"
	"net/http"
	"strconv"

	"depot/nameserver/nsclient"
)

// Buckets are not versioned (PutBucketVersioning is NotImplemented), and
// S3 gives every object of such a bucket one version, "null". This file
// answers the version-aware calls that tools make on any bucket in those
// terms: ListObjectVersions lists each object as its null version, and
// ?versionId=null names the object itself on every object operation.

// nullVersion is the version id of every object in an unversioned bucket.
const nullVersion = "null"

func errNoSuchVersion() *Error {
	return s3err("NoSuchVersion", http.StatusNotFound, "The specified version does not exist.")
}

// checkVersionID admits ?versionId=null, the only version there is, and
// marks the answer with it as S3 does.
func checkVersionID(q *request) error {
	v := q.r.URL.Query()
	if !v.Has("versionId") {
		return nil
	}
	if v.Get("versionId") != nullVersion {
		return errNoSuchVersion()
	}
	q.w.Header().Set("x-amz-version-id", nullVersion)
	return nil
}

type versionEntry struct {
	Key          string `xml:"Key"`
	VersionID    string `xml:"VersionId"`
	IsLatest     bool   `xml:"IsLatest"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
	Owner        owner  `xml:"Owner"`
	StorageClass string `xml:"StorageClass"`
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
	Versions            []versionEntry `xml:"Version"`
	CommonPrefixes      []commonPrefix `xml:"CommonPrefixes"`
}

// listObjectVersions answers ListObjectVersions: every object as its null
// version, the latest. Pages continue after NextKeyMarker (each key has
// one version, so the version-id marker is "null" or absent).
func (s *Server) listObjectVersions(q *request) error {
	v := q.r.URL.Query()
	maxKeys := s.cfg.MaxListKeys
	if mk := v.Get("max-keys"); mk != "" {
		n, err := strconv.Atoi(mk)
		if err != nil || n < 0 {
			return errInvalidArgument("max-keys must be a non-negative integer")
		}
		maxKeys = min(n, s.cfg.MaxListKeys)
	}
	enc := false
	switch et := v.Get("encoding-type"); et {
	case "":
	case "url":
		enc = true
	default:
		return errInvalidArgument("Invalid Encoding Method specified in Request: %q", et)
	}
	keyMarker, vidMarker := v.Get("key-marker"), v.Get("version-id-marker")
	switch {
	case vidMarker != "" && keyMarker == "":
		return errInvalidArgument("A version-id marker cannot be specified without a key marker.")
	case vidMarker != "" && vidMarker != nullVersion:
		return errInvalidArgument("Invalid version id specified")
	}
	res := listVersionsResult{NS: s3NS, Name: q.bucket, Prefix: encodeKey(enc, v.Get("prefix")),
		KeyMarker: encodeKey(enc, keyMarker), VersionIDMarker: vidMarker, MaxKeys: maxKeys,
		Delimiter: encodeKey(enc, v.Get("delimiter"))}
	if enc {
		res.EncodingType = "url"
	}
	var page nsclient.ListResult
	if maxKeys > 0 {
		var err error
		page, err = q.ns.List(q.ctx, q.bucket, nsclient.ListOptions{Prefix: v.Get("prefix"), After: keyMarker,
			Delimiter: v.Get("delimiter"), Limit: maxKeys})
		if err != nil {
			return bucketErr(q, err)
		}
	} else if _, err := q.ns.Bucket(q.ctx, q.bucket); err != nil {
		return bucketErr(q, err)
	}
	for _, o := range page.Objects {
		res.Versions = append(res.Versions, versionEntry{Key: encodeKey(enc, o.Key), VersionID: nullVersion, IsLatest: true,
			LastModified: isoTime(o.Modified), ETag: quote(o.ETag), Size: o.Size, Owner: s.owner(), StorageClass: "STANDARD"})
	}
	for _, p := range page.Prefixes {
		res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: encodeKey(enc, p)})
	}
	if page.Truncated {
		res.IsTruncated = true
		res.NextKeyMarker = encodeKey(enc, page.Next)
		// The last entry of the page is a key's null version or a common
		// prefix; either way the next page starts after Next.
		if n := len(page.Objects); n > 0 && page.Objects[n-1].Key == page.Next {
			res.NextVersionIDMarker = nullVersion
		}
	}
	s.writeXML(q, res)
	return nil
}
