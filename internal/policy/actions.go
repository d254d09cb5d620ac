package policy

import (
	"errors"
	"strings"
)

// ErrInvalidAction is returned (wrapped, with ErrMalformed) by Parse when
// a statement names an action that S3 does not have, such as
// "s3:PutObjct", or a wildcard that matches none. AWS refuses such a
// policy with MalformedPolicy, "Policy has invalid action".
var ErrInvalidAction = errors.New("Policy has invalid action")

// s3Actions are the IAM actions of Amazon S3's bucket and object
// resources: those the gateway authorises and the others AWS defines, so
// that a policy written for AWS is accepted. Compared in lower case.
var s3Actions = func() map[string]bool {
	names := []string{
		// Objects.
		"AbortMultipartUpload", "BypassGovernanceRetention", "DeleteObject",
		"DeleteObjectTagging", "DeleteObjectVersion", "DeleteObjectVersionTagging",
		"GetObject", "GetObjectAcl", "GetObjectAttributes", "GetObjectLegalHold",
		"GetObjectRetention", "GetObjectTagging", "GetObjectTorrent", "GetObjectVersion",
		"GetObjectVersionAcl", "GetObjectVersionAttributes", "GetObjectVersionForReplication",
		"GetObjectVersionTagging", "GetObjectVersionTorrent", "InitiateReplication",
		"ListMultipartUploadParts", "ObjectOwnerOverrideToBucketOwner", "PutObject",
		"PutObjectAcl", "PutObjectLegalHold", "PutObjectRetention", "PutObjectTagging",
		"PutObjectVersionAcl", "PutObjectVersionTagging", "ReplicateDelete",
		"ReplicateObject", "ReplicateTags", "RestoreObject",
		// Buckets.
		"CreateBucket", "DeleteBucket", "DeleteBucketOwnershipControls", "DeleteBucketPolicy",
		"DeleteBucketWebsite", "GetAccelerateConfiguration", "GetAnalyticsConfiguration",
		"GetBucketAcl", "GetBucketCORS", "GetBucketLocation", "GetBucketLogging",
		"GetBucketNotification", "GetBucketObjectLockConfiguration",
		"GetBucketOwnershipControls", "GetBucketPolicy", "GetBucketPolicyStatus",
		"GetBucketPublicAccessBlock", "GetBucketRequestPayment", "GetBucketTagging",
		"GetBucketVersioning", "GetBucketWebsite", "GetEncryptionConfiguration",
		"GetIntelligentTieringConfiguration", "GetInventoryConfiguration",
		"GetLifecycleConfiguration", "GetMetricsConfiguration", "GetReplicationConfiguration",
		"ListBucket", "ListBucketMultipartUploads", "ListBucketVersions",
		"PutAccelerateConfiguration", "PutAnalyticsConfiguration", "PutBucketAcl",
		"PutBucketCORS", "PutBucketLogging", "PutBucketNotification",
		"PutBucketObjectLockConfiguration", "PutBucketOwnershipControls", "PutBucketPolicy",
		"PutBucketPublicAccessBlock", "PutBucketRequestPayment", "PutBucketTagging",
		"PutBucketVersioning", "PutBucketWebsite", "PutEncryptionConfiguration",
		"PutIntelligentTieringConfiguration", "PutInventoryConfiguration",
		"PutLifecycleConfiguration", "PutMetricsConfiguration", "PutReplicationConfiguration",
		// The account, access points, batch jobs, Storage Lens.
		"CreateAccessPoint", "CreateAccessPointForObjectLambda", "CreateJob",
		"CreateMultiRegionAccessPoint", "DeleteAccessPoint", "DeleteAccessPointForObjectLambda",
		"DeleteAccessPointPolicy", "DeleteAccessPointPolicyForObjectLambda", "DeleteJobTagging",
		"DeleteMultiRegionAccessPoint", "DeleteStorageLensConfiguration",
		"DeleteStorageLensConfigurationTagging", "DescribeJob",
		"DescribeMultiRegionAccessPointOperation", "GetAccessPoint",
		"GetAccessPointConfigurationForObjectLambda", "GetAccessPointForObjectLambda",
		"GetAccessPointPolicy", "GetAccessPointPolicyForObjectLambda",
		"GetAccessPointPolicyStatus", "GetAccessPointPolicyStatusForObjectLambda",
		"GetAccountPublicAccessBlock", "GetJobTagging", "GetMultiRegionAccessPoint",
		"GetMultiRegionAccessPointPolicy", "GetMultiRegionAccessPointPolicyStatus",
		"GetStorageLensConfiguration", "GetStorageLensConfigurationTagging",
		"GetStorageLensDashboard", "ListAccessPoints", "ListAccessPointsForObjectLambda",
		"ListAllMyBuckets", "ListJobs", "ListMultiRegionAccessPoints",
		"ListStorageLensConfigurations", "ListTagsForResource", "PutAccessPointConfigurationForObjectLambda",
		"PutAccessPointPolicy", "PutAccessPointPolicyForObjectLambda",
		"PutAccessPointPublicAccessBlock", "PutAccountPublicAccessBlock", "PutJobTagging",
		"PutMultiRegionAccessPointPolicy", "PutStorageLensConfiguration",
		"PutStorageLensConfigurationTagging", "TagResource", "UntagResource",
		"UpdateJobPriority", "UpdateJobStatus",
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m["s3:"+strings.ToLower(n)] = true
	}
	return m
}()

// KnownAction reports whether action names an S3 action, without regard
// to case: "*", an action such as "s3:GetObject", or a wildcard pattern
// that matches at least one ("s3:*", "s3:Get*", "s3:?utObject").
func KnownAction(action string) bool {
	a := strings.ToLower(action)
	if a == "*" || s3Actions[a] {
		return true
	}
	if !strings.ContainsAny(a, "*?") {
		return false
	}
	for known := range s3Actions {
		if Match(a, known) {
			return true
		}
	}
	return false
}
