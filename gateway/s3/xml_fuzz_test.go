package s3

import (
	"bytes"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// XML request bodies as a client may send them, and hostile ones: seeds
// shared by the fuzz targets below (testdata/fuzz/<Target>/ holds more,
// with any crasher found).
var xmlSeeds = []string{
	`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"a54357aff0632cce46d942af68356b38"</ETag></Part><Part><PartNumber>2</PartNumber><ETag>0c78aef83f66abc1fa1e8477f296d394</ETag></Part></CompleteMultipartUpload>`,
	`<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet><Object><Key>a/../../etc/passwd</Key></Object><Object><Key>b&#x0;c</Key><VersionId>x</VersionId></Object></Delete>`,
	`<CORSConfiguration><CORSRule><AllowedOrigin>https://*.shop.example</AllowedOrigin><AllowedMethod>PUT</AllowedMethod><AllowedMethod>GET</AllowedMethod><AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule></CORSConfiguration>`,
	`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><Delete><Object><Key>&lol2;</Key></Object></Delete>`,
	`<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&x;</Key></Object></Delete>`,
	strings.Repeat("<a>", 20000) + strings.Repeat("</a>", 20000),
	`<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber></Part><Part><PartNumber>99999999999999999999</PartNumber></Part></CompleteMultipartUpload>`,
	`<CORSConfiguration><CORSRule><AllowedOrigin>&#xD;&#xA;Set-Cookie: x=y</AllowedOrigin><AllowedMethod>GET</AllowedMethod><ExposeHeader>a&#xA;b</ExposeHeader><MaxAgeSeconds>-5</MaxAgeSeconds></CORSRule></CORSConfiguration>`,
	`<Delete><Object><Key>` + strings.Repeat("k", 2000) + `</Key></Object>`,
	"\xef\xbb\xbf<Delete><Object><Key>\xff\xfe</Key></Object></Delete>",
}

// fuzzReadXML decodes body through readXML, as the handlers do, and checks
// that a refusal is a client error in S3's vocabulary, never a 500.
func fuzzReadXML(t *testing.T, body []byte, v any) bool {
	r := httptest.NewRequest(http.MethodPost, "/bucket/key", bytes.NewReader(body))
	q := &request{r: r, ctx: r.Context()}
	if err := readXML(q, v); err != nil {
		if e := toS3(err); e.Status != http.StatusBadRequest {
			t.Fatalf("readXML error %v answers %d %s, want 400", err, e.Status, e.Code)
		}
		return false
	}
	return true
}

// clientError fails the test unless err is nil or an S3 client error.
func clientError(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		if e := toS3(err); e.Status != http.StatusBadRequest {
			t.Fatalf("validate error %v answers %d %s, want 400", err, e.Status, e.Code)
		}
	}
}

// FuzzCompleteMultipartXML: any body decodes or is refused with a 400;
// what validates lists 1 to 10000 valid part numbers in ascending order.
func FuzzCompleteMultipartXML(f *testing.F) {
	for _, s := range xmlSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req completeRequest
		if !fuzzReadXML(t, body, &req) {
			return
		}
		err := req.validate(DefaultMaxParts)
		clientError(t, err)
		if err != nil {
			return
		}
		for i, p := range req.Parts {
			if p.PartNumber < 1 || p.PartNumber > DefaultMaxParts || i > 0 && p.PartNumber <= req.Parts[i-1].PartNumber {
				t.Fatalf("validated part list %+v", req.Parts)
			}
		}
	})
}

// FuzzDeleteObjectsXML: any body decodes or is refused with a 400; what
// validates names 1 to 1000 objects.
func FuzzDeleteObjectsXML(f *testing.F) {
	for _, s := range xmlSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req deleteRequest
		if !fuzzReadXML(t, body, &req) {
			return
		}
		err := req.validate()
		clientError(t, err)
		if err == nil && (len(req.Objects) == 0 || len(req.Objects) > 1000) {
			t.Fatalf("validated %d objects", len(req.Objects))
		}
	})
}

// FuzzCORSXML: any body decodes or is refused with a 400; a configuration
// that validates is stored as PutBucketCors stores it and reads back
// unchanged (a stored configuration that no longer parses would break
// every later request with an Origin), and matching requests against it
// never panics.
func FuzzCORSXML(f *testing.F) {
	for _, s := range xmlSeeds {
		f.Add([]byte(s), "https://a.shop.example", "PUT", "content-type, x-amz-meta-a")
	}
	f.Fuzz(func(t *testing.T, body []byte, origin, method, headers string) {
		var c corsConfiguration
		if !fuzzReadXML(t, body, &c) {
			return
		}
		err := c.validate()
		clientError(t, err)
		if err != nil {
			return
		}
		c.NS = s3NS
		stored, err := xml.Marshal(c)
		if err != nil {
			t.Fatalf("a validated configuration does not marshal: %v", err)
		}
		var back corsConfiguration
		if err := xml.Unmarshal(stored, &back); err != nil {
			t.Fatalf("stored configuration %q does not parse: %v", stored, err)
		}
		if !reflect.DeepEqual(normRules(back.Rules), normRules(c.Rules)) {
			t.Fatalf("stored configuration reads back as %+v, want %+v", back.Rules, c.Rules)
		}
		if r := back.match(origin, method, strings.Split(headers, ",")); r != nil {
			setCORSHeaders(http.Header{}, r, origin)
		}
	})
}

// normRules makes nil and empty slices alike, as XML does not tell them
// apart.
func normRules(rs []corsRule) []corsRule {
	out := make([]corsRule, len(rs))
	for i, r := range rs {
		n := corsRule{ID: r.ID, MaxAgeSeconds: r.MaxAgeSeconds}
		n.AllowedOrigins = append([]string{}, r.AllowedOrigins...)
		n.AllowedMethods = append([]string{}, r.AllowedMethods...)
		n.AllowedHeaders = append([]string{}, r.AllowedHeaders...)
		n.ExposeHeaders = append([]string{}, r.ExposeHeaders...)
		out[i] = n
	}
	return out
}
