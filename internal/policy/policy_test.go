package policy_test

import (
	"errors"
	"testing"

	"depot/internal/policy"
)

func mustParse(t *testing.T, doc string, kind policy.Kind) *policy.Document {
	t.Helper()
	d, err := policy.Parse([]byte(doc), kind)
	if err != nil {
		t.Fatalf("parse %s: %v", doc, err)
	}
	return d
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything/at/all", true},
		{"s3:get*", "s3:getobject", true},
		{"s3:get*", "s3:putobject", false},
		{"arn:aws:s3:::b/reviews/incoming/*", "arn:aws:s3:::b/reviews/incoming/x.jpg", true},
		{"arn:aws:s3:::b/reviews/incoming/*", "arn:aws:s3:::b/reviews/x.jpg", false},
		{"arn:aws:s3:::b/*", "arn:aws:s3:::b", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*a*b*c*", "xxaxxbxxcxx", true},
		{"*a*b*c", "xxaxxbxxcxx", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
	} {
		if got := policy.Match(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestParse_Err(t *testing.T) {
	for name, tc := range map[string]struct {
		doc  string
		kind policy.Kind
	}{
		"NotJSON":          {`{`, policy.Identity},
		"NoStatement":      {`{"Version":"2012-10-17"}`, policy.Identity},
		"EmptyStatement":   {`{"Statement":[]}`, policy.Identity},
		"BadVersion":       {`{"Version":"2020-01-01","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}`, policy.Identity},
		"BadEffect":        {`{"Statement":{"Effect":"Maybe","Action":"s3:*","Resource":"*"}}`, policy.Identity},
		"NoAction":         {`{"Statement":{"Effect":"Allow","Resource":"*"}}`, policy.Identity},
		"NoResource":       {`{"Statement":{"Effect":"Allow","Action":"s3:*"}}`, policy.Identity},
		"OtherService":     {`{"Statement":{"Effect":"Allow","Action":"iam:*","Resource":"*"}}`, policy.Identity},
		"BadResource":      {`{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"bucket"}}`, policy.Identity},
		"NotAction":        {`{"Statement":{"Effect":"Deny","NotAction":"s3:GetObject","Resource":"*"}}`, policy.Identity},
		"NotResource":      {`{"Statement":{"Effect":"Deny","Action":"s3:*","NotResource":"*"}}`, policy.Identity},
		"PrincipalInUser":  {`{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}}`, policy.Identity},
		"NoPrincipal":      {`{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}`, policy.Bucket},
		"BadPrincipal":     {`{"Statement":{"Effect":"Allow","Principal":"bob","Action":"s3:*","Resource":"*"}}`, policy.Bucket},
		"ServicePrincipal": {`{"Statement":{"Effect":"Allow","Principal":{"Service":"x"},"Action":"s3:*","Resource":"*"}}`, policy.Bucket},
		"BadOperator":      {`{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"10"}}}}`, policy.Identity},
		"BadIP":            {`{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"nope"}}}}`, policy.Identity},
		"Trailing":         {`{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}} {}`, policy.Identity},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := policy.Parse([]byte(tc.doc), tc.kind); !errors.Is(err, policy.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

// reviewsWriter may only write under reviews/incoming/ of bucket shop.
const reviewsWriter = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::shop/reviews/incoming/*"}
  ]
}`

const readerWithDeny = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "read", "Effect": "Allow", "Action": ["s3:Get*", "s3:ListBucket"], "Resource": ["arn:aws:s3:::shop", "arn:aws:s3:::shop/*"]},
    {"Sid": "secret", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::shop/private/*"},
    {"Sid": "list", "Effect": "Deny", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::shop",
     "Condition": {"StringLike": {"s3:prefix": "private/*"}}}
  ]
}`

const listPrefix = `{
  "Statement": {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::shop",
    "Condition": {"StringLike": {"s3:prefix": ["public/*", "media/*"]}}}
}`

const fromOffice = `{
  "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*",
    "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.0.2.7"]}, "StringNotEqualsIfExists": {"s3:delimiter": "|"}}}
}`

func TestDocument_Evaluate(t *testing.T) {
	get := func(key string) policy.Request {
		return policy.Request{Principal: "AK", Action: "s3:GetObject", Resource: policy.ARN("shop", key)}
	}
	put := func(key string) policy.Request {
		return policy.Request{Principal: "AK", Action: "s3:PutObject", Resource: policy.ARN("shop", key)}
	}
	list := func(prefix string, has bool) policy.Request {
		r := policy.Request{Principal: "AK", Action: "s3:ListBucket", Resource: policy.ARN("shop", ""), Context: map[string]string{}}
		if has {
			r.Context["s3:prefix"] = prefix
		}
		return r
	}
	from := func(ip string, r policy.Request) policy.Request {
		if r.Context == nil {
			r.Context = map[string]string{}
		}
		r.Context["aws:sourceip"] = ip
		return r
	}
	for _, tc := range []struct {
		name string
		doc  string
		req  policy.Request
		want policy.Decision
	}{
		{"WriterPutsUnderPrefix", reviewsWriter, put("reviews/incoming/a.jpg"), policy.Allowed},
		{"WriterPutsDeeper", reviewsWriter, put("reviews/incoming/x/y/a.jpg"), policy.Allowed},
		{"WriterPutsElsewhere", reviewsWriter, put("reviews/a.jpg"), policy.NotApplicable},
		{"WriterOtherBucket", reviewsWriter, policy.Request{Action: "s3:PutObject", Resource: policy.ARN("other", "reviews/incoming/a")}, policy.NotApplicable},
		{"WriterGets", reviewsWriter, get("reviews/incoming/a.jpg"), policy.NotApplicable},
		{"WriterDeletes", reviewsWriter, policy.Request{Action: "s3:DeleteObject", Resource: policy.ARN("shop", "reviews/incoming/a.jpg")}, policy.NotApplicable},
		{"ActionCaseFolds", reviewsWriter, policy.Request{Action: "S3:putobject", Resource: policy.ARN("shop", "reviews/incoming/a")}, policy.Allowed},
		{"ResourceCaseKept", reviewsWriter, put("Reviews/incoming/a"), policy.NotApplicable},
		{"ReaderGets", readerWithDeny, get("media/a.jpg"), policy.Allowed},
		{"ReaderGetsACL", readerWithDeny, policy.Request{Action: "s3:GetObjectAcl", Resource: policy.ARN("shop", "a")}, policy.Allowed},
		{"ReaderPrivateDenied", readerWithDeny, get("private/a"), policy.Denied},
		{"ReaderPuts", readerWithDeny, put("media/a.jpg"), policy.NotApplicable},
		{"ReaderListsAll", readerWithDeny, list("", false), policy.Allowed},
		{"ReaderListsPrivate", readerWithDeny, list("private/x", true), policy.Denied},
		{"ListPrefixOK", listPrefix, list("media/2026/", true), policy.Allowed},
		{"ListPrefixOther", listPrefix, list("private/", true), policy.NotApplicable},
		{"ListPrefixMissing", listPrefix, list("", false), policy.NotApplicable},
		{"IPInRange", fromOffice, from("10.1.2.3", get("x")), policy.Allowed},
		{"IPExact", fromOffice, from("192.0.2.7", get("x")), policy.Allowed},
		{"IPOutside", fromOffice, from("192.0.2.8", get("x")), policy.NotApplicable},
		{"IPMissing", fromOffice, get("x"), policy.NotApplicable},
		{"IfExistsPresentBad", fromOffice, from("10.0.0.1", policy.Request{Action: "s3:ListBucket", Resource: policy.ARN("shop", ""),
			Context: map[string]string{"s3:delimiter": "|"}}), policy.NotApplicable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := mustParse(t, tc.doc, policy.Identity)
			if got := d.Evaluate(tc.req); got != tc.want {
				t.Fatalf("Evaluate = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDocument_EvaluatePrincipal(t *testing.T) {
	const doc = `{"Statement": [
	  {"Effect": "Allow", "Principal": {"AWS": ["ALICE", "arn:aws:iam::123456789012:user/BOB"]}, "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"},
	  {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/public/*"},
	  {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::b/keep/*"}
	]}`
	d := mustParse(t, doc, policy.Bucket)
	req := func(who, action, key string) policy.Request {
		return policy.Request{Principal: who, Action: action, Resource: policy.ARN("b", key)}
	}
	for _, tc := range []struct {
		req  policy.Request
		want policy.Decision
	}{
		{req("ALICE", "s3:PutObject", "x"), policy.Allowed},
		{req("BOB", "s3:PutObject", "x"), policy.Allowed},
		{req("CAROL", "s3:PutObject", "x"), policy.NotApplicable},
		{req("", "s3:PutObject", "x"), policy.NotApplicable},
		{req("", "s3:GetObject", "public/a"), policy.Allowed},
		{req("", "s3:GetObject", "x"), policy.NotApplicable},
		{req("CAROL", "s3:GetObject", "public/a"), policy.Allowed},
		{req("ALICE", "s3:DeleteObject", "keep/a"), policy.Denied},
		{req("", "s3:DeleteObject", "keep/a"), policy.Denied},
	} {
		if got := d.Evaluate(tc.req); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.req, got, tc.want)
		}
	}
}

func TestCombine(t *testing.T) {
	A, D, N := policy.Allowed, policy.Denied, policy.NotApplicable
	for _, tc := range []struct {
		in   []policy.Decision
		want policy.Decision
	}{
		{nil, N},
		{[]policy.Decision{N, N}, N},
		{[]policy.Decision{A, N}, A},
		{[]policy.Decision{N, A}, A},
		{[]policy.Decision{A, D}, D},
		{[]policy.Decision{D, A}, D},
	} {
		if got := policy.Combine(tc.in...); got != tc.want {
			t.Errorf("Combine(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	var nilDoc *policy.Document
	if nilDoc.Evaluate(policy.Request{Action: "s3:GetObject", Resource: "*"}) != N {
		t.Error("nil document decided")
	}
}

func TestSetPublicRead(t *testing.T) {
	on, err := policy.SetPublicRead("", "pics", true)
	if err != nil {
		t.Fatal(err)
	}
	d := mustParse(t, on, policy.Bucket)
	if d.Evaluate(policy.Request{Action: "s3:GetObject", Resource: policy.ARN("pics", "a.jpg")}) != policy.Allowed {
		t.Fatalf("public-read policy %s does not allow anonymous reads", on)
	}
	if d.Evaluate(policy.Request{Action: "s3:ListBucket", Resource: policy.ARN("pics", "")}) != policy.NotApplicable {
		t.Fatal("public-read allows listing")
	}
	other := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::pics/*"}]}`
	both, err := policy.SetPublicRead(other, "pics", true)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(mustParse(t, both, policy.Bucket).Statement); n != 2 {
		t.Fatalf("merged: %d statements", n)
	}
	again, _ := policy.SetPublicRead(both, "pics", true)
	if n := len(mustParse(t, again, policy.Bucket).Statement); n != 2 {
		t.Fatalf("set twice: %d statements", n)
	}
	off, err := policy.SetPublicRead(again, "pics", false)
	if err != nil {
		t.Fatal(err)
	}
	if d := mustParse(t, off, policy.Bucket); len(d.Statement) != 1 || d.Statement[0].Effect != policy.Deny {
		t.Fatalf("off: %s", off)
	}
	if none, err := policy.SetPublicRead(on, "pics", false); err != nil || none != "" {
		t.Fatalf("off from public only: %q %v", none, err)
	}
}

// BenchmarkEvaluate decides one request against a policy of four
// statements with wildcards and a condition, as the gateway does for every
// request of a non-root key.
func BenchmarkEvaluate(b *testing.B) {
	d, err := policy.Parse([]byte(readerWithDeny), policy.Identity)
	if err != nil {
		b.Fatal(err)
	}
	req := policy.Request{Principal: "AK", Action: "s3:GetObject", Resource: policy.ARN("shop", "media/2026/11/a-rather-long-key-name.jpg"),
		Context: map[string]string{"aws:sourceip": "10.1.2.3"}}
	b.ReportAllocs()
	for b.Loop() {
		if d.Evaluate(req) != policy.Allowed {
			b.Fatal("not allowed")
		}
	}
}
