package policy

import (
	"encoding/json"
	"fmt"
)

// ARN returns the resource name of a bucket (key "") or of an object.
func ARN(bucket, key string) string {
	if key == "" {
		return "arn:aws:s3:::" + bucket
	}
	return "arn:aws:s3:::" + bucket + "/" + key
}

// PublicReadSid is the Sid of the statement that makes a bucket
// public-read: anyone may s3:GetObject its objects.
const PublicReadSid = "DepotPublicRead"

// PublicRead returns the statement that lets anyone read the objects of
// bucket.
func PublicRead(bucket string) Statement {
	return Statement{Sid: PublicReadSid, Effect: Allow, Principal: Principals{"*"},
		Action: List{"s3:GetObject"}, Resource: List{ARN(bucket, "*")}}
}

// SetPublicRead returns the bucket policy doc (may be empty) with the
// public-read statement added (on) or removed, as JSON; "" when no
// statement is left.
func SetPublicRead(doc, bucket string, on bool) (string, error) {
	d := &Document{Version: "2012-10-17"}
	if doc != "" {
		var err error
		if d, err = Parse([]byte(doc), Bucket); err != nil {
			return "", err
		}
	}
	kept := d.Statement[:0]
	for _, st := range d.Statement {
		if st.Sid != PublicReadSid {
			kept = append(kept, st)
		}
	}
	d.Statement = kept
	if on {
		d.Statement = append(d.Statement, PublicRead(bucket))
	}
	if len(d.Statement) == 0 {
		return "", nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("policy: %w", err)
	}
	return string(b), nil
}
