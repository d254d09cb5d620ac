package s3

import (
	"encoding/xml"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"depot"
	"depot/nameserver/nsclient"
)

// corsConfiguration is the S3 CORSConfiguration document; the bucket keeps
// it as XML text (nsclient.Bucket.CORS).
type corsConfiguration struct {
	XMLName xml.Name   `xml:"CORSConfiguration"`
	NS      string     `xml:"xmlns,attr,omitempty"`
	Rules   []corsRule `xml:"CORSRule"`
}

type corsRule struct {
	ID             string   `xml:"ID,omitempty"`
	AllowedOrigins []string `xml:"AllowedOrigin"`
	AllowedMethods []string `xml:"AllowedMethod"`
	AllowedHeaders []string `xml:"AllowedHeader,omitempty"`
	ExposeHeaders  []string `xml:"ExposeHeader,omitempty"`
	MaxAgeSeconds  *int     `xml:"MaxAgeSeconds,omitempty"`
}

var corsMethods = map[string]bool{"GET": true, "PUT": true, "POST": true, "DELETE": true, "HEAD": true}

func (s *Server) putCORS(q *request) error {
	var c corsConfiguration
	if err := readXML(q, &c); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	c.NS = s3NS
	b, err := xml.Marshal(c)
	if err != nil {
		return err
	}
	cs := string(b)
	return s.setBucket(q, nsclient.BucketSettings{CORS: &cs}, http.StatusOK)
}

// validate checks a CORSConfiguration as PutBucketCors does.
func (c corsConfiguration) validate() error {
	if len(c.Rules) == 0 || len(c.Rules) > 100 {
		return errMalformedXML(errors.New("want 1 to 100 CORSRule"))
	}
	for _, r := range c.Rules {
		if len(r.AllowedOrigins) == 0 || len(r.AllowedMethods) == 0 {
			return errMalformedXML(errors.New("a CORSRule needs AllowedOrigin and AllowedMethod"))
		}
		for _, m := range r.AllowedMethods {
			if !corsMethods[m] {
				return errInvalidArgument("Found unsupported HTTP method in CORS config. Unsupported method is %s", m)
			}
		}
	}
	return nil
}

func (s *Server) getCORS(q *request) error {
	b, err := q.ns.Bucket(q.ctx, q.bucket)
	if err != nil {
		return bucketErr(q, err)
	}
	if b.CORS == "" {
		return s3err("NoSuchCORSConfiguration", http.StatusNotFound, "The CORS configuration does not exist")
	}
	q.w.Header().Set("Content-Type", "application/xml")
	q.w.Write([]byte(xml.Header + b.CORS))
	return nil
}

// wildcard matches s against a pattern with at most one '*'.
func wildcard(pattern, s string) bool {
	before, after, found := strings.Cut(pattern, "*")
	if !found {
		return pattern == s
	}
	return len(s) >= len(before)+len(after) && strings.HasPrefix(s, before) && strings.HasSuffix(s, after)
}

// match returns the first rule that allows origin, method and headers.
func (c corsConfiguration) match(origin, method string, headers []string) *corsRule {
	for i, r := range c.Rules {
		ok := false
		for _, o := range r.AllowedOrigins {
			ok = ok || wildcard(o, origin)
		}
		if !ok {
			continue
		}
		ok = false
		for _, m := range r.AllowedMethods {
			ok = ok || m == method
		}
		if !ok {
			continue
		}
		all := true
		for _, h := range headers {
			h = strings.ToLower(strings.TrimSpace(h))
			if h == "" {
				continue
			}
			hok := false
			for _, ah := range r.AllowedHeaders {
				hok = hok || wildcard(strings.ToLower(ah), h)
			}
			all = all && hok
		}
		if all {
			return &c.Rules[i]
		}
	}
	return nil
}

func (s *Server) bucketCORS(q *request) (corsConfiguration, error) {
	var c corsConfiguration
	ns, err := s.ns()
	if err != nil {
		return c, err
	}
	b, err := ns.Bucket(q.ctx, q.bucket)
	if err != nil {
		return c, err
	}
	if b.CORS != "" {
		if err := xml.Unmarshal([]byte(b.CORS), &c); err != nil {
			return c, err
		}
	}
	return c, nil
}

func setCORSHeaders(h http.Header, r *corsRule, origin string) {
	allow := origin
	for _, o := range r.AllowedOrigins {
		if o == "*" {
			allow = "*"
		}
	}
	h.Set("Access-Control-Allow-Origin", allow)
	if allow != "*" {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	h.Set("Vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method")
	h.Set("Access-Control-Allow-Methods", strings.Join(r.AllowedMethods, ", "))
	if len(r.ExposeHeaders) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.Join(r.ExposeHeaders, ", "))
	}
	if r.MaxAgeSeconds != nil {
		h.Set("Access-Control-Max-Age", strconv.Itoa(*r.MaxAgeSeconds))
	}
}

// preflight answers a CORS preflight OPTIONS request from the bucket's
// CORS configuration.
func (s *Server) preflight(q *request) error {
	origin := q.r.Header.Get("Origin")
	method := q.r.Header.Get("Access-Control-Request-Method")
	if q.bucket == "" || origin == "" || method == "" {
		return errInvalidArgument("Insufficient information. Origin request header needed.")
	}
	c, err := s.bucketCORS(q)
	if err != nil {
		if errors.Is(err, depot.ErrNotFound) {
			return errNoSuchBucket(q.bucket)
		}
		return err
	}
	var headers []string
	if rh := q.r.Header.Get("Access-Control-Request-Headers"); rh != "" {
		headers = strings.Split(rh, ",")
	}
	rule := c.match(origin, method, headers)
	if rule == nil {
		return s3err("AccessForbidden", http.StatusForbidden, "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.")
	}
	h := q.w.Header()
	setCORSHeaders(h, rule, origin)
	if len(headers) > 0 {
		h.Set("Access-Control-Allow-Headers", q.r.Header.Get("Access-Control-Request-Headers"))
	}
	q.w.WriteHeader(http.StatusOK)
	return nil
}

// corsHeaders adds the CORS response headers to an actual request with an
// Origin, when a rule allows it.
func (s *Server) corsHeaders(q *request) {
	c, err := s.bucketCORS(q)
	if err != nil || len(c.Rules) == 0 {
		return
	}
	if rule := c.match(q.r.Header.Get("Origin"), q.r.Method, nil); rule != nil {
		setCORSHeaders(q.w.Header(), rule, q.r.Header.Get("Origin"))
	}
}
