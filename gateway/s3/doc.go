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
// Every x-amz-* header of a request must be covered by its signature
// (SignedHeaders or X-Amz-SignedHeaders; x-amz-content-sha256 is exempt
// on presigned URLs only, V2 signs them all), else 403 AccessDenied with
// HeadersNotSigned, as on S3: the holder of a presigned PUT cannot add
// X-Amz-Copy-Source, metadata or encryption headers.
// Secrets: the root pair from the gateway config, and the pairs kept in
// the nameserver (nsclient.User, `depot admin user add|rm|ls`), cached with
// their policies for Config.KeyCacheTTL; a key the nameserver does not
// know is remembered as unknown for Config.UnknownKeyTTL (1s), so a flood
// of requests with a bad key asks the nameserver about once a second.
//
// # Authorisation
//
// Every request is one IAM action on one resource, and the table in
// ops.go (opFor) gives both that action and the handler that runs, so a
// request is authorised as exactly what it does:
// s3:ListAllMyBuckets; on arn:aws:s3:::BUCKET s3:CreateBucket,
// s3:DeleteBucket, s3:ListBucket (ListObjects v1 and v2, HeadBucket),
// s3:ListBucketMultipartUploads, s3:GetBucketLocation,
// s3:Get/PutBucketPolicy, s3:DeleteBucketPolicy, s3:Get/PutBucketAcl,
// s3:Get/PutBucketCORS (DeleteBucketCors too, as on AWS) and
// s3:Get/PutBucketVersioning, s3:ListBucketVersions,
// s3:Get/PutBucketTagging (DeleteBucketTagging too); on
// arn:aws:s3:::BUCKET/KEY s3:GetObject (GET,
// HEAD, and the source of CopyObject and UploadPartCopy), s3:PutObject
// (PutObject, CopyObject, Create/CompleteMultipartUpload, UploadPart),
// s3:DeleteObject (DeleteObject, and each key of DeleteObjects, which
// answers AccessDenied for the keys refused), s3:AbortMultipartUpload,
// s3:ListMultipartUploadParts, s3:Get/PutObjectAcl,
// s3:Get/Put/DeleteObjectTagging, s3:GetObjectAttributes,
// s3:Get/PutObjectRetention, s3:Get/PutObjectLegalHold,
// s3:BypassGovernanceRetention; on the bucket also
// s3:Get/PutBucketObjectLockConfiguration and
// s3:Get/PutLifecycleConfiguration. Condition keys:
// aws:SourceIp always; s3:prefix, s3:delimiter and s3:max-keys on
// s3:ListBucket when the query has them. As S3, an anonymous GetObject
// with a response-* header override is InvalidRequest.
//
// The root key may do anything. For any other caller the decision combines
// (internal/policy.Combine) the user's identity policy (nsclient.User.Policy,
// `depot admin user policy set`), the bucket's policy (PutBucketPolicy;
// principals are access keys, see internal/policy) and ownership: a bucket
// created by a user records that access key as its Owner (nsclient.Bucket;
// "" for the root and for buckets made before owners were kept) and its
// owner is allowed everything in it. An explicit Deny in either policy
// wins over everything but the root; otherwise an Allow from either policy,
// or owning the bucket, admits; otherwise AccessDenied (403). So another
// user's bucket is closed unless a policy opens it. ListBuckets without
// s3:ListAllMyBuckets lists the caller's own buckets. Anonymous requests
// have only the bucket policy (statements with Principal "*").
//
// Public-read is a bucket policy statement (Sid "DepotPublicRead": Allow,
// Principal "*", s3:GetObject, arn:aws:s3:::BUCKET/*), written by `depot
// admin bucket public`, by the canned ACL public-read on CreateBucket or
// PutBucketAcl, and removed by `depot admin bucket private`, the canned ACL
// private or DeleteBucketPolicy. It allows reading objects, not listing
// them. The Public flag of buckets made public before reads as the same
// statement; PutBucketPolicy and DeleteBucketPolicy clear it. A bucket
// policy must parse and name only resources of its bucket (else
// MalformedPolicy), and is at most 20 KiB (PolicyTooLarge).
//
// # Limits
//
// Config bounds each request, with AWS's values by default: the header
// section (MaxHeaderBytes, RequestHeaderSectionTooLarge), a PUT or part
// body (MaxObjectSize, EntityTooLarge, decided from the declared length
// before the body is read), the key (MaxKeyLength, KeyTooLongError), user
// metadata (MaxMetadataSize, MetadataTooLarge), part numbers (MaxParts,
// InvalidArgument) and listing pages (MaxListKeys caps max-keys, max-parts
// and max-uploads). With Config.Limiter, a client IP over its rate (checked
// first) or an access key over its rate (checked once the signature holds)
// gets SlowDown, 503. A body that stalls past the gateway's BodyReadTimeout
// fails with RequestTimeout and nothing is stored.
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
// AccessControlPolicy, VersioningConfiguration, ListVersionsResult
// (Version and DeleteMarker entries interleaved in listing order),
// Tagging, GetObjectAttributesResponse,
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
// A commit (PutObject, CopyObject, UploadPart, CompleteMultipartUpload)
// runs on a context detached from the client's request, bounded by
// Config.CommitTimeout, so a client that goes away cannot cut it short.
// When it fails, settle (commit.go) tells a definite refusal
// (nsclient.Refused: the nameserver answered that it did not apply it),
// after which the new segments are discarded, from an unknown outcome
// (timeout, broken connection, lost leadership, internal error): then the
// key or part is read back, and if it holds exactly the new fids the write
// succeeded; otherwise the segments are kept (live if the commit applies
// after all, reclaimed by the orphan sweep if it never does), their fids
// are logged at warn and the client gets 500 InternalError (503 for
// NoLeader). A CompleteMultipartUpload whose upload is gone while the key
// holds what completing its parts makes is a retry of one that succeeded
// and answers the same.
//
// If-None-Match: * and If-Match on PutObject, CopyObject and
// CompleteMultipartUpload are sent to the nameserver with the commit
// (depot.Precondition) and decided in the transaction that writes, so of
// two racing conditional writes of a key the second fails: 412
// PreconditionFailed (404 NoSuchKey for If-Match on a missing key; an
// If-None-Match other than * is NotImplemented). S3's 409
// ConditionalRequestConflict never arises. A refused write discards its
// segments.
//
// # Tags
//
// Object tags are kept in Meta under "x-amz-tagging", in the header's
// form (URL-encoded key=value pairs joined by "&", in the client's order):
// from x-amz-tagging on PutObject and CreateMultipartUpload, from the
// source on CopyObject unless x-amz-tagging-directive is REPLACE, and from
// PutObjectTagging. GET and HEAD report x-amz-tagging-count. AWS's limits
// hold (10 tags, keys of 1 to 128 characters and values up to 256 of
// letters, digits, spaces and + - = . _ : / @, no "aws:" prefix, no key
// twice): BadRequest for too many, InvalidTag otherwise. Put and
// DeleteObjectTagging commit the same object record with new metadata on
// condition that the key still holds that very object
// (depot.Precondition.IfUnchanged: same segments, same Last-Modified,
// which stays), read again and retried when it was replaced meanwhile; no
// bytes move. Bucket tags (up to 50) are a field of the bucket record;
// GetBucketTagging without tags is NoSuchTagSet.
//
// # Versions
//
// PutBucketVersioning (Enabled or Suspended; MFA delete is NotImplemented)
// sets the bucket's state in the nameserver, which keeps the versions
// (nameserver doc, "Versions"). PUT, CopyObject and
// CompleteMultipartUpload answer x-amz-version-id with the version made
// ("null" in a suspended bucket; none in a bucket never versioned). GET,
// HEAD, GetObjectTagging and GetObjectAttributes take ?versionId (any
// bucket: "null" names the object of an unversioned one); a version that
// is not there is NoSuchVersion, a delete marker's version 405
// MethodNotAllowed with x-amz-delete-marker, and a key whose current
// version is a delete marker NoSuchKey with x-amz-delete-marker. DELETE
// makes a delete marker in a versioned bucket (x-amz-delete-marker,
// x-amz-version-id) and with ?versionId removes that version, which
// succeeds also when it is not there; DeleteObjects does the same per
// key. x-amz-copy-source may name a version; the answer carries
// x-amz-copy-source-version-id. ListObjectVersions lists keys in byte
// order, each key's versions newest first, paged by key-marker and
// version-id-marker. Tags of a non-current version can be read, not
// changed (NotImplemented).
//
// # Object Lock
//
// CreateBucket with x-amz-bucket-object-lock-enabled: true makes a bucket
// with Object Lock (and versioning Enabled, which can then not be
// suspended: InvalidBucketState); PutObjectLockConfiguration enables it on
// a versioned bucket and sets the default retention. PutObject, CopyObject
// and CreateMultipartUpload take x-amz-object-lock-mode,
// -retain-until-date and -legal-hold (each authorised as
// s3:PutObjectRetention or s3:PutObjectLegalHold; a bucket without Object
// Lock answers InvalidRequest); GET and HEAD report them;
// Get/PutObjectRetention and Get/PutObjectLegalHold work per version.
// The nameserver refuses, whoever asks, the root key included, to delete
// a protected version: AccessDenied. x-amz-bypass-governance-retention:
// true lifts GOVERNANCE retention for a caller allowed
// s3:BypassGovernanceRetention (on DELETE, DeleteObjects and
// PutObjectRetention); nothing lifts COMPLIANCE or a legal hold.
//
// # Lifecycle
//
// Put/Get/DeleteBucketLifecycleConfiguration (s3:PutLifecycleConfiguration
// and s3:GetLifecycleConfiguration) with Expiration (Days, Date at
// midnight UTC, ExpiredObjectDeleteMarker), NoncurrentVersionExpiration
// (NoncurrentDays, NewerNoncurrentVersions) and
// AbortIncompleteMultipartUpload, filtered by Prefix, Tag, object size or
// And of them; Transition is NotImplemented (one storage class). The
// nameserver's lifecycle worker applies the rules (nameserver doc,
// "Lifecycle").
//
// # Checksums
//
// The checksum a PUT sends (x-amz-checksum-crc32, -crc32c, -crc64nvme,
// -sha1 or -sha256, as a header or an aws-chunked trailer) is checked
// against the body by package sigv4 (BadDigest when it differs), kept in
// Meta under its header name, answered on the PUT with
// x-amz-checksum-type FULL_OBJECT, and returned on a GET or HEAD of the
// whole object that sends x-amz-checksum-mode: ENABLED and in
// GetObjectAttributes; a copy keeps it. Multipart objects have none:
// each part's checksum is checked when the part arrives, and composite
// checksums are not built.
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
// queues the segments of parts left out for deletion. A Complete repeated
// after it succeeded (the client lost the answer and sent it again)
// answers 200 with the same ETag, as S3 does, when it names the same parts
// and the key still holds the object that completion made: the nameserver
// remembers completions for an hour (nsclient.CompletedUpload); otherwise
// it is NoSuchUpload. Abort drops the upload and queues all its segments;
// an abort of an upload that completed is NoSuchUpload and deletes
// nothing, as in S3. A repeated Create makes another upload, as in S3.
// Each nameserver call carries a request id (nsclient), so the retries
// of one call are applied at most once. A janitor in each gateway aborts uploads
// older than Config.UploadMaxAge every Config.JanitorInterval.
package s3
