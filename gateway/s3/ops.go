package s3

import (
	"encoding/xml"
	"errors"
	"net/http"
	"slices"

	"depot"
	"depot/nameserver/nsclient"
)

// An op is one S3 operation as the gateway recognises it: the IAM action it
// is authorised as ("" when the request is no S3 operation, perKey for a
// multi-object delete) and the handler that runs it (nil: MethodNotAllowed).
//
// opFor is the one place that maps a request to its op: authorizeRequest
// decides op.action and serve runs op.run, so a request is never
// authorised as one operation and run as another. (Two orderings used to
// disagree: PUT ?versioning&encryption was authorised as
// s3:PutBucketVersioning and ran PutBucketEncryption.)
type op struct {
	action string
	run    func(*Server, *request) error
}

// opRule matches a request whose method is method, whose query has one of
// any (every request of the method when any is empty) and, when header is
// set, which carries that header. The first rule that matches wins.
type opRule struct {
	method string
	any    []string
	header string
	op
}

func (r opRule) matches(req *http.Request) bool {
	if req.Method != r.method || (r.header != "" && req.Header.Get(r.header) == "") {
		return false
	}
	if len(r.any) == 0 {
		return true
	}
	v := req.URL.Query()
	return slices.ContainsFunc(r.any, v.Has)
}

var serviceRules = []opRule{
	{method: http.MethodGet, op: op{"s3:ListAllMyBuckets", (*Server).listBuckets}},
}

var bucketRules = []opRule{
	{http.MethodPut, []string{"cors"}, "", op{"s3:PutBucketCORS", (*Server).putCORS}},
	{http.MethodPut, []string{"policy"}, "", op{"s3:PutBucketPolicy", (*Server).putPolicy}},
	{http.MethodPut, []string{"acl"}, "", op{"s3:PutBucketAcl", (*Server).putACL}},
	{http.MethodPut, []string{"encryption"}, "", op{"s3:PutEncryptionConfiguration", (*Server).putBucketEncryption}},
	{http.MethodPut, []string{"versioning"}, "", op{"s3:PutBucketVersioning", (*Server).putVersioning}},
	{http.MethodPut, []string{"tagging"}, "", op{"s3:PutBucketTagging", (*Server).putBucketTagging}},
	{http.MethodPut, []string{"object-lock"}, "", op{"s3:PutBucketObjectLockConfiguration", (*Server).putObjectLockConfiguration}},
	{http.MethodPut, []string{"lifecycle"}, "", op{"s3:PutLifecycleConfiguration", (*Server).putLifecycle}},
	{http.MethodPut, nil, "", op{"s3:CreateBucket", (*Server).createBucket}},
	{http.MethodHead, nil, "", op{"s3:ListBucket", (*Server).headBucket}},
	// As on AWS, no DeleteBucketCORS nor DeleteEncryptionConfiguration
	// action exists: the Put action covers the delete.
	{http.MethodDelete, []string{"cors"}, "", op{"s3:PutBucketCORS", (*Server).deleteCORS}},
	{http.MethodDelete, []string{"policy"}, "", op{"s3:DeleteBucketPolicy", (*Server).deletePolicy}},
	// As on AWS, PutLifecycleConfiguration covers the delete.
	{http.MethodDelete, []string{"lifecycle"}, "", op{"s3:PutLifecycleConfiguration", (*Server).deleteLifecycle}},
	// As on AWS, PutBucketTagging covers the delete too.
	{http.MethodDelete, []string{"tagging"}, "", op{"s3:PutBucketTagging", (*Server).deleteBucketTagging}},
	{http.MethodDelete, []string{"encryption"}, "", op{"s3:PutEncryptionConfiguration", (*Server).deleteBucketEncryption}},
	{http.MethodDelete, nil, "", op{"s3:DeleteBucket", (*Server).deleteBucket}},
	{http.MethodPost, []string{"delete"}, "", op{perKey, (*Server).deleteObjects}},
	{http.MethodGet, []string{"location"}, "", op{"s3:GetBucketLocation", (*Server).getLocation}},
	{http.MethodGet, []string{"cors"}, "", op{"s3:GetBucketCORS", (*Server).getCORS}},
	{http.MethodGet, []string{"policy"}, "", op{"s3:GetBucketPolicy", (*Server).getPolicy}},
	{http.MethodGet, []string{"acl"}, "", op{"s3:GetBucketAcl", (*Server).getACL}},
	{http.MethodGet, []string{"encryption"}, "", op{"s3:GetEncryptionConfiguration", (*Server).getBucketEncryption}},
	{http.MethodGet, []string{"versioning"}, "", op{"s3:GetBucketVersioning", (*Server).getVersioning}},
	{http.MethodGet, []string{"tagging"}, "", op{"s3:GetBucketTagging", (*Server).getBucketTagging}},
	{http.MethodGet, []string{"object-lock"}, "", op{"s3:GetBucketObjectLockConfiguration", (*Server).getObjectLockConfiguration}},
	{http.MethodGet, []string{"lifecycle"}, "", op{"s3:GetLifecycleConfiguration", (*Server).getLifecycle}},
	{http.MethodGet, []string{"uploads"}, "", op{"s3:ListBucketMultipartUploads", (*Server).listUploads}},
	{http.MethodGet, []string{"versions"}, "", op{"s3:ListBucketVersions", (*Server).listObjectVersions}},
	{http.MethodGet, nil, "", op{"s3:ListBucket", func(s *Server, q *request) error {
		return s.listObjects(q, q.r.URL.Query().Get("list-type") == "2")
	}}},
}

var objectRules = []opRule{
	{http.MethodGet, []string{"uploadId"}, "", op{"s3:ListMultipartUploadParts", (*Server).listParts}},
	{http.MethodGet, []string{"acl"}, "", op{"s3:GetObjectAcl", (*Server).getACL}},
	{http.MethodGet, []string{"tagging"}, "", op{"s3:GetObjectTagging", (*Server).getObjectTagging}},
	{http.MethodGet, []string{"attributes"}, "", op{"s3:GetObjectAttributes", (*Server).getObjectAttributes}},
	{http.MethodGet, []string{"retention"}, "", op{"s3:GetObjectRetention", (*Server).getObjectRetention}},
	{http.MethodGet, []string{"legal-hold"}, "", op{"s3:GetObjectLegalHold", (*Server).getObjectLegalHold}},
	{http.MethodGet, nil, "", op{actGetObject, func(s *Server, q *request) error { return s.getObject(q, false) }}},
	{http.MethodHead, nil, "", op{actGetObject, func(s *Server, q *request) error { return s.getObject(q, true) }}},
	{http.MethodPut, []string{"uploadId", "partNumber"}, "", op{"s3:PutObject", (*Server).uploadPart}}, // and UploadPartCopy
	{http.MethodPut, []string{"acl"}, "", op{"s3:PutObjectAcl", (*Server).putObjectACL}},
	{http.MethodPut, []string{"tagging"}, "", op{"s3:PutObjectTagging", (*Server).putObjectTagging}},
	{http.MethodPut, []string{"retention"}, "", op{"s3:PutObjectRetention", (*Server).putObjectRetention}},
	{http.MethodPut, []string{"legal-hold"}, "", op{"s3:PutObjectLegalHold", (*Server).putObjectLegalHold}},
	{http.MethodPut, nil, "X-Amz-Copy-Source", op{"s3:PutObject", (*Server).copyObject}},
	{http.MethodPut, nil, "", op{"s3:PutObject", (*Server).putObject}},
	{http.MethodDelete, []string{"uploadId"}, "", op{"s3:AbortMultipartUpload", (*Server).abortUpload}},
	{http.MethodDelete, []string{"tagging"}, "", op{"s3:DeleteObjectTagging", (*Server).deleteObjectTagging}},
	{http.MethodDelete, nil, "", op{actDeleteObject, (*Server).deleteObject}},
	{http.MethodPost, []string{"uploads"}, "", op{"s3:PutObject", (*Server).createUpload}},
	{http.MethodPost, []string{"uploadId"}, "", op{"s3:PutObject", (*Server).completeUpload}},
}

// opFor returns the operation of a request on the service (bucket ""), a
// bucket (key "") or an object; the zero op when none matches.
func opFor(r *http.Request, bucket, key string) op {
	rules := objectRules
	switch {
	case bucket == "":
		rules = serviceRules
	case key == "":
		rules = bucketRules
	}
	for _, rule := range rules {
		if rule.matches(r) {
			return rule.op
		}
	}
	return op{}
}

// dispatch runs the request's operation.
func (s *Server) dispatch(q *request) error {
	if q.op.run == nil {
		return s3err("MethodNotAllowed", http.StatusMethodNotAllowed, "The specified method is not allowed against this resource.")
	}
	return q.op.run(s, q)
}

func (s *Server) headBucket(q *request) error {
	if _, err := q.ns.Bucket(q.ctx, q.bucket); err != nil {
		return bucketErr(q, err)
	}
	q.w.Header().Set("x-amz-bucket-region", s.cfg.Region)
	q.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) deleteCORS(q *request) error {
	return s.setBucket(q, nsclient.BucketSettings{CORS: new(string)}, http.StatusNoContent)
}

func (s *Server) deletePolicy(q *request) error {
	off := false
	return s.setBucket(q, nsclient.BucketSettings{Policy: new(string), Public: &off}, http.StatusNoContent)
}

func (s *Server) deleteBucketEncryption(q *request) error {
	return s.setBucket(q, nsclient.BucketSettings{Encryption: new(string)}, http.StatusNoContent)
}

func (s *Server) deleteBucket(q *request) error {
	err := q.ns.DeleteBucket(q.ctx, q.bucket)
	s.forgetBucket(q.bucket)
	if err != nil {
		if errors.Is(err, depot.ErrNotEmpty) {
			return s3err("BucketNotEmpty", http.StatusConflict, "The bucket you tried to delete is not empty")
		}
		return bucketErr(q, err)
	}
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) getLocation(q *request) error {
	if _, err := q.ns.Bucket(q.ctx, q.bucket); err != nil {
		return bucketErr(q, err)
	}
	loc := s.cfg.Region
	if loc == "us-east-1" {
		loc = ""
	}
	s.writeXML(q, struct {
		XMLName xml.Name `xml:"LocationConstraint"`
		NS      string   `xml:"xmlns,attr"`
		Value   string   `xml:",chardata"`
	}{NS: s3NS, Value: loc})
	return nil
}

// putObjectACL answers PUT ?acl on an object: object ACLs are not kept,
// the bucket's decide.
func (s *Server) putObjectACL(q *request) error {
	if _, err := s.getMeta(q, q.bucket, q.key); err != nil {
		return err
	}
	q.w.WriteHeader(http.StatusOK)
	return nil
}
