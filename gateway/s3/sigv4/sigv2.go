package sigv4

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Presigned URLs of the older Signature Version 2 (AWSAccessKeyId,
// Expires, Signature in the query) are what aws-cli v1's `aws s3 presign`
// makes by default, so they are accepted for reads and writes too.
// Every x-amz-* header of the request is part of a V2 string to sign
// (CanonicalizedAmzHeaders), so none can be added to a V2 presigned URL
// unsigned.

// v2SubResources are the query parameters that belong to a V2
// CanonicalizedResource.
var v2SubResources = []string{"acl", "cors", "delete", "location", "logging", "notification", "partNumber",
	"policy", "requestPayment", "response-cache-control", "response-content-disposition",
	"response-content-encoding", "response-content-language", "response-content-type", "response-expires",
	"tagging", "torrent", "uploadId", "uploads", "versionId", "versioning", "versions", "website"}

func signedV2(r *http.Request) bool {
	q := r.URL.Query()
	return q.Has("AWSAccessKeyId") && q.Has("Signature")
}

func verifyQueryV2(r *http.Request, secret SecretFunc, now time.Time) (*Auth, error) {
	q := r.URL.Query()
	exp, err := strconv.ParseInt(q.Get("Expires"), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: Expires %q", ErrMalformed, q.Get("Expires"))
	}
	if now.Unix() > exp {
		return nil, fmt.Errorf("%w: expired at %s", ErrExpired, time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	ak := q.Get("AWSAccessKeyId")
	sec, err := secret(ak)
	if err != nil {
		return nil, err
	}
	var amz []string
	for name, vs := range r.Header {
		if l := strings.ToLower(name); strings.HasPrefix(l, "x-amz-") {
			amz = append(amz, l+":"+strings.Join(vs, ",")+"\n")
		}
	}
	sort.Strings(amz)
	var subs []string
	for _, s := range v2SubResources {
		if q.Has(s) {
			if v := q.Get(s); v != "" {
				subs = append(subs, s+"="+v)
			} else {
				subs = append(subs, s)
			}
		}
	}
	sub := ""
	if len(subs) > 0 {
		sub = "?" + strings.Join(subs, "&")
	}
	want := q.Get("Signature")
	for _, path := range []string{r.URL.EscapedPath(), uriEncode(r.URL.Path, false), r.URL.Path} {
		sts := r.Method + "\n" + r.Header.Get("Content-Md5") + "\n" + r.Header.Get("Content-Type") + "\n" +
			q.Get("Expires") + "\n" + strings.Join(amz, "") + path + sub
		m := hmac.New(sha1.New, []byte(sec))
		m.Write([]byte(sts))
		got := base64.StdEncoding.EncodeToString(m.Sum(nil))
		if subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1 {
			return &Auth{AccessKey: ak, PayloadHash: UnsignedPayload, Presigned: true}, nil
		}
	}
	return nil, fmt.Errorf("%w: V2 query signature", ErrSignature)
}
