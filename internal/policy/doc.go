// Package policy parses and evaluates access policies in the JSON shape of
// AWS IAM: the identity policies kept with depot's S3 users and the bucket
// policies kept with buckets. It knows nothing of HTTP or of the nameserver:
// the gateway maps each S3 operation to an action and a resource and asks a
// Document for its decision.
//
// # Document
//
//	{
//	  "Version": "2012-10-17",              // or "2008-10-17"; may be absent
//	  "Id": "...",                          // optional, ignored
//	  "Statement": [ {                      // one statement or a list
//	    "Sid": "...",                       // optional, ignored
//	    "Effect": "Allow" | "Deny",
//	    "Principal": "*" | {"AWS": "KEY" | ["KEY", ...]},  // bucket policies only
//	    "Action": "s3:GetObject" | ["s3:Get*", ...],       // "*" and "s3:*" too
//	    "Resource": "arn:aws:s3:::bucket/prefix*" | [...],
//	    "Condition": {"StringLike": {"s3:prefix": ["reviews/*"]}}   // optional
//	  } ]
//	}
//
// Unknown elements (NotAction, NotResource, NotPrincipal among them) are
// refused rather than ignored: a policy that says more than depot
// understands must not grant more than its author meant.
//
// Actions: Parse refuses an action S3 does not have ("s3:PutObjct", or a
// wildcard such as "s3:Frob*" that matches none) as AWS does, with
// ErrInvalidAction ("Policy has invalid action"); the list of known
// actions (KnownAction) holds those the gateway authorises and the other
// actions AWS defines for S3. ParseStored reads documents kept before
// that check, where an unknown action simply matches no request.
//
// Matching: Action is compared without regard to case, Resource with it;
// both may hold the wildcards "*" (any run of characters, "/" included) and
// "?" (one character). A principal is "*" (anyone, anonymous requests
// included), a depot access key, or an IAM user ARN whose name is an access
// key ("arn:aws:iam::ACCOUNT:user/KEY"); depot users have no name apart
// from their access key.
//
// Conditions: the operators StringEquals, StringNotEquals, StringLike,
// StringNotLike (each also with the suffix "IfExists"),
// IpAddress and NotIpAddress. Keys are compared without regard to case; the
// gateway supplies s3:prefix, s3:delimiter and s3:max-keys for ListBucket
// and aws:SourceIp for every request. All operators of a statement must
// hold, each for at least one of its values (OR within a key, AND across
// keys). A key the request does not carry fails the positive operators and
// satisfies the negated ones, as on AWS; with "IfExists" a missing key
// satisfies any operator.
//
// # Evaluation
//
// Document.Evaluate returns Deny when any matching statement denies, Allow
// when one allows and none denies, and NotApplicable otherwise. Combine
// merges the answers of several documents the way AWS does within one
// account: an explicit Deny anywhere wins, else an Allow from any document
// allows, else the request is denied by default.
package policy
