package s3

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"depot"
	"depot/internal/policy"
)

// Authorisation: every request is mapped to one IAM action and resource
// (opFor, ops.go), then decided by the caller's identity policy, the bucket's
// policy and the bucket's owner (authorize); see doc.go.

// Actions that the request handlers check themselves, beyond the one of
// the request: the copy source (s3:GetObject) and each key of a
// multi-object delete (s3:DeleteObject).
const (
	actGetObject    = "s3:GetObject"
	actDeleteObject = "s3:DeleteObject"
	perKey          = "per-key" // POST ?delete: decided key by key
)

// responseOverrides are the query parameters of GetObject that set a
// header of the answer.
var responseOverrides = []string{"response-content-type", "response-content-language", "response-expires",
	"response-cache-control", "response-content-disposition", "response-content-encoding"}

// hasResponseOverride reports whether a request names a response header
// override, whatever its value (an empty one too, as S3).
func hasResponseOverride(r *http.Request) bool {
	v := r.URL.Query()
	return slices.ContainsFunc(responseOverrides, v.Has)
}

// principal returns the caller's access key: "" when anonymous.
func (q *request) principal() string {
	if q.auth == nil {
		return ""
	}
	return q.auth.AccessKey
}

func (s *Server) isRoot(q *request) bool {
	return q.auth != nil && q.auth.AccessKey == s.cfg.RootUser
}

// conditionKeys returns the condition keys of a request: aws:SourceIp
// always, and s3:prefix, s3:delimiter and s3:max-keys of a listing when
// the query has them.
func conditionKeys(r *http.Request, action string) map[string]string {
	m := map[string]string{}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		m["aws:sourceip"] = host
	}
	if action == "s3:ListBucket" {
		v := r.URL.Query()
		for _, k := range []string{"prefix", "delimiter", "max-keys"} {
			if v.Has(k) {
				m["s3:"+k] = v.Get(k)
			}
		}
	}
	return m
}

// authorizeRequest decides the request's own operation.
// versionActions maps an object action to the one AWS checks when the
// request names a version (?versionId).
var versionActions = map[string]string{
	actGetObject:             "s3:GetObjectVersion",
	actDeleteObject:          "s3:DeleteObjectVersion",
	"s3:GetObjectTagging":    "s3:GetObjectVersionTagging",
	"s3:PutObjectTagging":    "s3:PutObjectVersionTagging",
	"s3:DeleteObjectTagging": "s3:DeleteObjectVersionTagging",
	"s3:GetObjectAttributes": "s3:GetObjectVersionAttributes",
	"s3:GetObjectAcl":        "s3:GetObjectVersionAcl",
	"s3:PutObjectAcl":        "s3:PutObjectVersionAcl",
}

func (s *Server) authorizeRequest(q *request) error {
	if s.isRoot(q) {
		return nil
	}
	action := q.op.action
	if q.key != "" && q.r.URL.Query().Get("versionId") != "" {
		// An operation on a named version is its own IAM action, so that
		// a policy can allow deletes (markers) and deny deleting or
		// reading history.
		if va, ok := versionActions[action]; ok {
			action = va
		}
	}
	if q.auth == nil && action == actGetObject && hasResponseOverride(q.r) {
		// As S3: an anonymous reader may not make the gateway answer
		// with headers of its choosing (a public image served as
		// text/html is a page on the shop's origin).
		return s3err("InvalidRequest", http.StatusBadRequest, "Request specific response headers cannot be used for anonymous GET requests.")
	}
	switch {
	case action == perKey || action == "s3:ListAllMyBuckets":
		// Decided by the handler: key by key, or which buckets to list.
		if q.auth == nil {
			return errAccessDenied()
		}
		return nil
	case action == "":
		return errAccessDenied()
	}
	return s.authorize(q, action, q.bucket, q.key)
}

// authorize returns AccessDenied unless the caller may do action on the
// bucket (key "") or object: the root may do anything; otherwise an
// explicit Deny in the user's or the bucket's policy refuses, and an Allow
// in either, or owning the bucket, admits. Anonymous callers have only the
// bucket policy.
func (s *Server) authorize(q *request, action, bucket, key string) error {
	if s.isRoot(q) {
		return nil
	}
	ok, err := s.allowed(q, action, bucket, key)
	if err != nil {
		return err
	}
	if !ok {
		return errAccessDenied()
	}
	return nil
}

func (s *Server) allowed(q *request, action, bucket, key string) (bool, error) {
	if s.isRoot(q) {
		return true, nil
	}
	who := q.principal()
	req := policy.Request{Principal: who, Action: action, Resource: policy.ARN(bucket, key), Context: conditionKeys(q.r, action)}
	if bucket == "" {
		req.Resource = "arn:aws:s3:::*"
	}
	var identity, bucketDec, owner policy.Decision
	if who != "" {
		u, err := s.user(q.ctx, who)
		if err != nil {
			return false, err
		}
		identity = u.policy.Evaluate(req)
	}
	if bucket != "" {
		bi, err := s.bucketInfo(q.ctx, q, bucket)
		if err != nil {
			return false, err
		}
		bucketDec = bi.policy.Evaluate(req)
		if bi.public && bucketDec == policy.NotApplicable && action == actGetObject && key != "" {
			bucketDec = policy.Allowed // the legacy Public flag: public-read
		}
		if who != "" && bi.exists && bi.owner == who {
			owner = policy.Allowed
		}
	}
	return policy.Combine(identity, bucketDec, owner) == policy.Allowed, nil
}

// bucketInfo is what authorisation needs of a bucket, cached for
// Config.KeyCacheTTL.
type bucketInfo struct {
	exists bool
	owner  string
	public bool // the legacy Public flag, read as the public-read statement
	policy *policy.Document
	// encryption is the bucket's default server-side encryption.
	encryption string
	// versioning is the bucket's versioning state ("" never versioned).
	versioning string
	// objectLock reports S3 Object Lock enabled on the bucket.
	objectLock bool
}

func (s *Server) bucketInfo(ctx context.Context, q *request, name string) (bucketInfo, error) {
	s.keyMu.Lock()
	bi, ok := s.buckets[name]
	s.keyMu.Unlock()
	if ok && s.cfg.Now().Sub(bi.at) < s.cfg.KeyCacheTTL {
		return bi.bucketInfo, nil
	}
	b, err := q.ns.Bucket(ctx, name)
	var info bucketInfo
	switch {
	case errors.Is(err, depot.ErrNotFound):
	case err != nil:
		return info, err
	default:
		info = bucketInfo{exists: true, owner: b.Owner, public: b.Public, encryption: b.Encryption, versioning: b.Versioning,
			objectLock: b.ObjectLock}
		if b.Policy != "" {
			d, err := policy.ParseStored([]byte(b.Policy), policy.Bucket)
			if err != nil {
				// Kept before policies were checked: it grants nothing.
				s.cfg.Logger.Warn("s3: bucket policy does not parse; ignored", "bucket", name, "err", err)
			}
			info.policy = d
		}
	}
	s.keyMu.Lock()
	if len(s.buckets) > maxCached {
		clear(s.buckets)
	}
	s.buckets[name] = cachedBucket{bucketInfo: info, at: s.cfg.Now()}
	s.keyMu.Unlock()
	return info, nil
}

// forgetBucket drops a bucket from the cache after this gateway changed it.
func (s *Server) forgetBucket(name string) {
	s.keyMu.Lock()
	delete(s.buckets, name)
	s.keyMu.Unlock()
}

type cachedBucket struct {
	bucketInfo
	at time.Time
}

// maxCached bounds the access key and bucket caches.
const maxCached = 10000

// ownerFor returns the owner to record for a bucket the caller creates:
// "" (the root) or the caller's access key.
func (s *Server) ownerFor(q *request) string {
	if s.isRoot(q) {
		return ""
	}
	return q.principal()
}

// publicRead reports whether anonymous callers may read every object of a
// bucket, for GetBucketAcl.
func publicRead(bi bucketInfo, bucket string) bool {
	return bi.public || bi.policy.Evaluate(policy.Request{Action: actGetObject, Resource: policy.ARN(bucket, "*")}) == policy.Allowed
}

// checkBucketPolicy parses a bucket policy put for bucket: it must be a
// valid document whose resources lie in the bucket.
func checkBucketPolicy(doc []byte, bucket string) error {
	d, err := policy.Parse(doc, policy.Bucket)
	if err != nil {
		return s3err("MalformedPolicy", http.StatusBadRequest, "%v", err)
	}
	arn := policy.ARN(bucket, "")
	for _, st := range d.Statement {
		for _, r := range st.Resource {
			if r != arn && !strings.HasPrefix(r, arn+"/") {
				return s3err("MalformedPolicy", http.StatusBadRequest, "Policy has invalid resource: %q is not in bucket %s", r, bucket)
			}
		}
	}
	return nil
}
