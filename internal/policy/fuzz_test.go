package policy

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
)

var policySeeds = []string{
	`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::shop/reviews/incoming/*"}]}`,
	`{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":["s3:*"],"Resource":["arn:aws:s3:::a","arn:aws:s3:::a/*"],"Condition":{"StringNotLike":{"s3:prefix":["public/*"]}}}}`,
	`{"Statement":[{"Sid":"DepotPublicRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}`,
	`{"Statement":[{"Effect":"Allow","Principal":{"AWS":["AKIA1","arn:aws:iam::1:user/AKIA2"]},"Action":"s3:Get*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}`,
	`{"Statement":[]}`, `{}`, `[]`, `{"Statement":null}`, `{"Version":"1","Statement":{}}`,
}

// FuzzParse: Parse never panics and refuses with ErrMalformed; a document
// it takes evaluates without panicking, and, written back as JSON and read
// again, decides every request the same way.
func FuzzParse(f *testing.F) {
	for _, s := range policySeeds {
		f.Add([]byte(s), "AKIA1", "s3:GetObject", "arn:aws:s3:::b/k", "10.1.2.3")
	}
	f.Fuzz(func(t *testing.T, doc []byte, who, action, resource, ip string) {
		reqs := []Request{
			{Principal: who, Action: action, Resource: resource, Context: map[string]string{"aws:sourceip": ip, "s3:prefix": resource}},
			{Action: "s3:GetObject", Resource: "arn:aws:s3:::b/k"},
			{Principal: "AKIA1", Action: "s3:PutObject", Resource: "arn:aws:s3:::shop/reviews/incoming/x"},
		}
		for _, kind := range []Kind{Identity, Bucket} {
			d, err := Parse(doc, kind)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error not ErrMalformed: %v", err)
				}
				continue
			}
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatalf("marshal a parsed document: %v", err)
			}
			d2, err := Parse(b, kind)
			if err != nil {
				t.Fatalf("a parsed document written back does not parse: %v\n%s", err, b)
			}
			for _, r := range reqs {
				if a, b := d.Evaluate(r), d2.Evaluate(r); a != b {
					t.Fatalf("%+v: %v, after a round trip %v", r, a, b)
				}
			}
		}
	})
}

// FuzzMatch compares Match with the same wildcard written as a regular
// expression, on ASCII input (where "?" is one byte and one character).
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{{"s3:Get*", "s3:GetObject"}, {"a*b?c", "aXXbYc"}, {"**?*", ""}, {"arn:aws:s3:::b/*", "arn:aws:s3:::b/"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 64 || len(s) > 256 || !ascii(pattern) || !ascii(s) {
			return
		}
		var re strings.Builder
		re.WriteString(`^(?s)`)
		for _, c := range pattern {
			switch c {
			case '*':
				re.WriteString(`.*`)
			case '?':
				re.WriteString(`.`)
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString(`$`)
		want := regexp.MustCompile(re.String()).MatchString(s)
		if got := Match(pattern, s); got != want {
			t.Fatalf("Match(%q, %q) = %v, want %v", pattern, s, got, want)
		}
	})
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// TestDeny_KeyWithStar: a '*' in a key is matched by the pattern's
// wildcard, not taken as a literal that ends the match (FuzzMatch found
// that a Deny on b/* let a key starting with '*' through).
func TestDeny_KeyWithStar(t *testing.T) {
	d, err := Parse([]byte(`{"Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}`), Identity)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"*x", "*", "a*b", "**"} {
		if got := d.Evaluate(Request{Principal: "k", Action: "s3:GetObject", Resource: ARN("b", key)}); got != Denied {
			t.Errorf("key %q: %v, want Denied", key, got)
		}
	}
}
