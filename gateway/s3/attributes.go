package s3

import (
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
)

// GetObjectAttributes (GET ?attributes): what x-amz-object-attributes
// asks for among ETag, ObjectSize, StorageClass and ObjectParts (the part
// sizes of a multipart object, paged by x-amz-max-parts and
// x-amz-part-number-marker) and Checksum (the one its PUT sent, if any;
// checksum.go).

type objectAttributes struct {
	XMLName      xml.Name            `xml:"GetObjectAttributesResponse"`
	NS           string              `xml:"xmlns,attr"`
	ETag         string              `xml:"ETag,omitempty"`
	Checksum     *checksumAttributes `xml:"Checksum,omitempty"`
	ObjectParts  *objectParts        `xml:"ObjectParts,omitempty"`
	StorageClass string              `xml:"StorageClass,omitempty"`
	ObjectSize   *int64              `xml:"ObjectSize,omitempty"`
}

type objectParts struct {
	TotalPartsCount      int          `xml:"PartsCount"`
	PartNumberMarker     int          `xml:"PartNumberMarker"`
	NextPartNumberMarker int          `xml:"NextPartNumberMarker"`
	MaxParts             int          `xml:"MaxParts"`
	IsTruncated          bool         `xml:"IsTruncated"`
	Parts                []objectPart `xml:"Part"`
}

type objectPart struct {
	PartNumber int   `xml:"PartNumber"`
	Size       int64 `xml:"Size"`
}

var knownAttributes = map[string]bool{"ETag": true, "Checksum": true, "ObjectParts": true, "StorageClass": true, "ObjectSize": true}

func (s *Server) getObjectAttributes(q *request) error {
	want := map[string]bool{}
	for _, v := range q.r.Header.Values("X-Amz-Object-Attributes") {
		for a := range strings.SplitSeq(v, ",") {
			a = strings.TrimSpace(a)
			if !knownAttributes[a] {
				return errInvalidArgument("Invalid attribute name specified: %q", a)
			}
			want[a] = true
		}
	}
	if len(want) == 0 {
		return errInvalidArgument("Missing required header for this request: x-amz-object-attributes")
	}
	maxParts, marker := 1000, 0
	if v := q.r.Header.Get("X-Amz-Max-Parts"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errInvalidArgument("max-parts must be a non-negative integer")
		}
		maxParts = min(n, 1000)
	}
	if v := q.r.Header.Get("X-Amz-Part-Number-Marker"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errInvalidArgument("part-number-marker must be a non-negative integer")
		}
		marker = n
	}
	version, versioned := requestedVersion(q)
	o, err := s.objectVersion(q, q.bucket, q.key, version, versioned)
	if err != nil {
		return err
	}
	setVersionHeader(q, s.s3VersionOf(q, q.bucket, o))
	if _, _, err := s.readKEK(q, objectPrefix, o); err != nil {
		return err
	}
	res := objectAttributes{NS: s3NS}
	if want["ETag"] {
		res.ETag = o.ETag
	}
	if want["Checksum"] {
		res.Checksum = checksumOf(o)
	}
	if want["StorageClass"] {
		res.StorageClass = "STANDARD"
	}
	if want["ObjectSize"] {
		size := o.Size
		res.ObjectSize = &size
	}
	if want["ObjectParts"] && len(o.PartSizes) > 0 {
		p := &objectParts{TotalPartsCount: len(o.PartSizes), PartNumberMarker: marker, MaxParts: maxParts}
		for i := marker; i < len(o.PartSizes); i++ {
			if len(p.Parts) == maxParts {
				p.IsTruncated = true
				break
			}
			p.Parts = append(p.Parts, objectPart{PartNumber: i + 1, Size: o.PartSizes[i]})
			p.NextPartNumberMarker = i + 1
		}
		res.ObjectParts = p
	}
	q.w.Header().Set("Last-Modified", o.Modified.UTC().Format(http.TimeFormat))
	s.writeXML(q, res)
	return nil
}
