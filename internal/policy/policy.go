package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrMalformed is returned by Parse when a document is not valid JSON, has
// an element depot does not understand, or misses a required one.
var ErrMalformed = errors.New("malformed policy")

// Kind tells identity policies (kept with a user) from bucket policies:
// only bucket policies name principals.
type Kind int

// Kinds of document.
const (
	Identity Kind = iota
	Bucket
)

// Effect is a statement's effect.
type Effect string

// Effects.
const (
	Allow Effect = "Allow"
	Deny  Effect = "Deny"
)

// Decision is what a document, or several, says about a request.
type Decision int

// Decisions. The zero value, NotApplicable, means no statement matched.
const (
	NotApplicable Decision = iota
	Allowed
	Denied
)

func (d Decision) String() string {
	switch d {
	case Allowed:
		return "allow"
	case Denied:
		return "deny"
	}
	return "not applicable"
}

// Document is a parsed policy.
type Document struct {
	Version   string      `json:"Version,omitempty"`
	ID        string      `json:"Id,omitempty"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a Document. Principal is nil in identity
// policies; ["*"] means anyone.
type Statement struct {
	Sid       string     `json:"Sid,omitempty"`
	Effect    Effect     `json:"Effect"`
	Principal Principals `json:"Principal,omitempty"`
	Action    List       `json:"Action"`
	Resource  List       `json:"Resource"`
	Condition Conditions `json:"Condition,omitempty"`

	actions []string // Action in lower case, set by Parse
}

// List is a JSON string or array of strings.
type List []string

// UnmarshalJSON accepts a string or an array of strings.
func (l *List) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = List{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or a list of strings: %w", err)
	}
	*l = many
	return nil
}

// Principals are the principals of a bucket policy statement.
type Principals []string

// UnmarshalJSON accepts "*" and {"AWS": "x" | ["x", ...]}.
func (p *Principals) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		if one != "*" {
			return fmt.Errorf("principal %q: want \"*\" or {\"AWS\": [...]}", one)
		}
		*p = Principals{"*"}
		return nil
	}
	var m map[string]List
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("principal: %w", err)
	}
	for k := range m {
		if k != "AWS" {
			return fmt.Errorf("principal type %q: only \"AWS\" is supported", k)
		}
	}
	if len(m["AWS"]) == 0 {
		return errors.New("principal: empty AWS list")
	}
	*p = Principals(m["AWS"])
	return nil
}

// MarshalJSON writes {"AWS": [...]}, or "*".
func (p Principals) MarshalJSON() ([]byte, error) {
	if len(p) == 1 && p[0] == "*" {
		return []byte(`"*"`), nil
	}
	return json.Marshal(map[string][]string{"AWS": p})
}

// Conditions maps an operator to its keys and their values.
type Conditions map[string]map[string]List

// Request is what a policy is asked about.
type Request struct {
	// Principal is the access key of the caller, "" when anonymous.
	Principal string
	// Action is the IAM action name, such as "s3:GetObject".
	Action string
	// Resource is the resource ARN: "arn:aws:s3:::bucket" or
	// "arn:aws:s3:::bucket/key"; "arn:aws:s3:::*" for s3:ListAllMyBuckets.
	Resource string
	// Context holds the condition keys of the request, such as
	// "s3:prefix" and "aws:SourceIp", under lower-case names.
	Context map[string]string
}

// Parse reads a new document of the given kind, as a policy is checked
// when it is submitted: besides its shape, each action must be one S3 has
// (ErrInvalidAction).
func Parse(b []byte, kind Kind) (*Document, error) {
	return parse(b, kind, true)
}

// ParseStored reads a document kept before Parse checked action names:
// as Parse, except that an unknown action is kept (it matches no request)
// rather than refused, so that a policy accepted once keeps granting what
// its other actions grant.
func ParseStored(b []byte, kind Kind) (*Document, error) {
	return parse(b, kind, false)
}

func parse(b []byte, kind Kind, checkActions bool) (*Document, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var raw struct {
		Version   string          `json:"Version"`
		ID        string          `json:"Id"`
		Statement json.RawMessage `json:"Statement"`
	}
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the document", ErrMalformed)
	}
	if raw.Version != "" && raw.Version != "2012-10-17" && raw.Version != "2008-10-17" {
		return nil, fmt.Errorf("%w: unknown Version %q", ErrMalformed, raw.Version)
	}
	d := &Document{Version: raw.Version, ID: raw.ID}
	sts := bytes.TrimSpace(raw.Statement)
	if len(sts) == 0 || string(sts) == "null" {
		return nil, fmt.Errorf("%w: no Statement", ErrMalformed)
	}
	if sts[0] != '[' {
		sts = append(append([]byte{'['}, sts...), ']')
	}
	sdec := json.NewDecoder(bytes.NewReader(sts))
	sdec.DisallowUnknownFields()
	if err := sdec.Decode(&d.Statement); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(d.Statement) == 0 {
		return nil, fmt.Errorf("%w: no Statement", ErrMalformed)
	}
	for i := range d.Statement {
		st := &d.Statement[i]
		if err := st.check(kind); err != nil {
			return nil, fmt.Errorf("%w: statement %d: %v", ErrMalformed, i+1, err)
		}
		for _, a := range st.Action {
			if checkActions && !KnownAction(a) {
				return nil, fmt.Errorf("%w: %w: %q (statement %d)", ErrMalformed, ErrInvalidAction, a, i+1)
			}
		}
		for _, a := range st.Action {
			st.actions = append(st.actions, strings.ToLower(a))
		}
	}
	return d, nil
}

func (st *Statement) check(kind Kind) error {
	if st.Effect != Allow && st.Effect != Deny {
		return fmt.Errorf("Effect %q: want Allow or Deny", st.Effect)
	}
	switch {
	case kind == Bucket && len(st.Principal) == 0:
		return errors.New("a bucket policy statement needs a Principal")
	case kind == Identity && len(st.Principal) != 0:
		return errors.New("a user policy statement has no Principal")
	}
	if len(st.Action) == 0 {
		return errors.New("no Action")
	}
	for _, a := range st.Action {
		if a != "*" && !strings.HasPrefix(strings.ToLower(a), "s3:") {
			return fmt.Errorf("action %q: want s3:NAME or *", a)
		}
	}
	if len(st.Resource) == 0 {
		return errors.New("no Resource")
	}
	for _, r := range st.Resource {
		if r != "*" && !strings.HasPrefix(r, "arn:aws:s3:::") {
			return fmt.Errorf("resource %q: want arn:aws:s3:::BUCKET[/KEY] or *", r)
		}
	}
	for op, keys := range st.Condition {
		base := strings.TrimSuffix(op, "IfExists")
		if _, ok := operators[base]; !ok {
			return fmt.Errorf("condition operator %q is not supported", op)
		}
		for k, vs := range keys {
			if base == "IpAddress" || base == "NotIpAddress" {
				for _, v := range vs {
					if _, err := parsePrefix(v); err != nil {
						return fmt.Errorf("condition %s %s: %v", op, k, err)
					}
				}
			}
		}
	}
	return nil
}

// Evaluate returns Denied when a statement that matches r denies, Allowed
// when one allows and none denies, NotApplicable otherwise.
func (d *Document) Evaluate(r Request) Decision {
	if d == nil {
		return NotApplicable
	}
	dec := NotApplicable
	action := strings.ToLower(r.Action)
	for i := range d.Statement {
		st := &d.Statement[i]
		if !st.matches(r, action) {
			continue
		}
		if st.Effect == Deny {
			return Denied
		}
		dec = Allowed
	}
	return dec
}

// Combine merges the decisions of several documents: Denied when any
// denies, else Allowed when any allows, else NotApplicable (an implicit
// deny).
func Combine(ds ...Decision) Decision {
	out := NotApplicable
	for _, d := range ds {
		if d == Denied {
			return Denied
		}
		if d == Allowed {
			out = Allowed
		}
	}
	return out
}

// matches reports whether st applies to r; action is r.Action in lower
// case.
func (st *Statement) matches(r Request, action string) bool {
	if st.Principal != nil && !principalMatches(st.Principal, r.Principal) {
		return false
	}
	actions := st.actions
	if actions == nil { // a Statement built by hand, not by Parse
		for _, a := range st.Action {
			actions = append(actions, strings.ToLower(a))
		}
	}
	if !anyMatch(actions, action) || !anyMatch(st.Resource, r.Resource) {
		return false
	}
	for op, keys := range st.Condition {
		for k, vs := range keys {
			v, ok := r.Context[strings.ToLower(k)]
			if !condition(op, vs, v, ok) {
				return false
			}
		}
	}
	return true
}

func principalMatches(ps Principals, who string) bool {
	for _, p := range ps {
		if p == "*" {
			return true
		}
		if who == "" {
			continue
		}
		if p == who {
			return true
		}
		if rest, ok := strings.CutPrefix(p, "arn:aws:iam::"); ok {
			if _, name, ok := strings.Cut(rest, ":user/"); ok && name == who {
				return true
			}
		}
	}
	return false
}

func anyMatch(patterns []string, s string) bool {
	for _, p := range patterns {
		if Match(p, s) {
			return true
		}
	}
	return false
}

// operators are the supported condition operators: each says whether a
// request value matches one policy value.
var operators = map[string]struct {
	negated bool
	match   func(policy, value string) bool
}{
	"StringEquals":    {false, func(p, v string) bool { return p == v }},
	"StringNotEquals": {true, func(p, v string) bool { return p == v }},
	"StringLike":      {false, Match},
	"StringNotLike":   {true, Match},
	"IpAddress":       {false, ipMatch},
	"NotIpAddress":    {true, ipMatch},
}

// condition evaluates one operator and key: positive operators need one
// value to match, negated ones need none to.
func condition(op string, values []string, v string, present bool) bool {
	base, ifExists := strings.CutSuffix(op, "IfExists")
	o := operators[base]
	if !present {
		return ifExists || o.negated
	}
	hit := false
	for _, pv := range values {
		if o.match(pv, v) {
			hit = true
			break
		}
	}
	return hit != o.negated
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func ipMatch(policy, value string) bool {
	p, err := parsePrefix(policy)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(value)
	if err != nil {
		return false
	}
	return p.Contains(a.Unmap())
}

// Match reports whether s matches pattern, where "*" stands for any run of
// characters and "?" for one byte.
func Match(pattern, s string) bool {
	// Greedy matching with backtracking to the last star: linear in
	// practice, O(len(pattern)*len(s)) at worst.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			// First: a star in the pattern is a wildcard even where s
			// holds a '*' too.
			star, mark = p, i
			p++
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
