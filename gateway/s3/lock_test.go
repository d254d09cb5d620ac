package s3_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/minio-go/v7"

	"depot/internal/testcluster"
)

// TestS3ObjectLock drives S3 Object Lock with minio-go and aws-sdk-go-v2
// as the root user, who may do anything else: a version under COMPLIANCE
// retention or a legal hold cannot be deleted, nor its retention
// shortened; GOVERNANCE gives way only to the bypass header; the bucket's
// default retention applies to new versions; a delete without a version
// only adds a marker and the locked bytes stay readable; versioning
// cannot be suspended; a bucket without Object Lock refuses lock headers.
func TestS3ObjectLock(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	mc := mustMinio(t, c)
	cl := mustSDK(t, c.Endpoint(), c.User, c.Password, http.DefaultClient)
	ctx := ctxT(t)
	const b = "vault"
	if err := mc.MakeBucket(ctx, b, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatal(err)
	}
	if v, err := mc.GetBucketVersioning(ctx, b); err != nil || v.Status != "Enabled" {
		t.Fatalf("a lock bucket's versioning: %+v, %v", v, err)
	}
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	data := randBytes(t, 2000)
	put := func(key string, opts minio.PutObjectOptions) string {
		t.Helper()
		info, err := mc.PutObject(ctx, b, key, bytes.NewReader(data), int64(len(data)), opts)
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		return info.VersionID
	}
	locked := func(key, version string, bypass bool) {
		t.Helper()
		err := mc.RemoveObject(ctx, b, key, minio.RemoveObjectOptions{VersionID: version, GovernanceBypass: bypass})
		if code := minio.ToErrorResponse(err).Code; code != "AccessDenied" {
			t.Fatalf("delete of locked %s@%s (bypass %v): %v", key, version, bypass, err)
		}
		if _, err := mc.StatObject(ctx, b, key, minio.StatObjectOptions{VersionID: version}); err != nil {
			t.Fatalf("locked %s@%s gone: %v", key, version, err)
		}
	}
	comp := minio.Compliance
	gov := minio.Governance
	cv := put("compliance", minio.PutObjectOptions{Mode: comp, RetainUntilDate: until})
	st, err := mc.StatObject(ctx, b, "compliance", minio.StatObjectOptions{VersionID: cv})
	if err != nil || st.Metadata.Get("X-Amz-Object-Lock-Mode") != "COMPLIANCE" {
		t.Fatalf("HEAD of a locked version: %v %v", st.Metadata, err)
	}
	locked("compliance", cv, false)
	locked("compliance", cv, true)
	// Shortening COMPLIANCE is refused; extending is not.
	shorter := until.Add(-time.Minute)
	if err := mc.PutObjectRetention(ctx, b, "compliance", minio.PutObjectRetentionOptions{Mode: &comp, RetainUntilDate: &shorter, VersionID: cv, GovernanceBypass: true}); minio.ToErrorResponse(err).Code != "AccessDenied" {
		t.Fatalf("shorten COMPLIANCE: %v", err)
	}
	longer := until.Add(time.Hour)
	if err := mc.PutObjectRetention(ctx, b, "compliance", minio.PutObjectRetentionOptions{Mode: &comp, RetainUntilDate: &longer, VersionID: cv}); err != nil {
		t.Fatalf("extend COMPLIANCE: %v", err)
	}
	mode, date, err := mc.GetObjectRetention(ctx, b, "compliance", cv)
	if err != nil || *mode != comp || !date.Equal(longer) {
		t.Fatalf("retention: %v %v %v", mode, date, err)
	}
	// A delete without a version adds a marker; the locked bytes stay.
	if err := mc.RemoveObject(ctx, b, "compliance", minio.RemoveObjectOptions{}); err != nil {
		t.Fatalf("delete marker over a locked version: %v", err)
	}
	if _, err := mc.StatObject(ctx, b, "compliance", minio.StatObjectOptions{VersionID: cv}); err != nil {
		t.Fatalf("locked version behind the marker: %v", err)
	}

	// GOVERNANCE: only the bypass deletes it.
	gv := put("governance", minio.PutObjectOptions{Mode: gov, RetainUntilDate: until})
	locked("governance", gv, false)
	if err := mc.RemoveObject(ctx, b, "governance", minio.RemoveObjectOptions{VersionID: gv, GovernanceBypass: true}); err != nil {
		t.Fatalf("delete GOVERNANCE with the bypass: %v", err)
	}

	// Legal hold: no delete until it is off, bypass or not.
	hv := put("held", minio.PutObjectOptions{LegalHold: minio.LegalHoldEnabled})
	locked("held", hv, true)
	off := minio.LegalHoldDisabled
	if err := mc.PutObjectLegalHold(ctx, b, "held", minio.PutObjectLegalHoldOptions{VersionID: hv, Status: &off}); err != nil {
		t.Fatal(err)
	}
	if err := mc.RemoveObject(ctx, b, "held", minio.RemoveObjectOptions{VersionID: hv}); err != nil {
		t.Fatalf("delete after the hold is off: %v", err)
	}

	// Default retention applies to a write that names none.
	if err := mc.SetObjectLockConfig(ctx, b, &gov, aws.Uint(1), &[]minio.ValidityUnit{minio.Days}[0]); err != nil {
		t.Fatal(err)
	}
	dv := put("default", minio.PutObjectOptions{})
	if _, _, err := mc.GetObjectRetention(ctx, b, "default", dv); err != nil {
		t.Fatalf("default retention: %v", err)
	}
	locked("default", dv, false)
	// DeleteObjects reports the refusal per key.
	out, err := cl.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(b), Delete: &types.Delete{
		Objects: []types.ObjectIdentifier{{Key: aws.String("default"), VersionId: aws.String(dv)}}}})
	if err != nil || len(out.Errors) != 1 || aws.ToString(out.Errors[0].Code) != "AccessDenied" {
		t.Fatalf("DeleteObjects of a locked version: %+v, %v", out, err)
	}

	// Versioning stays enabled; other buckets refuse lock headers.
	if err := mc.SuspendVersioning(ctx, b); minio.ToErrorResponse(err).Code != "InvalidBucketState" {
		t.Fatalf("suspend versioning of a lock bucket: %v", err)
	}
	if err := mc.MakeBucket(ctx, "plain", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = mc.PutObject(ctx, "plain", "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{Mode: gov, RetainUntilDate: until})
	if code := minio.ToErrorResponse(err).Code; code != "InvalidRequest" {
		t.Fatalf("lock headers in a bucket without Object Lock: %v", err)
	}
	if _, _, _, _, err := mc.GetObjectLockConfig(ctx, "plain"); minio.ToErrorResponse(err).Code != "ObjectLockConfigurationNotFoundError" {
		t.Fatalf("lock configuration of a plain bucket: %v", err)
	}
}
