// Package s3 serves the S3 REST API on the gateway's port: every request
// that is not /v1/, /healthz, /readyz or /metrics. Bucket and key come from
// the path ("/bucket/key", always) or, with Config.Domain, from a Host of
// "<bucket>.<Domain>". Keys are the decoded path, stored verbatim (never
// used as file paths): up to 1024 bytes of UTF-8, "..", "+", "%" and spaces
// included.
//
// # Authentication
//
// Package sigv4 verifies AWS Signature Version 4: the Authorization header
// (a hex x-amz-content-sha256, checked against the body as it streams, or
// UNSIGNED-PAYLOAD), presigned URLs (X-Amz-Expires enforced; V2 presigned
// URLs as aws-cli v1 makes them are accepted too) and aws-chunked bodies
// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER], every chunk signature
// checked; STREAMING-UNSIGNED-PAYLOAD-TRAILER with its CRC32, CRC32C,
// SHA1 or SHA256 trailer checked). x-amz-checksum-* headers are checked
// too. A request time more than 15 minutes off is RequestTimeTooSkewed.
// Secrets: the root pair from the gateway config, and the pairs kept in
// the nameserver (nsclient.User, `depot admin user add|rm|ls`), cached for
// Config.KeyCacheTTL. Unsigned requests may only GET or HEAD objects (and
// list) in a bucket whose Public flag is set (`depot admin bucket public`,
// the canned ACL public-read on CreateBucket or PutBucketAcl) or whose
// policy has a statement Allow, Principal "*" (or {"AWS":"*"}), Action
// s3:GetObject (or s3:*), Resource arn:aws:s3:::BUCKET/*.
//
// # Wire shapes
//
// Requests and answers are the XML documents of the AWS S3 API reference,
// in the namespace http://s3.amazonaws.com/doc/2006-03-01/, marshalled
// with encoding/xml: ListAllMyBucketsResult, LocationConstraint,
// ListBucketResult (v1 with Marker/NextMarker, v2 with
// ContinuationToken/NextContinuationToken/KeyCount/StartAfter),
// CopyObjectResult, CopyPartResult, Delete/DeleteResult,
// InitiateMultipartUploadResult, CompleteMultipartUpload(Result),
// ListPartsResult, ListMultipartUploadsResult, CORSConfiguration,
// AccessControlPolicy, VersioningConfiguration (always empty),
// ServerSideEncryptionConfiguration, and the
// Error document {Code, Message, Resource, RequestId, HostId}. Errors are
// mapped in one table (errors.go) from depot's and sigv4's sentinels; S3
// conditions that have no sentinel are *Error values made where they are
// found. A continuation token is the base64url (unpadded) of the last key
// or common prefix of the page: pages continue strictly after it, so a
// listing never repeats or skips a key while the bucket changes.
//
// # Objects
//
// An object is a depot.Object in the nameserver: Size, ETag (the hex MD5
// of the body, or for multipart the hex MD5 of the concatenated binary part
// MD5s followed by "-N"), ContentType, Modified and Segments. Meta holds
// user metadata under the lower-case header name ("x-amz-meta-color") and
// the headers Cache-Control, Content-Disposition, Content-Encoding,
// Content-Language, Expires and X-Amz-Website-Redirect-Location under their
// lower-case names. A PUT stores the body with client.Put (segments, no
// namespace entry), checks length, signature, checksums and Content-MD5,
// then commits the object with one nameserver PutObject, which switches the
// key atomically and queues the replaced segments for deletion. Any failure
// before the commit discards the new segments and leaves the old version
// in place. CopyObject copies bytes (objects never share segments, since
// deleting one deletes its segments).
//
// # Server-side encryption
//
// Objects are encrypted at rest when a write asks for it:
// x-amz-server-side-encryption: AES256 (SSE-S3) on PutObject, CopyObject
// and CreateMultipartUpload, or the bucket's default (PutBucketEncryption
// with SSEAlgorithm AES256, kept as nsclient.Bucket.Encryption;
// GetBucketEncryption answers ServerSideEncryptionConfigurationNotFoundError
// without one; aws:kms is NotImplemented); or the SSE-C headers
// x-amz-server-side-encryption-customer-algorithm (AES256), -key (base64
// of 32 bytes) and -key-MD5 (required, checked), which then must come with
// every GET, HEAD and UploadPart of the object, and as
// x-amz-copy-source-server-side-encryption-customer-* on copies from it. A
// missing SSE-C key is 400 InvalidRequest, a wrong one 403 AccessDenied,
// an SSE-C key for an object that has none 400 InvalidRequest; SSE-C
// keys are refused on plain HTTP unless Config.SSECOverHTTP. Package sse
// owns the format (chunked AES-256-GCM, per-stream data keys sealed by a
// master key of Config.Keyring or by the customer key, of which only a
// salted HMAC is kept); depot.Object.Encryption records it, one stream per
// PUT or copy and one per multipart part (nsclient.Part.Stream). Size,
// PartSizes, HEAD and listings count plaintext bytes. ETags: the hex MD5 of
// the plaintext (as for plain objects) under SSE-S3; under SSE-C the hex
// MD5 of the stored ciphertext, which changes with every write and says
// nothing of the plaintext (multipart ETags are built from these part ETags
// as usual). Responses carry x-amz-server-side-encryption: AES256, or
// x-amz-server-side-encryption-customer-algorithm and -key-MD5 (the MD5 the
// request sent). Copies open and seal again under new data keys.
//
// # Multipart uploads
//
// The nameserver keeps uploads (nsclient.Upload: bucket, key, id — 32 hex
// digits chosen by the gateway — initiated, content type, metadata) and
// their parts (nsclient.Part: number, ETag, size, segments). UploadPart
// stores its body as segments and records the part, queueing the segments
// of a replaced part for deletion. CompleteMultipartUpload checks the list
// (ascending numbers: InvalidPartOrder; known parts with matching ETags:
// InvalidPart; every part but the last at least Config.MinPartSize:
// EntityTooSmall), then one nameserver command builds the object from the
// parts' segments in order (no data is copied; PartSizes keeps the part
// sizes for GET ?partNumber), switches the key, drops the upload and
// queues the segments of parts left out for deletion. Abort drops the upload
// and queues all its segments. A janitor in each gateway aborts uploads
// older than Config.UploadMaxAge every Config.JanitorInterval.
package s3
