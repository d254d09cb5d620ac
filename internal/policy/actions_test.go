package policy_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"depot/internal/policy"
)

func TestParse_RefusesUnknownActions(t *testing.T) {
	doc := func(action string) string {
		return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject",%q],"Resource":"*"}]}`, action)
	}
	for _, tc := range []struct {
		action string
		ok     bool
	}{
		{"s3:PutObject", true},
		{"S3:putobject", true}, // actions are compared without regard to case
		{"s3:ListAllMyBuckets", true},
		{"s3:GetObjectVersion", true}, // an AWS action depot does not serve yet
		{"s3:*", true},
		{"*", true},
		{"s3:Get*", true},
		{"s3:?utObject", true},
		{"s3:PutObjct", false},
		{"s3:Frobnicate", false},
		{"s3:Frob*", false}, // a wildcard that matches no action
		{"s3:", false},
	} {
		_, err := policy.Parse([]byte(doc(tc.action)), policy.Identity)
		if tc.ok {
			if err != nil {
				t.Errorf("%s: refused: %v", tc.action, err)
			}
			continue
		}
		if !errors.Is(err, policy.ErrInvalidAction) || !errors.Is(err, policy.ErrMalformed) {
			t.Errorf("%s: err %v, want ErrInvalidAction and ErrMalformed", tc.action, err)
		} else if !strings.Contains(err.Error(), "Policy has invalid action") || !strings.Contains(err.Error(), tc.action) {
			t.Errorf("%s: message %q names neither AWS's wording nor the action", tc.action, err)
		}
		// A document kept before the check still reads; the unknown
		// action grants nothing, the others what they grant.
		d, err := policy.ParseStored([]byte(doc(tc.action)), policy.Identity)
		if err != nil {
			t.Fatalf("%s: ParseStored: %v", tc.action, err)
		}
		if got := d.Evaluate(policy.Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::b/k"}); got != policy.Allowed {
			t.Errorf("%s: ParseStored document: GetObject %v, want Allowed", tc.action, got)
		}
		if got := d.Evaluate(policy.Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::b/k"}); got == policy.Allowed {
			t.Errorf("%s: ParseStored document allows PutObject", tc.action)
		}
	}
}

// TestKnownAction_GatewayActions checks that every action the gateway
// authorises is a known one, so that no policy granting it is refused.
func TestKnownAction_GatewayActions(t *testing.T) {
	files, err := filepath.Glob("../../gateway/s3/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("gateway sources: %v (%d files)", err, len(files))
	}
	re := regexp.MustCompile(`"(s3:[A-Za-z]+)"`)
	seen := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			if a := m[1]; strings.ToLower(a) != a { // not a condition key such as s3:prefix
				seen++
				if !policy.KnownAction(a) {
					t.Errorf("%s: action %s is not in the list of known S3 actions", filepath.Base(f), a)
				}
			}
		}
	}
	if seen < 20 {
		t.Fatalf("found only %d action names in gateway/s3: has the way actions are named changed?", seen)
	}
}
