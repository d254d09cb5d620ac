package s3

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"

	"depot"
	"depot/gateway/s3/sigv4"
	"depot/internal/guard"
)

// Error is an S3 error: a code from the AWS error-code list, its HTTP status
// and a message. Handlers return *Error for S3-specific conditions; other
// errors go through the table in toS3.
type Error struct {
	Code    string
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func s3err(code string, status int, format string, args ...any) *Error {
	return &Error{Code: code, Status: status, Message: fmt.Sprintf(format, args...)}
}

// Common errors.
func errNoSuchBucket(b string) *Error {
	return s3err("NoSuchBucket", http.StatusNotFound, "The specified bucket does not exist: %s", b)
}
func errNoSuchKey(k string) *Error {
	return s3err("NoSuchKey", http.StatusNotFound, "The specified key does not exist: %s", k)
}
func errNoSuchUpload(id string) *Error {
	return s3err("NoSuchUpload", http.StatusNotFound, "The specified multipart upload does not exist: %s", id)
}
func errMalformedXML(err error) *Error {
	return s3err("MalformedXML", http.StatusBadRequest, "The XML you provided was not well-formed or did not validate against our published schema: %v", err)
}
func errInvalidArgument(format string, args ...any) *Error {
	return s3err("InvalidArgument", http.StatusBadRequest, format, args...)
}
func errAccessDenied() *Error { return s3err("AccessDenied", http.StatusForbidden, "Access Denied") }
func errSlowDown() *Error {
	return s3err("SlowDown", http.StatusServiceUnavailable, "Please reduce your request rate.")
}

// table maps depot's and sigv4's sentinel errors to S3 error codes and
// statuses: the one place where internal errors meet the S3 vocabulary.
// The first match wins.
var table = []struct {
	err    error
	code   string
	status int
}{
	{sigv4.ErrMissing, "AccessDenied", http.StatusForbidden},
	{sigv4.ErrMalformed, "AuthorizationHeaderMalformed", http.StatusBadRequest},
	{sigv4.ErrUnknownKey, "InvalidAccessKeyId", http.StatusForbidden},
	{sigv4.ErrSignature, "SignatureDoesNotMatch", http.StatusForbidden},
	{sigv4.ErrSkew, "RequestTimeTooSkewed", http.StatusForbidden},
	{sigv4.ErrExpired, "AccessDenied", http.StatusForbidden},
	{sigv4.ErrContentSHA256, "XAmzContentSHA256Mismatch", http.StatusBadRequest},
	{sigv4.ErrChecksum, "BadDigest", http.StatusBadRequest},
	{sigv4.ErrChecksumHeader, "InvalidRequest", http.StatusBadRequest},
	{sigv4.ErrChunk, "IncompleteBody", http.StatusBadRequest},
	{sigv4.ErrHeadersNotSigned, "AccessDenied", http.StatusForbidden},
	{errBadDigest, "BadDigest", http.StatusBadRequest},
	{errIncomplete, "IncompleteBody", http.StatusBadRequest},
	{guard.ErrBodyTimeout, "RequestTimeout", http.StatusBadRequest},
	{depot.ErrNotFound, "NoSuchKey", http.StatusNotFound},
	{depot.ErrBadFid, "InternalError", http.StatusInternalServerError},
	{depot.ErrCorrupt, "InternalError", http.StatusInternalServerError},
	{depot.ErrDiskFull, "ServiceUnavailable", http.StatusServiceUnavailable},
	{depot.ErrReadOnly, "ServiceUnavailable", http.StatusServiceUnavailable},
	{depot.ErrNoQuorum, "ServiceUnavailable", http.StatusServiceUnavailable},
	{depot.ErrNotEnoughNodes, "ServiceUnavailable", http.StatusServiceUnavailable},
	{depot.ErrNoLeader, "ServiceUnavailable", http.StatusServiceUnavailable},
	{depot.ErrUnknownOutcome, "ServiceUnavailable", http.StatusServiceUnavailable},
	{depot.ErrUnauthorized, "AccessDenied", http.StatusForbidden},
	{depot.ErrBadRequest, "InvalidRequest", http.StatusBadRequest},
	{depot.ErrExists, "BucketAlreadyOwnedByYou", http.StatusConflict},
	{depot.ErrNotEmpty, "BucketNotEmpty", http.StatusConflict},
	{depot.ErrPrecondition, "PreconditionFailed", http.StatusPreconditionFailed},
	{depot.ErrLocked, "AccessDenied", http.StatusForbidden},
	{depot.ErrTooLarge, "EntityTooLarge", http.StatusBadRequest},
}

// Gateway-side sentinels.
var (
	errBadDigest  = errors.New("Content-MD5 does not match the body")
	errIncomplete = errors.New("body shorter than declared")
)

// toS3 returns the S3 error for err.
func toS3(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, depot.ErrLocked) {
		// AWS's words: the internal ones name nameserver routes.
		return &Error{Code: "AccessDenied", Status: http.StatusForbidden, Message: "Access Denied because object protected by object lock."}
	}
	for _, m := range table {
		if errors.Is(err, m.err) {
			return &Error{Code: m.code, Status: m.status, Message: err.Error()}
		}
	}
	return &Error{Code: "InternalError", Status: http.StatusInternalServerError, Message: "We encountered an internal error. Please try again."}
}

// errorDoc is the S3 error document.
type errorDoc struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId"`
	HostID    string   `xml:"HostId,omitempty"`
	// HeadersNotSigned lists, for AccessDenied on unsigned x-amz-*
	// headers, the headers (comma-separated), as S3 does.
	HeadersNotSigned string `xml:"HeadersNotSigned,omitempty"`
}
