package s3

import (
	"encoding/xml"
	"errors"
	"net/http"
	"strings"
	"time"

	"depot"
	"depot/nameserver/nsclient"
)

// S3 Object Lock. The nameserver keeps each version's lock and refuses,
// in the transaction that would do it, to delete or replace a protected
// version (nameserver/lock.go); this file speaks S3 about it: the bucket's
// ObjectLockConfiguration, the x-amz-object-lock-* headers of writes and
// reads, Put/GetObjectRetention, Put/GetObjectLegalHold and
// x-amz-bypass-governance-retention.

const (
	hdrLockMode      = "X-Amz-Object-Lock-Mode"
	hdrLockUntil     = "X-Amz-Object-Lock-Retain-Until-Date"
	hdrLockLegalHold = "X-Amz-Object-Lock-Legal-Hold"
	hdrBypass        = "X-Amz-Bypass-Governance-Retention"
)

func errNoLockConfig() *Error {
	return s3err("InvalidRequest", http.StatusBadRequest, "Bucket is missing Object Lock Configuration")
}

// parseLockDate reads a retain-until date as S3 writes it (ISO 8601).
func parseLockDate(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000Z", time.RFC3339} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errInvalidArgument("The retain until date must be an ISO 8601 date: %q", v)
}

// lockFromHeaders reads the Object Lock a write asks for (nil: none),
// authorised as S3 does: retention needs s3:PutObjectRetention, a legal
// hold s3:PutObjectLegalHold.
func (s *Server) lockFromHeaders(q *request) (*depot.ObjectLock, error) {
	h := q.r.Header
	mode, until, hold := h.Get(hdrLockMode), h.Get(hdrLockUntil), h.Get(hdrLockLegalHold)
	if mode == "" && until == "" && hold == "" {
		return nil, nil
	}
	l := &depot.ObjectLock{}
	if mode != "" || until != "" {
		if mode == "" || until == "" {
			return nil, errInvalidArgument("x-amz-object-lock-mode and x-amz-object-lock-retain-until-date must both be supplied")
		}
		if mode != depot.LockGovernance && mode != depot.LockCompliance {
			return nil, errInvalidArgument("Unknown wormMode directive: %q", mode)
		}
		t, err := parseLockDate(until)
		if err != nil {
			return nil, err
		}
		if !t.After(s.cfg.Now()) {
			return nil, errInvalidArgument("The retain until date must be in the future!")
		}
		if err := s.authorize(q, "s3:PutObjectRetention", q.bucket, q.key); err != nil {
			return nil, err
		}
		l.Mode, l.RetainUntil = mode, t
	}
	switch hold {
	case "":
	case "ON", "OFF":
		if err := s.authorize(q, "s3:PutObjectLegalHold", q.bucket, q.key); err != nil {
			return nil, err
		}
		l.LegalHold = hold == "ON"
	default:
		return nil, errInvalidArgument("Legal Hold must be either of 'ON' or 'OFF'")
	}
	return l, nil
}

// writeLockHeaders reports a version's lock on GET and HEAD.
func writeLockHeaders(h http.Header, o depot.Object) {
	l := o.Lock
	if l == nil {
		return
	}
	if l.Mode != "" {
		h.Set(hdrLockMode, l.Mode)
		h.Set(hdrLockUntil, l.RetainUntil.UTC().Format(time.RFC3339))
	}
	if l.LegalHold {
		h.Set(hdrLockLegalHold, "ON")
	}
}

// bypassGovernance reports whether a delete may lift GOVERNANCE retention:
// it asks to (x-amz-bypass-governance-retention: true) and the caller is
// allowed s3:BypassGovernanceRetention on key.
func (s *Server) bypassGovernance(q *request, key string) (bool, error) {
	if !strings.EqualFold(q.r.Header.Get(hdrBypass), "true") {
		return false, nil
	}
	return s.allowed(q, "s3:BypassGovernanceRetention", q.bucket, key)
}

type objectLockConfiguration struct {
	XMLName           xml.Name `xml:"ObjectLockConfiguration"`
	NS                string   `xml:"xmlns,attr,omitempty"`
	ObjectLockEnabled string   `xml:"ObjectLockEnabled,omitempty"`
	Rule              *struct {
		DefaultRetention struct {
			Mode  string `xml:"Mode"`
			Days  int    `xml:"Days,omitempty"`
			Years int    `xml:"Years,omitempty"`
		} `xml:"DefaultRetention"`
	} `xml:"Rule,omitempty"`
}

func (s *Server) putObjectLockConfiguration(q *request) error {
	var c objectLockConfiguration
	if err := readXML(q, &c); err != nil {
		return err
	}
	if c.ObjectLockEnabled != "Enabled" {
		return errMalformedXML(errors.New("ObjectLockEnabled must be Enabled"))
	}
	b, err := q.ns.Bucket(q.ctx, q.bucket)
	if err != nil {
		return bucketErr(q, err)
	}
	if !b.ObjectLock && b.Versioning != nsclient.VersioningEnabled {
		return s3err("InvalidBucketState", http.StatusConflict, "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration")
	}
	on := true
	st := nsclient.BucketSettings{ObjectLock: &on, DefaultRetention: &nsclient.DefaultRetention{}}
	if r := c.Rule; r != nil {
		d := r.DefaultRetention
		if d.Mode != depot.LockGovernance && d.Mode != depot.LockCompliance || (d.Days > 0) == (d.Years > 0) || d.Days < 0 || d.Years < 0 {
			return errMalformedXML(errors.New("DefaultRetention needs a Mode and either Days or Years"))
		}
		st.DefaultRetention = &nsclient.DefaultRetention{Mode: d.Mode, Days: d.Days, Years: d.Years}
	}
	if _, err := q.ns.SetBucket(q.ctx, q.bucket, st); err != nil {
		return bucketErr(q, err)
	}
	s.forgetBucket(q.bucket)
	q.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) getObjectLockConfiguration(q *request) error {
	b, err := q.ns.Bucket(q.ctx, q.bucket)
	if err != nil {
		return bucketErr(q, err)
	}
	if !b.ObjectLock {
		return s3err("ObjectLockConfigurationNotFoundError", http.StatusNotFound, "Object Lock configuration does not exist for this bucket")
	}
	c := objectLockConfiguration{NS: s3NS, ObjectLockEnabled: "Enabled"}
	if d := b.DefaultRetention; d != nil {
		c.Rule = &struct {
			DefaultRetention struct {
				Mode  string `xml:"Mode"`
				Days  int    `xml:"Days,omitempty"`
				Years int    `xml:"Years,omitempty"`
			} `xml:"DefaultRetention"`
		}{}
		c.Rule.DefaultRetention.Mode, c.Rule.DefaultRetention.Days, c.Rule.DefaultRetention.Years = d.Mode, d.Days, d.Years
	}
	s.writeXML(q, c)
	return nil
}

type retention struct {
	XMLName         xml.Name `xml:"Retention"`
	NS              string   `xml:"xmlns,attr,omitempty"`
	Mode            string   `xml:"Mode,omitempty"`
	RetainUntilDate string   `xml:"RetainUntilDate,omitempty"`
}

type legalHold struct {
	XMLName xml.Name `xml:"LegalHold"`
	NS      string   `xml:"xmlns,attr,omitempty"`
	Status  string   `xml:"Status"`
}

// lockedVersion reads the version a lock request names and checks that
// its bucket has Object Lock.
func (s *Server) lockedVersion(q *request) (depot.Object, string, error) {
	version, versioned := requestedVersion(q)
	o, err := s.objectVersion(q, q.bucket, q.key, version, versioned)
	if err != nil {
		return o, "", err
	}
	if bi, err := s.bucketInfo(q.ctx, q, q.bucket); err != nil {
		return o, "", err
	} else if !bi.objectLock {
		return o, "", errNoLockConfig()
	}
	if !versioned {
		// The version read, by its name: a version written meanwhile
		// must not get this lock.
		version = o.VersionID
		if version == "" {
			version = nullVersion
		}
	}
	return o, version, nil
}

func (s *Server) getObjectRetention(q *request) error {
	o, _, err := s.lockedVersion(q)
	if err != nil {
		return err
	}
	if o.Lock == nil || o.Lock.Mode == "" {
		return s3err("NoSuchObjectLockConfiguration", http.StatusNotFound, "The specified object does not have a ObjectLock configuration")
	}
	s.writeXML(q, retention{NS: s3NS, Mode: o.Lock.Mode, RetainUntilDate: o.Lock.RetainUntil.UTC().Format(time.RFC3339)})
	return nil
}

func (s *Server) putObjectRetention(q *request) error {
	var r retention
	if err := readXML(q, &r); err != nil {
		return err
	}
	_, version, err := s.lockedVersion(q)
	if err != nil {
		return err
	}
	l := &depot.ObjectLock{}
	if r.Mode != "" || r.RetainUntilDate != "" {
		if r.Mode != depot.LockGovernance && r.Mode != depot.LockCompliance {
			return errMalformedXML(errors.New("Mode must be GOVERNANCE or COMPLIANCE"))
		}
		t, err := parseLockDate(r.RetainUntilDate)
		if err != nil {
			return err
		}
		if !t.After(s.cfg.Now()) {
			return errInvalidArgument("The retain until date must be in the future!")
		}
		l.Mode, l.RetainUntil = r.Mode, t
	}
	bypass, err := s.bypassGovernance(q, q.key)
	if err != nil {
		return err
	}
	if err := q.ns.SetLock(q.ctx, q.bucket, q.key, version, nsclient.LockRequest{Retention: l, Bypass: bypass}); err != nil {
		return err
	}
	q.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) getObjectLegalHold(q *request) error {
	o, _, err := s.lockedVersion(q)
	if err != nil {
		return err
	}
	st := "OFF"
	if o.Lock != nil && o.Lock.LegalHold {
		st = "ON"
	}
	s.writeXML(q, legalHold{NS: s3NS, Status: st})
	return nil
}

func (s *Server) putObjectLegalHold(q *request) error {
	var h legalHold
	if err := readXML(q, &h); err != nil {
		return err
	}
	if h.Status != "ON" && h.Status != "OFF" {
		return errMalformedXML(errors.New("Status must be ON or OFF"))
	}
	_, version, err := s.lockedVersion(q)
	if err != nil {
		return err
	}
	on := h.Status == "ON"
	if err := q.ns.SetLock(q.ctx, q.bucket, q.key, version, nsclient.LockRequest{LegalHold: &on}); err != nil {
		return err
	}
	q.w.WriteHeader(http.StatusOK)
	return nil
}
