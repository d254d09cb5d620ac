package s3

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"depot"
	"depot/internal/policy"
	"depot/nameserver/nsclient"
)

const s3NS = "http://s3.amazonaws.com/doc/2006-03-01/"

type owner struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

func (s *Server) owner() owner { return owner{ID: "depot", DisplayName: "depot"} }

type listAllMyBucketsResult struct {
	XMLName           xml.Name      `xml:"ListAllMyBucketsResult"`
	NS                string        `xml:"xmlns,attr"`
	Owner             owner         `xml:"Owner"`
	Buckets           []bucketEntry `xml:"Buckets>Bucket"`
	ContinuationToken string        `xml:"ContinuationToken,omitempty"`
	Prefix            string        `xml:"Prefix,omitempty"`
}

type bucketEntry struct {
	Name         string `xml:"Name"`
	CreationDate string `xml:"CreationDate"`
	BucketRegion string `xml:"BucketRegion"`
}

// maxListBuckets is the largest max-buckets AWS takes.
const maxListBuckets = 10000

func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// listBuckets answers ListBuckets, in name order, with AWS's prefix and
// paging (max-buckets, continuation-token: an opaque form of the last
// name of the page before).
func (s *Server) listBuckets(q *request) error {
	v := q.r.URL.Query()
	limit := maxListBuckets
	if mb := v.Get("max-buckets"); mb != "" {
		n, err := strconv.Atoi(mb)
		if err != nil || n < 1 || n > maxListBuckets {
			return errInvalidArgument("max-buckets must be an integer from 1 to %d", maxListBuckets)
		}
		limit = n
	}
	after := ""
	if tok := v.Get("continuation-token"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return errInvalidArgument("The continuation token provided is incorrect")
		}
		after = string(b)
	}
	prefix := v.Get("prefix")
	bs, err := q.ns.Buckets(q.ctx)
	if err != nil {
		return err
	}
	slices.SortFunc(bs, func(a, b nsclient.Bucket) int { return strings.Compare(a.Name, b.Name) })
	// Callers without s3:ListAllMyBuckets see the buckets they own.
	all, err := s.allowed(q, "s3:ListAllMyBuckets", "", "")
	if err != nil {
		return err
	}
	res := listAllMyBucketsResult{NS: s3NS, Owner: s.owner(), Buckets: []bucketEntry{}, Prefix: prefix}
	for _, b := range bs {
		if b.Name <= after || !strings.HasPrefix(b.Name, prefix) || !all && b.Owner != q.principal() {
			continue
		}
		if len(res.Buckets) == limit {
			res.ContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(res.Buckets[limit-1].Name))
			break
		}
		res.Buckets = append(res.Buckets, bucketEntry{Name: b.Name, CreationDate: isoTime(b.Created), BucketRegion: s.cfg.Region})
	}
	s.writeXML(q, res)
	return nil
}

// validBucketName applies the AWS bucket naming rules.
func validBucketName(n string) bool {
	if len(n) < 3 || len(n) > 63 || strings.Contains(n, "..") || strings.HasPrefix(n, "xn--") ||
		strings.HasPrefix(n, "sthree-") || strings.HasSuffix(n, "-s3alias") || strings.HasSuffix(n, "--ol-s3") ||
		net.ParseIP(n) != nil {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || i == len(n)-1 || c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// bucketErr turns a not-found error of a bucket operation into NoSuchBucket.
func bucketErr(q *request, err error) error {
	if errors.Is(err, depot.ErrNotFound) {
		return errNoSuchBucket(q.bucket)
	}
	return err
}

type createBucketConfiguration struct {
	LocationConstraint string `xml:"LocationConstraint"`
}

func (s *Server) createBucket(q *request) error {
	if !validBucketName(q.bucket) {
		return s3err("InvalidBucketName", http.StatusBadRequest, "The specified bucket is not valid: %q", q.bucket)
	}
	if q.r.ContentLength != 0 {
		var cfg createBucketConfiguration
		if err := readXML(q, &cfg); err != nil && !errors.Is(err, io.EOF) {
			var e *Error
			if !errors.As(err, &e) || q.r.ContentLength > 0 {
				return err
			}
		}
	}
	if _, err := q.ns.CreateBucket(q.ctx, q.bucket); err != nil {
		if errors.Is(err, depot.ErrExists) {
			if b, berr := q.ns.Bucket(q.ctx, q.bucket); berr == nil && b.Owner != s.ownerFor(q) {
				return s3err("BucketAlreadyExists", http.StatusConflict, "The requested bucket name is not available.")
			}
			if s.cfg.Region != "us-east-1" {
				return s3err("BucketAlreadyOwnedByYou", http.StatusConflict, "Your previous request to create the named bucket succeeded and you already own it.")
			}
			// In us-east-1 AWS answers the owner's repeated create with 200
			// and leaves the bucket as it is (settings included).
			q.w.Header().Set("Location", "/"+q.bucket)
			q.w.WriteHeader(http.StatusOK)
			return nil
		}
		return err
	}
	var st nsclient.BucketSettings
	if ow := s.ownerFor(q); ow != "" {
		st.Owner = &ow
	}
	if strings.EqualFold(q.r.Header.Get("X-Amz-Bucket-Object-Lock-Enabled"), "true") {
		on := true
		st.ObjectLock = &on // with versioning enabled
	}
	if acl := q.r.Header.Get("X-Amz-Acl"); acl == "public-read" || acl == "public-read-write" {
		doc, err := policy.SetPublicRead("", q.bucket, true)
		if err != nil {
			return err
		}
		st.Policy = &doc
	}
	if st != (nsclient.BucketSettings{}) {
		if _, err := q.ns.SetBucket(q.ctx, q.bucket, st); err != nil {
			return err
		}
	}
	s.forgetBucket(q.bucket)
	q.w.Header().Set("Location", "/"+q.bucket)
	q.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) setBucket(q *request, st nsclient.BucketSettings, status int) error {
	_, err := q.ns.SetBucket(q.ctx, q.bucket, st)
	s.forgetBucket(q.bucket)
	if err != nil {
		return bucketErr(q, err)
	}
	q.w.WriteHeader(status)
	return nil
}

// ACLs: only the canned private and public-read are kept, as the
// public-read statement of the bucket policy (policy.PublicRead).

type grant struct {
	Grantee struct {
		XMLNS string `xml:"xmlns:xsi,attr"`
		Type  string `xml:"xsi:type,attr"`
		ID    string `xml:"ID,omitempty"`
		URI   string `xml:"URI,omitempty"`
	} `xml:"Grantee"`
	Permission string `xml:"Permission"`
}

type accessControlPolicy struct {
	XMLName xml.Name `xml:"AccessControlPolicy"`
	NS      string   `xml:"xmlns,attr"`
	Owner   owner    `xml:"Owner"`
	Grants  []grant  `xml:"AccessControlList>Grant"`
}

const allUsers = "http://acs.amazonaws.com/groups/global/AllUsers"

func (s *Server) putACL(q *request) error {
	public := false
	switch acl := q.r.Header.Get("X-Amz-Acl"); acl {
	case "public-read", "public-read-write":
		public = true
	case "private", "":
		if acl == "" && q.r.ContentLength != 0 {
			var p struct {
				Grants []struct {
					URI        string `xml:"Grantee>URI"`
					Permission string `xml:"Permission"`
				} `xml:"AccessControlList>Grant"`
			}
			if err := readXML(q, &p); err != nil {
				return err
			}
			for _, g := range p.Grants {
				public = public || g.URI == allUsers && (g.Permission == "READ" || g.Permission == "FULL_CONTROL")
			}
		}
	default:
		return errInvalidArgument("unsupported canned ACL %q", acl)
	}
	b, err := q.ns.Bucket(q.ctx, q.bucket)
	if err != nil {
		return bucketErr(q, err)
	}
	doc, err := policy.SetPublicRead(b.Policy, q.bucket, public)
	if err != nil {
		return s3err("MalformedPolicy", http.StatusBadRequest, "The bucket's policy does not parse: %v", err)
	}
	off := false
	return s.setBucket(q, nsclient.BucketSettings{Public: &off, Policy: &doc}, http.StatusOK)
}

func (s *Server) getACL(q *request) error {
	bi, err := s.bucketInfo(q.ctx, q, q.bucket)
	if err != nil {
		return err
	}
	if !bi.exists {
		return errNoSuchBucket(q.bucket)
	}
	p := accessControlPolicy{NS: s3NS, Owner: s.owner()}
	var g grant
	g.Grantee.XMLNS, g.Grantee.Type, g.Grantee.ID, g.Permission = "http://www.w3.org/2001/XMLSchema-instance", "CanonicalUser", "depot", "FULL_CONTROL"
	p.Grants = append(p.Grants, g)
	if publicRead(bi, q.bucket) {
		var pg grant
		pg.Grantee.XMLNS, pg.Grantee.Type, pg.Grantee.URI, pg.Permission = "http://www.w3.org/2001/XMLSchema-instance", "Group", allUsers, "READ"
		p.Grants = append(p.Grants, pg)
	}
	s.writeXML(q, p)
	return nil
}

// Bucket policies are kept verbatim once they parse (internal/policy) and
// name only resources of their bucket. A put replaces the whole policy,
// the public-read statement and the legacy Public flag included.

func (s *Server) putPolicy(q *request) error {
	b, err := io.ReadAll(io.LimitReader(q.auth.Body(q.r), maxPolicySize+1))
	if err != nil {
		return err
	}
	if len(b) > maxPolicySize {
		return s3err("PolicyTooLarge", http.StatusBadRequest, "Policies must be at most 20 KiB")
	}
	if err := checkBucketPolicy(b, q.bucket); err != nil {
		return err
	}
	ps, off := string(b), false
	return s.setBucket(q, nsclient.BucketSettings{Policy: &ps, Public: &off}, http.StatusNoContent)
}

// maxPolicySize is the largest bucket policy, as on AWS.
const maxPolicySize = 20 << 10

func (s *Server) getPolicy(q *request) error {
	b, err := q.ns.Bucket(q.ctx, q.bucket)
	if err != nil {
		return bucketErr(q, err)
	}
	doc := b.Policy
	if b.Public { // the legacy flag, shown as what it means
		if doc, err = policy.SetPublicRead(doc, q.bucket, true); err != nil {
			doc = b.Policy
		}
	}
	if doc == "" {
		return s3err("NoSuchBucketPolicy", http.StatusNotFound, "The bucket policy does not exist")
	}
	q.w.Header().Set("Content-Type", "application/json")
	io.WriteString(q.w, doc)
	return nil
}

// Listing.

type listEntry struct {
	Key          string `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
	Owner        *owner `xml:"Owner,omitempty"`
	StorageClass string `xml:"StorageClass"`
}

type commonPrefix struct {
	Prefix string `xml:"Prefix"`
}

type listBucketResult struct {
	XMLName               xml.Name       `xml:"ListBucketResult"`
	NS                    string         `xml:"xmlns,attr"`
	Name                  string         `xml:"Name"`
	Prefix                string         `xml:"Prefix"`
	Marker                *string        `xml:"Marker,omitempty"`
	NextMarker            string         `xml:"NextMarker,omitempty"`
	ContinuationToken     string         `xml:"ContinuationToken,omitempty"`
	NextContinuationToken string         `xml:"NextContinuationToken,omitempty"`
	StartAfter            string         `xml:"StartAfter,omitempty"`
	KeyCount              *int           `xml:"KeyCount,omitempty"`
	MaxKeys               int            `xml:"MaxKeys"`
	Delimiter             string         `xml:"Delimiter,omitempty"`
	EncodingType          string         `xml:"EncodingType,omitempty"`
	IsTruncated           bool           `xml:"IsTruncated"`
	Contents              []listEntry    `xml:"Contents"`
	CommonPrefixes        []commonPrefix `xml:"CommonPrefixes"`
}

// encodeKey applies encoding-type=url: S3 encodes keys like a URL query
// value, with spaces as '+'.
func encodeKey(enc bool, k string) string {
	if !enc {
		return k
	}
	return url.QueryEscape(k)
}

// listParams reads what every listing takes: max-keys (at most
// MaxListKeys) and encoding-type.
func (s *Server) listParams(v url.Values) (maxKeys int, enc bool, err error) {
	maxKeys = s.cfg.MaxListKeys
	if mk := v.Get("max-keys"); mk != "" {
		n, err := strconv.Atoi(mk)
		if err != nil || n < 0 {
			return 0, false, errInvalidArgument("max-keys must be a non-negative integer")
		}
		maxKeys = min(n, s.cfg.MaxListKeys)
	}
	switch et := v.Get("encoding-type"); et {
	case "":
	case "url":
		enc = true
	default:
		return 0, false, errInvalidArgument("Invalid Encoding Method specified in Request: %q", et)
	}
	return maxKeys, enc, nil
}

func (s *Server) listObjects(q *request, v2 bool) error {
	v := q.r.URL.Query()
	maxKeys, enc, err := s.listParams(v)
	if err != nil {
		return err
	}
	res := listBucketResult{NS: s3NS, Name: q.bucket, Prefix: encodeKey(enc, v.Get("prefix")), MaxKeys: maxKeys,
		Delimiter: encodeKey(enc, v.Get("delimiter")), Contents: []listEntry{}}
	if enc {
		res.EncodingType = "url"
	}
	after := ""
	if v2 {
		res.StartAfter = encodeKey(enc, v.Get("start-after"))
		after = v.Get("start-after")
		if tok := v.Get("continuation-token"); tok != "" {
			b, err := base64.RawURLEncoding.DecodeString(tok)
			if err != nil {
				return errInvalidArgument("The continuation token provided is incorrect")
			}
			res.ContinuationToken = tok
			after = max(after, string(b))
		}
	} else {
		m := v.Get("marker")
		res.Marker = &m
		after = m
	}
	fetchOwner := !v2 || v.Get("fetch-owner") == "true"
	var page nsclient.ListResult
	if maxKeys > 0 {
		var err error
		page, err = q.ns.List(q.ctx, q.bucket, nsclient.ListOptions{Prefix: v.Get("prefix"), After: after,
			Delimiter: v.Get("delimiter"), Limit: maxKeys})
		if err != nil {
			return bucketErr(q, err)
		}
	} else if _, err := q.ns.Bucket(q.ctx, q.bucket); err != nil {
		return bucketErr(q, err)
	}
	for _, o := range page.Objects {
		e := listEntry{Key: encodeKey(enc, o.Key), LastModified: isoTime(o.Modified), ETag: quote(o.ETag),
			Size: o.Size, StorageClass: "STANDARD"}
		if fetchOwner {
			ow := s.owner()
			e.Owner = &ow
		}
		res.Contents = append(res.Contents, e)
	}
	for _, p := range page.Prefixes {
		res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: encodeKey(enc, p)})
	}
	res.IsTruncated = page.Truncated
	if page.Truncated {
		if v2 {
			res.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(page.Next))
		} else {
			res.NextMarker = encodeKey(enc, page.Next)
		}
	}
	if v2 {
		n := len(page.Objects) + len(page.Prefixes)
		res.KeyCount = &n
	}
	s.writeXML(q, res)
	return nil
}

func quote(etag string) string { return `"` + etag + `"` }
