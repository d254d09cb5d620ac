package s3_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/minio-go/v7"

	"depot/internal/testcluster"
)

// TestS3ConditionalWrites sends If-None-Match: * and If-Match on PutObject,
// CopyObject and CompleteMultipartUpload with aws-sdk-go-v2 and minio-go:
// a condition that does not hold is 412 PreconditionFailed (404 NoSuchKey
// for If-Match on a missing key) and changes nothing; racing conditional
// creates of one key have exactly one winner.
func TestS3ConditionalWrites(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Dataservers: 5, K: 2, M: 1})
	ctx := ctxT(t)
	cl := mustSDK(t, c.Endpoint(), c.User, c.Password, http.DefaultClient)
	mc := mustMinio(t, c)
	b := aws.String("cond")
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	putIf := func(key, body string, ifMatch, ifNone *string) (*s3.PutObjectOutput, error) {
		return cl.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String(key), Body: strings.NewReader(body), IfMatch: ifMatch, IfNoneMatch: ifNone})
	}
	body := func(t *testing.T, key string) string {
		t.Helper()
		out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String(key)})
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		defer out.Body.Close()
		got, _ := io.ReadAll(out.Body)
		return string(got)
	}
	wantCode := func(t *testing.T, what string, err error, code string) {
		t.Helper()
		if apiCode(err) != code {
			t.Fatalf("%s: %v, want %s", what, err, code)
		}
	}

	t.Run("PutIfNoneMatch", func(t *testing.T) {
		if _, err := putIf("once", "first", nil, aws.String("*")); err != nil {
			t.Fatalf("create-only put of a new key: %v", err)
		}
		_, err := putIf("once", "second", nil, aws.String("*"))
		wantCode(t, "create-only put of an existing key", err, "PreconditionFailed")
		if got := body(t, "once"); got != "first" {
			t.Fatalf("after a refused put: %q", got)
		}
		_, err = putIf("once", "third", nil, aws.String(`"0123"`))
		wantCode(t, "If-None-Match with an ETag", err, "NotImplemented")
	})

	t.Run("PutIfMatch", func(t *testing.T) {
		v1, err := putIf("cas", "v1", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		v2, err := putIf("cas", "v2", v1.ETag, nil)
		if err != nil {
			t.Fatalf("put with the current ETag: %v", err)
		}
		_, err = putIf("cas", "v3", v1.ETag, nil)
		wantCode(t, "put with a stale ETag", err, "PreconditionFailed")
		if got := body(t, "cas"); got != "v2" {
			t.Fatalf("after a refused put: %q", got)
		}
		_, err = putIf("missing", "x", v2.ETag, nil)
		wantCode(t, "If-Match on a missing key", err, "NoSuchKey")
		// minio-go sends the same headers.
		opts := minio.PutObjectOptions{}
		opts.SetMatchETag(strings.Trim(aws.ToString(v2.ETag), `"`))
		if _, err := mc.PutObject(ctx, "cond", "cas", strings.NewReader("v4"), 2, opts); err != nil {
			t.Fatalf("minio-go put with the current ETag: %v", err)
		}
		if _, err := mc.PutObject(ctx, "cond", "cas", strings.NewReader("v5"), 2, opts); minio.ToErrorResponse(err).Code != "PreconditionFailed" {
			t.Fatalf("minio-go put with a stale ETag: %v", err)
		}
	})

	t.Run("Copy", func(t *testing.T) {
		if _, err := putIf("src", "source bytes", nil, nil); err != nil {
			t.Fatal(err)
		}
		copyIf := func(dst string, ifMatch, ifNone *string) error {
			_, err := cl.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String(dst), CopySource: aws.String("cond/src"),
				IfMatch: ifMatch, IfNoneMatch: ifNone})
			return err
		}
		if err := copyIf("dst", nil, aws.String("*")); err != nil {
			t.Fatalf("create-only copy to a new key: %v", err)
		}
		wantCode(t, "create-only copy to an existing key", copyIf("once", nil, aws.String("*")), "PreconditionFailed")
		if got := body(t, "once"); got != "first" {
			t.Fatalf("after a refused copy: %q", got)
		}
		wantCode(t, "copy with a stale ETag", copyIf("dst", aws.String(`"00000000000000000000000000000000"`), nil), "PreconditionFailed")
		if got := body(t, "dst"); got != "source bytes" {
			t.Fatalf("dst: %q", got)
		}
	})

	t.Run("Complete", func(t *testing.T) {
		part := bytes.Repeat([]byte("p"), 1000)
		upload := func(t *testing.T, key string) (*string, []types.CompletedPart) {
			t.Helper()
			cr, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String(key)})
			if err != nil {
				t.Fatal(err)
			}
			up, err := cl.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String(key), UploadId: cr.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(part)})
			if err != nil {
				t.Fatal(err)
			}
			return cr.UploadId, []types.CompletedPart{{ETag: up.ETag, PartNumber: aws.Int32(1)}}
		}
		complete := func(key string, id *string, parts []types.CompletedPart, ifMatch, ifNone *string) (*s3.CompleteMultipartUploadOutput, error) {
			return cl.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String(key), UploadId: id,
				MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}, IfMatch: ifMatch, IfNoneMatch: ifNone})
		}
		id, parts := upload(t, "once")
		_, err := complete("once", id, parts, nil, aws.String("*"))
		wantCode(t, "create-only completion on an existing key", err, "PreconditionFailed")
		if got := body(t, "once"); got != "first" {
			t.Fatalf("after a refused completion: %q", got)
		}
		_, err = complete("once", id, parts, aws.String(`"00000000000000000000000000000000"`), nil)
		wantCode(t, "completion with a stale ETag", err, "PreconditionFailed")
		// The upload survived the refusals: it completes on the right
		// condition, and a retry of that completion answers the same.
		head, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("once")})
		if err != nil {
			t.Fatal(err)
		}
		done, err := complete("once", id, parts, head.ETag, nil)
		if err != nil {
			t.Fatalf("completion with the current ETag: %v", err)
		}
		again, err := complete("once", id, parts, head.ETag, nil)
		if err != nil || aws.ToString(again.ETag) != aws.ToString(done.ETag) {
			t.Fatalf("retried completion: %v, ETag %s, want %s", err, aws.ToString(again.ETag), aws.ToString(done.ETag))
		}
		if got := body(t, "once"); got != string(part) {
			t.Fatalf("after completion: %d bytes", len(got))
		}
		id, parts = upload(t, "mp-missing")
		_, err = complete("mp-missing", id, parts, aws.String(`"00000000000000000000000000000000"`), nil)
		wantCode(t, "If-Match completion on a missing key", err, "NoSuchKey")
		if _, err := complete("mp-missing", id, parts, nil, aws.String("*")); err != nil {
			t.Fatalf("create-only completion of a new key after a refusal: %v", err)
		}
	})

	t.Run("RacingCreates", func(t *testing.T) {
		// Each writer's bytes name it; the check is decided where the
		// write applies, so exactly one wins whatever the interleaving.
		const writers = 8
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Go(func() {
				_, errs[i] = putIf("race", fmt.Sprintf("writer %d", i), nil, aws.String("*"))
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("writers %d and %d both created the key", winner, i)
			case err == nil:
				winner = i
			case apiCode(err) != "PreconditionFailed":
				t.Fatalf("writer %d: %v", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no writer created the key")
		}
		if got := body(t, "race"); got != fmt.Sprintf("writer %d", winner) {
			t.Fatalf("key holds %q, the winner was writer %d", got, winner)
		}
	})
}
