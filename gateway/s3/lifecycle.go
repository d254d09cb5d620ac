package s3

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"time"

	"depot"
	"depot/nameserver/nsclient"
)

// Bucket lifecycle (PUT, GET and DELETE ?lifecycle). The gateway turns
// S3's LifecycleConfiguration into the nameserver's rules
// (nsclient.LifecycleRule) and back; the nameserver's lifecycle worker
// applies them (nameserver/lifecycle.go). Transitions to other storage
// classes are NotImplemented: depot has one.

type lifecycleConfiguration struct {
	XMLName xml.Name        `xml:"LifecycleConfiguration"`
	NS      string          `xml:"xmlns,attr,omitempty"`
	Rules   []lifecycleRule `xml:"Rule"`
}

type lifecycleTag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

type lifecycleFilter struct {
	Prefix                *string       `xml:"Prefix"`
	Tag                   *lifecycleTag `xml:"Tag"`
	ObjectSizeGreaterThan *int64        `xml:"ObjectSizeGreaterThan"`
	ObjectSizeLessThan    *int64        `xml:"ObjectSizeLessThan"`
	And                   *struct {
		Prefix                *string        `xml:"Prefix"`
		Tags                  []lifecycleTag `xml:"Tag"`
		ObjectSizeGreaterThan *int64         `xml:"ObjectSizeGreaterThan"`
		ObjectSizeLessThan    *int64         `xml:"ObjectSizeLessThan"`
	} `xml:"And"`
}

type lifecycleRule struct {
	ID         string           `xml:"ID,omitempty"`
	Prefix     *string          `xml:"Prefix"` // the legacy place of the prefix
	Filter     *lifecycleFilter `xml:"Filter"`
	Status     string           `xml:"Status"`
	Expiration *struct {
		Days                      int    `xml:"Days,omitempty"`
		Date                      string `xml:"Date,omitempty"`
		ExpiredObjectDeleteMarker *bool  `xml:"ExpiredObjectDeleteMarker"`
	} `xml:"Expiration"`
	NoncurrentVersionExpiration *struct {
		NoncurrentDays          int `xml:"NoncurrentDays"`
		NewerNoncurrentVersions int `xml:"NewerNoncurrentVersions,omitempty"`
	} `xml:"NoncurrentVersionExpiration"`
	AbortIncompleteMultipartUpload *struct {
		DaysAfterInitiation int `xml:"DaysAfterInitiation"`
	} `xml:"AbortIncompleteMultipartUpload"`
	Transition           *struct{} `xml:"Transition"`
	NoncurrentTransition *struct{} `xml:"NoncurrentVersionTransition"`
}

func errMalformedLifecycle(format string, args ...any) error {
	return errMalformedXML(fmt.Errorf(format, args...))
}

// toRule checks one S3 rule and returns the nameserver's.
func (r lifecycleRule) toRule() (nsclient.LifecycleRule, error) {
	out := nsclient.LifecycleRule{ID: r.ID}
	switch r.Status {
	case "Enabled":
		out.Enabled = true
	case "Disabled":
	default:
		return out, errMalformedLifecycle("Status must be Enabled or Disabled")
	}
	if r.Transition != nil || r.NoncurrentTransition != nil {
		return out, s3err("NotImplemented", http.StatusNotImplemented, "Transitions are not implemented: depot has one storage class")
	}
	if r.Prefix != nil && r.Filter != nil {
		return out, errMalformedLifecycle("a rule has both Prefix and Filter")
	}
	if r.Prefix != nil {
		out.Prefix = *r.Prefix
	}
	if f := r.Filter; f != nil {
		n := 0
		for _, set := range []bool{f.Prefix != nil, f.Tag != nil, f.ObjectSizeGreaterThan != nil, f.ObjectSizeLessThan != nil, f.And != nil} {
			if set {
				n++
			}
		}
		if n > 1 {
			return out, errMalformedLifecycle("a Filter holds one condition, or And")
		}
		tags := map[string]string{}
		addTag := func(t lifecycleTag) error {
			if _, dup := tags[t.Key]; dup {
				return errInvalidArgument("Duplicate Tag Keys are not allowed")
			}
			tags[t.Key] = t.Value
			return nil
		}
		if f.Prefix != nil {
			out.Prefix = *f.Prefix
		}
		if f.Tag != nil {
			if err := addTag(*f.Tag); err != nil {
				return out, err
			}
		}
		setSize := func(gt, lt *int64) {
			if gt != nil {
				out.SizeGreaterThan = *gt
			}
			if lt != nil {
				out.SizeLessThan = *lt
			}
		}
		setSize(f.ObjectSizeGreaterThan, f.ObjectSizeLessThan)
		if a := f.And; a != nil {
			if a.Prefix != nil {
				out.Prefix = *a.Prefix
			}
			for _, t := range a.Tags {
				if err := addTag(t); err != nil {
					return out, err
				}
			}
			setSize(a.ObjectSizeGreaterThan, a.ObjectSizeLessThan)
		}
		if len(tags) > 0 {
			out.Tags = tags
		}
	}
	if e := r.Expiration; e != nil {
		set := 0
		if e.Days != 0 {
			if e.Days < 0 {
				return out, errInvalidArgument("'Days' for Expiration action must be a positive integer")
			}
			out.ExpireDays = e.Days
			set++
		}
		if e.Date != "" {
			d, err := time.Parse(time.RFC3339, e.Date)
			if err != nil {
				if d, err = time.Parse("2006-01-02", e.Date); err != nil {
					return out, errInvalidArgument("Invalid Expiration Date: %q", e.Date)
				}
			}
			if d = d.UTC(); d.Hour() != 0 || d.Minute() != 0 || d.Second() != 0 || d.Nanosecond() != 0 {
				return out, errInvalidArgument("'Date' must be at midnight GMT")
			}
			out.ExpireDate = d
			set++
		}
		if e.ExpiredObjectDeleteMarker != nil {
			out.ExpiredDeleteMarker = *e.ExpiredObjectDeleteMarker
			set++
		}
		if set != 1 {
			return out, errMalformedLifecycle("Expiration holds one of Days, Date or ExpiredObjectDeleteMarker")
		}
	}
	if nv := r.NoncurrentVersionExpiration; nv != nil {
		if nv.NoncurrentDays <= 0 {
			return out, errInvalidArgument("'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer")
		}
		out.NoncurrentDays, out.NewerNoncurrent = nv.NoncurrentDays, nv.NewerNoncurrentVersions
	}
	if a := r.AbortIncompleteMultipartUpload; a != nil {
		if a.DaysAfterInitiation <= 0 {
			return out, errInvalidArgument("'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer")
		}
		out.AbortUploadDays = a.DaysAfterInitiation
	}
	if out.ExpireDays == 0 && out.ExpireDate.IsZero() && !out.ExpiredDeleteMarker && out.NoncurrentDays == 0 && out.AbortUploadDays == 0 {
		return out, errMalformedLifecycle("a rule needs at least one action")
	}
	return out, nil
}

// fromRule is the S3 form of a nameserver rule.
func fromRule(r nsclient.LifecycleRule) lifecycleRule {
	out := lifecycleRule{ID: r.ID, Status: "Disabled", Filter: &lifecycleFilter{}}
	if r.Enabled {
		out.Status = "Enabled"
	}
	prefix := r.Prefix
	var gt, lt *int64
	if r.SizeGreaterThan > 0 {
		gt = &r.SizeGreaterThan
	}
	if r.SizeLessThan > 0 {
		lt = &r.SizeLessThan
	}
	conds := len(r.Tags)
	if prefix != "" {
		conds++
	}
	if gt != nil {
		conds++
	}
	if lt != nil {
		conds++
	}
	if conds > 1 {
		and := &struct {
			Prefix                *string        `xml:"Prefix"`
			Tags                  []lifecycleTag `xml:"Tag"`
			ObjectSizeGreaterThan *int64         `xml:"ObjectSizeGreaterThan"`
			ObjectSizeLessThan    *int64         `xml:"ObjectSizeLessThan"`
		}{ObjectSizeGreaterThan: gt, ObjectSizeLessThan: lt}
		if prefix != "" {
			and.Prefix = &prefix
		}
		for k, v := range r.Tags {
			and.Tags = append(and.Tags, lifecycleTag{k, v})
		}
		out.Filter.And = and
	} else {
		for k, v := range r.Tags {
			out.Filter.Tag = &lifecycleTag{k, v}
		}
		if conds == 0 || prefix != "" {
			out.Filter.Prefix = &prefix
		}
		out.Filter.ObjectSizeGreaterThan, out.Filter.ObjectSizeLessThan = gt, lt
	}
	if r.ExpireDays > 0 || !r.ExpireDate.IsZero() || r.ExpiredDeleteMarker {
		out.Expiration = &struct {
			Days                      int    `xml:"Days,omitempty"`
			Date                      string `xml:"Date,omitempty"`
			ExpiredObjectDeleteMarker *bool  `xml:"ExpiredObjectDeleteMarker"`
		}{Days: r.ExpireDays}
		if !r.ExpireDate.IsZero() {
			out.Expiration.Date = r.ExpireDate.UTC().Format(time.RFC3339)
		}
		if r.ExpiredDeleteMarker {
			t := true
			out.Expiration.ExpiredObjectDeleteMarker = &t
		}
	}
	if r.NoncurrentDays > 0 {
		out.NoncurrentVersionExpiration = &struct {
			NoncurrentDays          int `xml:"NoncurrentDays"`
			NewerNoncurrentVersions int `xml:"NewerNoncurrentVersions,omitempty"`
		}{r.NoncurrentDays, r.NewerNoncurrent}
	}
	if r.AbortUploadDays > 0 {
		out.AbortIncompleteMultipartUpload = &struct {
			DaysAfterInitiation int `xml:"DaysAfterInitiation"`
		}{r.AbortUploadDays}
	}
	return out
}

func (s *Server) putLifecycle(q *request) error {
	var c lifecycleConfiguration
	if err := readXML(q, &c); err != nil {
		return err
	}
	if len(c.Rules) == 0 {
		return errMalformedLifecycle("a configuration needs at least one rule")
	}
	rules := make([]nsclient.LifecycleRule, 0, len(c.Rules))
	for _, r := range c.Rules {
		nr, err := r.toRule()
		if err != nil {
			return err
		}
		rules = append(rules, nr)
	}
	if _, err := q.ns.SetBucket(q.ctx, q.bucket, nsclient.BucketSettings{Lifecycle: &rules}); err != nil {
		if errors.Is(err, depot.ErrBadRequest) {
			return errInvalidArgument("%v", err)
		}
		return bucketErr(q, err)
	}
	q.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) getLifecycle(q *request) error {
	b, err := q.ns.Bucket(q.ctx, q.bucket)
	if err != nil {
		return bucketErr(q, err)
	}
	if len(b.Lifecycle) == 0 {
		return s3err("NoSuchLifecycleConfiguration", http.StatusNotFound, "The lifecycle configuration does not exist")
	}
	c := lifecycleConfiguration{NS: s3NS}
	for _, r := range b.Lifecycle {
		c.Rules = append(c.Rules, fromRule(r))
	}
	s.writeXML(q, c)
	return nil
}

func (s *Server) deleteLifecycle(q *request) error {
	none := []nsclient.LifecycleRule{}
	if _, err := q.ns.SetBucket(q.ctx, q.bucket, nsclient.BucketSettings{Lifecycle: &none}); err != nil {
		return bucketErr(q, err)
	}
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}
