package nsclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"depot"
)

// This file holds the namespace records the S3 gateway needs beside
// buckets and keys: access keys, bucket settings and multipart uploads.

// User is an S3 access key pair. The secret is kept as given: SigV4 needs
// it to recompute signatures.
type User struct {
	AccessKey string    `json:"access_key"`
	Secret    string    `json:"secret"`
	Created   time.Time `json:"created,omitzero"`
	// Policy is the user's identity policy, IAM JSON (package
	// internal/policy), as last set; "" grants nothing.
	Policy string `json:"policy,omitempty"`
}

// UserList is the answer to GET /users.
type UserList struct {
	Users []User `json:"users"`
}

// BucketSettings is the body of POST /buckets/{bucket}/settings. Nil fields
// are left as they are; an empty string clears.
type BucketSettings struct {
	Public *bool   `json:"public,omitempty"`
	CORS   *string `json:"cors,omitempty"`
	Policy *string `json:"policy,omitempty"`
	// Encryption sets the default server-side encryption ("AES256").
	Encryption *string `json:"encryption,omitempty"`
	// Owner is the access key that owns the bucket; "" is the root.
	Owner *string `json:"owner,omitempty"`
	// Tags is the bucket's tag set in the x-amz-tagging form
	// (URL-encoded key=value pairs joined by "&").
	Tags *string `json:"tags,omitempty"`
	// Versioning sets the S3 versioning state: VersioningEnabled or
	// VersioningSuspended (a bucket never goes back to unversioned).
	Versioning *string `json:"versioning,omitempty"`
	// ObjectLock, true, enables S3 Object Lock for good (and versioning
	// with it); false is refused.
	ObjectLock *bool `json:"object_lock,omitempty"`
	// DefaultRetention sets the default retention of a bucket with Object
	// Lock; an empty Mode removes it.
	DefaultRetention *DefaultRetention `json:"default_retention,omitempty"`
	// Lifecycle replaces the bucket's lifecycle rules; an empty list
	// removes them.
	Lifecycle *[]LifecycleRule `json:"lifecycle,omitempty"`
}

// LockRequest is the body of POST /lock/{bucket}?key=K&version=V: it
// changes the Object Lock of one version (S3's PutObjectRetention and
// PutObjectLegalHold). A nil field is left as it is.
type LockRequest struct {
	// Retention sets the mode and date (an empty Mode removes them).
	Retention *depot.ObjectLock `json:"retention,omitempty"`
	LegalHold *bool             `json:"legal_hold,omitempty"`
	// Bypass allows shortening or removing a GOVERNANCE retention (the
	// caller was authorised for s3:BypassGovernanceRetention).
	Bypass bool `json:"bypass,omitempty"`
}

// Upload is a multipart upload in progress. Bucket, Key and ID name it;
// ContentType and Meta become the completed object's. Encryption, when set,
// is how every part is encrypted (its Mode and KeyCheck; no streams).
type Upload struct {
	Bucket      string            `json:"bucket"`
	Key         string            `json:"key"`
	ID          string            `json:"id"`
	Initiated   time.Time         `json:"initiated,omitzero"`
	ContentType string            `json:"content_type,omitempty"`
	Meta        map[string]string `json:"meta,omitempty"`
	Encryption  *depot.Encryption `json:"encryption,omitempty"`
	// Lock is the completed object's Object Lock, as the create asked.
	Lock *depot.ObjectLock `json:"lock,omitempty"`
}

// Part is one uploaded part of a multipart upload. Size counts the part's
// own bytes; when Stream is set, the part is encrypted and its segments hold
// Stream.StoredSize() bytes.
type Part struct {
	Number   int             `json:"number"`
	ETag     string          `json:"etag"`
	Size     int64           `json:"size"`
	Segments []depot.Segment `json:"segments"`
	Modified time.Time       `json:"modified,omitzero"`
	Stream   *depot.Stream   `json:"stream,omitempty"`
}

// UploadInfo is the answer to GET /uploads/{bucket}?key=K&id=I: the upload
// and its parts in part-number order.
type UploadInfo struct {
	Upload Upload `json:"upload"`
	Parts  []Part `json:"parts"`
}

// UploadListOptions selects uploads for GET /uploadlist/{bucket}.
type UploadListOptions struct {
	Prefix   string
	AfterKey string // uploads of keys greater than AfterKey, or of AfterKey with ids after AfterID
	AfterID  string
	Limit    int // 0 means 1000
}

// UploadList is one page of uploads, by key then id.
type UploadList struct {
	Uploads   []Upload `json:"uploads"`
	Truncated bool     `json:"truncated"`
}

// CompletePart names one part of a completion and the ETag the caller saw.
type CompletePart struct {
	Number int    `json:"number"`
	ETag   string `json:"etag"`
}

// CompleteRequest is the body of POST /complete/{bucket}?key=K&id=I. The
// completed object is the concatenation of the named parts' segments, with
// the given ETag; an encrypted upload's object takes its mode and key check
// from the upload and one stream per part from the part records. The parts
// not named are queued for deletion.
type CompleteRequest struct {
	Parts []CompletePart `json:"parts"`
	ETag  string         `json:"etag"`
	// Encryption is ignored: the part records are the truth. Older
	// gateways send it.
	Encryption *depot.Encryption `json:"encryption,omitempty"`
	// Precondition, when set, makes the completion conditional on the
	// key's current object, as for PutObject: a refusal (depot.ErrPrecondition,
	// or depot.ErrNotFound for IfMatch on a missing key) leaves the upload
	// in place.
	Precondition *depot.Precondition `json:"precondition,omitempty"`
}

// PutUser adds or replaces an access key.
func (c *Client) PutUser(ctx context.Context, u User) error {
	return c.do(ctx, http.MethodPut, "/users", nil, u, nil)
}

// User returns an access key, or an error wrapping depot.ErrNotFound.
func (c *Client) User(ctx context.Context, accessKey string) (User, error) {
	var u User
	err := c.do(ctx, http.MethodGet, "/users/"+url.PathEscape(accessKey), nil, nil, &u)
	return u, err
}

// Users returns every access key.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	var l UserList
	err := c.do(ctx, http.MethodGet, "/users", nil, nil, &l)
	return l.Users, err
}

// DeleteUser removes an access key; depot.ErrNotFound when absent.
func (c *Client) DeleteUser(ctx context.Context, accessKey string) error {
	return c.do(ctx, http.MethodDelete, "/users/"+url.PathEscape(accessKey), nil, nil, nil)
}

// SetUserPolicy replaces the identity policy of an access key ("" removes
// it). It fails with depot.ErrNotFound for an unknown key and
// depot.ErrBadRequest for a policy that does not parse.
func (c *Client) SetUserPolicy(ctx context.Context, accessKey, policy string) error {
	return c.do(ctx, http.MethodPut, "/users/"+url.PathEscape(accessKey)+"/policy", nil, UserPolicy{Policy: policy}, nil)
}

// UserPolicy is the body of PUT /users/{key}/policy.
type UserPolicy struct {
	Policy string `json:"policy"`
}

// SetBucket changes a bucket's settings and returns the bucket.
func (c *Client) SetBucket(ctx context.Context, name string, s BucketSettings) (Bucket, error) {
	var b Bucket
	err := c.do(ctx, http.MethodPost, "/buckets/"+url.PathEscape(name)+"/settings", nil, s, &b)
	return b, err
}

func uploadQuery(key, id string) url.Values { return url.Values{"key": {key}, "id": {id}} }

// CreateUpload records a new multipart upload (u.ID chosen by the caller).
// It fails with depot.ErrNotFound when the bucket does not exist.
func (c *Client) CreateUpload(ctx context.Context, u Upload) (Upload, error) {
	var out Upload
	err := c.do(ctx, http.MethodPost, "/uploads", nil, u, &out)
	return out, err
}

// Upload returns an upload and its parts, or depot.ErrNotFound.
func (c *Client) Upload(ctx context.Context, bucket, key, id string) (UploadInfo, error) {
	var out UploadInfo
	err := c.do(ctx, http.MethodGet, "/uploads/"+url.PathEscape(bucket), uploadQuery(key, id), nil, &out)
	return out, err
}

// Uploads lists uploads of a bucket by key, then id.
func (c *Client) Uploads(ctx context.Context, bucket string, o UploadListOptions) (UploadList, error) {
	q := url.Values{}
	if o.Prefix != "" {
		q.Set("prefix", o.Prefix)
	}
	if o.AfterKey != "" {
		q.Set("after_key", o.AfterKey)
	}
	if o.AfterID != "" {
		q.Set("after_id", o.AfterID)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	var out UploadList
	err := c.do(ctx, http.MethodGet, "/uploadlist/"+url.PathEscape(bucket), q, nil, &out)
	return out, err
}

// PutPart records a part, replacing a part of the same number; the
// replaced part's segments are returned, already queued for deletion.
func (c *Client) PutPart(ctx context.Context, bucket, key, id string, p Part) ([]depot.Segment, error) {
	var r PutResult
	err := c.do(ctx, http.MethodPut, "/parts/"+url.PathEscape(bucket), uploadQuery(key, id), p, &r)
	return r.Replaced, err
}

// CompleteUpload switches the key to the concatenation of the named parts
// and removes the upload. It fails with depot.ErrNotFound (no upload) or
// depot.ErrBadRequest (a part missing or with another ETag).
func (c *Client) CompleteUpload(ctx context.Context, bucket, key, id string, req CompleteRequest) (PutResult, error) {
	var r PutResult
	err := c.do(ctx, http.MethodPost, "/complete/"+url.PathEscape(bucket), uploadQuery(key, id), req, &r)
	return r, err
}

// AbortUpload removes an upload and queues its parts for deletion.
func (c *Client) AbortUpload(ctx context.Context, bucket, key, id string) error {
	return c.do(ctx, http.MethodDelete, "/uploads/"+url.PathEscape(bucket), uploadQuery(key, id), nil, nil)
}

// CompletedUpload is what the nameserver remembers of a multipart upload
// that completed (for RequestRetention): the answer to a repeated
// CompleteMultipartUpload whose first answer was lost. Completed is the
// completed object's Modified time.
type CompletedUpload struct {
	Bucket    string         `json:"bucket"`
	Key       string         `json:"key"`
	ID        string         `json:"id"`
	ETag      string         `json:"etag"`
	Parts     []CompletePart `json:"parts"`
	Completed time.Time      `json:"completed"`
}

// CompletedUpload returns the record of an upload that completed lately,
// or depot.ErrNotFound.
func (c *Client) CompletedUpload(ctx context.Context, bucket, key, id string) (CompletedUpload, error) {
	var out CompletedUpload
	err := c.do(ctx, http.MethodGet, "/completed/"+url.PathEscape(bucket), uploadQuery(key, id), nil, &out)
	return out, err
}
