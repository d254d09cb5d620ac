package s3

import (
	"strings"

	"depot"
)

// Checksums (x-amz-checksum-crc32, -crc32c, -crc64nvme, -sha1, -sha256).
// Package sigv4 checks the one a PUT sends, as a header or an aws-chunked
// trailer, against the body; the gateway keeps it in the object's Meta
// under its header name and returns it on GET and HEAD of the whole object
// when the request asks with x-amz-checksum-mode: ENABLED, and in
// GetObjectAttributes. It is the checksum of the whole object
// (x-amz-checksum-type FULL_OBJECT). A copy keeps it (the bytes are the
// same); a multipart object has none (its parts' checksums are checked
// when they arrive, not combined).

// checksumPrefix starts the Meta key of an object's checksum.
const checksumPrefix = "x-amz-checksum-"

// setChecksum records a verified checksum (name, value) in meta.
func setChecksum(meta map[string]string, sum [2]string) map[string]string {
	if sum[0] == "" {
		return meta
	}
	if meta == nil {
		meta = make(map[string]string)
	}
	meta[sum[0]] = sum[1]
	return meta
}

// objectChecksum returns the checksum kept with o (header name, value).
func objectChecksum(o depot.Object) (string, string) {
	for k, v := range o.Meta {
		if strings.HasPrefix(k, checksumPrefix) && k != "x-amz-checksum-type" {
			return k, v
		}
	}
	return "", ""
}

// writeChecksum sends o's checksum on a GET or HEAD of the whole object
// that asked for it.
func writeChecksum(q *request, o depot.Object, whole bool) {
	if !whole || !strings.EqualFold(q.r.Header.Get("X-Amz-Checksum-Mode"), "ENABLED") {
		return
	}
	if name, value := objectChecksum(o); name != "" {
		h := q.w.Header()
		h.Set(name, value)
		h.Set("x-amz-checksum-type", "FULL_OBJECT")
	}
}

// checksumAttributes is the Checksum element of GetObjectAttributes.
type checksumAttributes struct {
	CRC32        string `xml:"ChecksumCRC32,omitempty"`
	CRC32C       string `xml:"ChecksumCRC32C,omitempty"`
	CRC64NVME    string `xml:"ChecksumCRC64NVME,omitempty"`
	SHA1         string `xml:"ChecksumSHA1,omitempty"`
	SHA256       string `xml:"ChecksumSHA256,omitempty"`
	ChecksumType string `xml:"ChecksumType,omitempty"`
}

func checksumOf(o depot.Object) *checksumAttributes {
	name, value := objectChecksum(o)
	c := &checksumAttributes{ChecksumType: "FULL_OBJECT"}
	switch strings.TrimPrefix(name, checksumPrefix) {
	case "crc32":
		c.CRC32 = value
	case "crc32c":
		c.CRC32C = value
	case "crc64nvme":
		c.CRC64NVME = value
	case "sha1":
		c.SHA1 = value
	case "sha256":
		c.SHA256 = value
	default:
		return nil
	}
	return c
}
