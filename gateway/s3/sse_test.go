package s3_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"

	"depot"
	"depot/gateway/s3"
	"depot/gateway/s3/sse"
	"depot/internal/testcluster"
	"depot/nameserver/nsclient"
)

// patterned returns n bytes of a repeated text, to be searched for on disk.
func patterned(text string, n int) []byte {
	return bytes.Repeat([]byte(text), n/len(text)+1)[:n]
}

func mustGet(t *testing.T, mc *minio.Client, bucket, key string, opts minio.GetObjectOptions) []byte {
	t.Helper()
	o, err := mc.GetObject(ctxT(t), bucket, key, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return b
}

func mustPut(t *testing.T, mc *minio.Client, bucket, key string, body []byte, opts minio.PutObjectOptions) minio.UploadInfo {
	t.Helper()
	info, err := mc.PutObject(ctxT(t), bucket, key, bytes.NewReader(body), int64(len(body)), opts)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return info
}

func minioAt(t *testing.T, endpoint, user, secret string) *minio.Client {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(user, secret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

func errCode(err error) string { return minio.ToErrorResponse(err).Code }

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// TestS3Encryption covers SSE-S3 and SSE-C through minio-go and
// aws-sdk-go-v2: byte-exact reads, range reads at and around chunk
// boundaries, multipart, copies between plain and encrypted objects,
// right, wrong and missing customer keys, bucket default encryption, and
// shard files on disk that never hold an encrypted object's plaintext.
func TestS3Encryption(t *testing.T) {
	k1 := "1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	kr1, err := sse.ParseKeyring(k1)
	if err != nil {
		t.Fatal(err)
	}
	c := testcluster.New(t, testcluster.Options{SSEKeys: kr1})
	mc := mustMinio(t, c)
	ctx := ctxT(t)
	const bucket = "secret"
	if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	ns := c.NSClient()
	meta := func(t *testing.T, key string) depot.Object {
		t.Helper()
		o, err := ns.GetObject(ctxT(t), bucket, key)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	sseS3 := encrypt.NewSSE()
	ckey := bytes.Repeat([]byte{0x5c}, 32)
	ssec, err := encrypt.NewSSEC(ckey)
	if err != nil {
		t.Fatal(err)
	}
	wrong, _ := encrypt.NewSSEC(bytes.Repeat([]byte{0x5d}, 32))
	size := 1<<20 + 12345
	if testing.Short() {
		size = 150_000
	}
	body := randBytes(t, size)

	t.Run("S3PutGet", func(t *testing.T) {
		ctx := ctxT(t)
		info := mustPut(t, mc, bucket, "s3obj", body, minio.PutObjectOptions{ServerSideEncryption: sseS3})
		if info.ETag != md5hex(body) {
			t.Fatalf("ETag %s, want the plaintext's MD5", info.ETag)
		}
		if got := mustGet(t, mc, bucket, "s3obj", minio.GetObjectOptions{}); !bytes.Equal(got, body) {
			t.Fatalf("got %d bytes, not the %d put", len(got), len(body))
		}
		st, err := mc.StatObject(ctx, bucket, "s3obj", minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st.Size != int64(size) || st.Metadata.Get("X-Amz-Server-Side-Encryption") != "AES256" {
			t.Fatalf("HEAD: size %d, encryption %q", st.Size, st.Metadata.Get("X-Amz-Server-Side-Encryption"))
		}
		for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "s3obj"}) {
			if o.Err != nil || o.Size != int64(size) {
				t.Fatalf("LIST: %+v", o)
			}
		}
		o := meta(t, "s3obj")
		var segs int64
		for _, sg := range o.Segments {
			segs += sg.Size
		}
		if o.Encryption == nil || o.Encryption.Mode != depot.EncryptionS3 || o.Size != int64(size) || segs <= o.Size {
			t.Fatalf("metadata: size %d, segments %d, encryption %+v", o.Size, segs, o.Encryption)
		}
	})

	t.Run("S3Ranges", func(t *testing.T) {
		check := func(off, n int64) {
			t.Helper()
			opts := minio.GetObjectOptions{}
			if err := opts.SetRange(off, off+n-1); err != nil {
				t.Fatal(err)
			}
			if got := mustGet(t, mc, bucket, "s3obj", opts); !bytes.Equal(got, body[off:off+n]) {
				t.Fatalf("range %d+%d: %d bytes, wrong", off, n, len(got))
			}
		}
		total := int64(size)
		const cs = sse.DefaultChunkSize
		step := int64(3 * cs)
		if testing.Short() {
			step = total // the first boundary only
		}
		for b := int64(cs); b < total; b += step {
			for _, r := range [][2]int64{{b - 1, 2}, {b, 1}, {b - 1, 1}, {b, cs}, {b - cs, cs}, {b + 1, cs - 2}} {
				if r[0] >= 0 && r[0]+r[1] <= total {
					check(r[0], r[1])
				}
			}
		}
		check(total-1, 1)
		rng := rand.New(rand.NewPCG(7, 8))
		tries := 40
		if testing.Short() {
			tries = 4
		}
		for range tries {
			off := rng.Int64N(total)
			check(off, 1+rng.Int64N(min(total-off, 3*cs)))
		}
	})

	t.Run("SSEC", func(t *testing.T) {
		ctx := ctxT(t)
		mustPut(t, mc, bucket, "cobj", body, minio.PutObjectOptions{ServerSideEncryption: ssec})
		got := mustGet(t, mc, bucket, "cobj", minio.GetObjectOptions{ServerSideEncryption: ssec})
		if !bytes.Equal(got, body) {
			t.Fatal("SSE-C object read back wrong")
		}
		opts := minio.GetObjectOptions{ServerSideEncryption: ssec}
		opts.SetRange(70000, 140000)
		if got := mustGet(t, mc, bucket, "cobj", opts); !bytes.Equal(got, body[70000:140001]) {
			t.Fatal("SSE-C range read wrong")
		}
		st, err := mc.StatObject(ctx, bucket, "cobj", minio.StatObjectOptions{ServerSideEncryption: ssec})
		if err != nil {
			t.Fatal(err)
		}
		sum := md5.Sum(ckey)
		if st.Metadata.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm") != "AES256" ||
			st.Metadata.Get("X-Amz-Server-Side-Encryption-Customer-Key-Md5") != base64.StdEncoding.EncodeToString(sum[:]) {
			t.Fatalf("HEAD headers: %v", st.Metadata)
		}
		if st.ETag == md5hex(body) {
			t.Fatal("SSE-C ETag is the plaintext's MD5")
		}
		if o := meta(t, "cobj"); o.ETag != st.ETag || o.Encryption.Mode != depot.EncryptionC {
			t.Fatalf("ETag %s in HEAD, %s stored", st.ETag, o.ETag)
		}
		// Missing key: 400 InvalidRequest; wrong key: 403 AccessDenied;
		// a key for a plain object: 400.
		if _, err := mc.StatObject(ctx, bucket, "cobj", minio.StatObjectOptions{}); minio.ToErrorResponse(err).StatusCode != http.StatusBadRequest {
			t.Fatalf("HEAD without key: %v", err)
		}
		o, _ := mc.GetObject(ctx, bucket, "cobj", minio.GetObjectOptions{})
		if _, err := io.ReadAll(o); errCode(err) != "InvalidRequest" {
			t.Fatalf("GET without key: %v", err)
		}
		o, _ = mc.GetObject(ctx, bucket, "cobj", minio.GetObjectOptions{ServerSideEncryption: wrong})
		if _, err := io.ReadAll(o); errCode(err) != "AccessDenied" || minio.ToErrorResponse(err).StatusCode != http.StatusForbidden {
			t.Fatalf("GET with a wrong key: %v", err)
		}
		mustPut(t, mc, bucket, "plainobj", []byte("plain"), minio.PutObjectOptions{})
		o, _ = mc.GetObject(ctx, bucket, "plainobj", minio.GetObjectOptions{ServerSideEncryption: ssec})
		if _, err := io.ReadAll(o); errCode(err) != "InvalidRequest" {
			t.Fatalf("GET of a plain object with a key: %v", err)
		}
	})

	t.Run("Multipart", func(t *testing.T) {
		ctx := ctxT(t)
		// Two parts that end mid-chunk; ranges across the part boundary.
		// A second gateway with a small minimum part size keeps it quick.
		part1, part2 := randBytes(t, 2<<20+5), randBytes(t, 1<<20+7)
		if testing.Short() {
			part1, part2 = randBytes(t, 200_005), randBytes(t, 100_007)
		}
		whole := append(bytes.Clone(part1), part2...)
		ts := httptest.NewUnstartedServer(newS3(t, c, s3.Config{Keyring: c.Opts.SSEKeys, MinPartSize: 64 << 10}))
		ts.StartTLS()
		t.Cleanup(ts.Close)
		cl := mustSDK(t, ts.URL, c.User, c.Password, ts.Client())
		b64 := base64.StdEncoding.EncodeToString(ckey)
		sum := md5.Sum(ckey)
		keyMD5 := base64.StdEncoding.EncodeToString(sum[:])
		for _, mode := range []string{"SSE-S3", "SSE-C"} {
			key := "mp-" + mode
			cin := &awss3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)}
			if mode == "SSE-S3" {
				cin.ServerSideEncryption = types.ServerSideEncryptionAes256
			} else {
				cin.SSECustomerAlgorithm, cin.SSECustomerKey, cin.SSECustomerKeyMD5 = aws.String("AES256"), aws.String(b64), aws.String(keyMD5)
			}
			cu, err := cl.CreateMultipartUpload(ctx, cin)
			if err != nil {
				t.Fatal(err)
			}
			if mode == "SSE-S3" && cu.ServerSideEncryption != types.ServerSideEncryptionAes256 {
				t.Fatalf("create: encryption %q", cu.ServerSideEncryption)
			}
			var done []types.CompletedPart
			for i, p := range [][]byte{part1, part2} {
				in := &awss3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: cu.UploadId,
					PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p)}
				if mode == "SSE-C" {
					in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = aws.String("AES256"), aws.String(b64), aws.String(keyMD5)
				}
				up, err := cl.UploadPart(ctx, in)
				if err != nil {
					t.Fatalf("%s part %d: %v", mode, i+1, err)
				}
				done = append(done, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: up.ETag})
			}
			if mode == "SSE-C" { // a part without the upload's key is refused
				_, err := cl.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: cu.UploadId,
					PartNumber: aws.Int32(3), Body: bytes.NewReader([]byte("x"))})
				if apiCode(err) != "InvalidRequest" {
					t.Fatalf("part without key: %v", err)
				}
			}
			if _, err := cl.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key),
				UploadId: cu.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}); err != nil {
				t.Fatal(err)
			}
			opts := minio.GetObjectOptions{}
			if mode == "SSE-C" {
				opts.ServerSideEncryption = ssec
			}
			if got := mustGet(t, mc, bucket, key, opts); !bytes.Equal(got, whole) {
				t.Fatalf("%s multipart read back wrong", mode)
			}
			off := int64(len(part1)) - 100_000
			opts.SetRange(off, off+199_999)
			if got := mustGet(t, mc, bucket, key, opts); !bytes.Equal(got, whole[off:off+200_000]) {
				t.Fatalf("%s range across parts wrong", mode)
			}
			opts = minio.GetObjectOptions{ServerSideEncryption: opts.ServerSideEncryption}
			opts.PartNumber = 2
			if got := mustGet(t, mc, bucket, key, opts); !bytes.Equal(got, part2) {
				t.Fatalf("%s part 2 wrong", mode)
			}
			if o := meta(t, key); o.Size != int64(len(whole)) || len(o.Encryption.Streams) != 2 {
				t.Fatalf("%s: size %d, %d streams", mode, o.Size, len(o.Encryption.Streams))
			}
		}
	})

	t.Run("Copy", func(t *testing.T) {
		ctx := ctxT(t)
		mustPut(t, mc, bucket, "plain-src", body, minio.PutObjectOptions{})
		copyTo := func(src minio.CopySrcOptions, dst minio.CopyDestOptions) {
			t.Helper()
			src.Bucket, dst.Bucket = bucket, bucket
			if _, err := mc.CopyObject(ctx, dst, src); err != nil {
				t.Fatalf("copy %s to %s: %v", src.Object, dst.Object, err)
			}
		}
		copyTo(minio.CopySrcOptions{Object: "plain-src"}, minio.CopyDestOptions{Object: "p2s3", Encryption: sseS3})
		copyTo(minio.CopySrcOptions{Object: "p2s3"}, minio.CopyDestOptions{Object: "s32p"})
		copyTo(minio.CopySrcOptions{Object: "p2s3"}, minio.CopyDestOptions{Object: "s32c", Encryption: ssec})
		copyTo(minio.CopySrcOptions{Object: "s32c", Encryption: ssec}, minio.CopyDestOptions{Object: "c2s3", Encryption: sseS3})
		for key, mode := range map[string]string{"p2s3": depot.EncryptionS3, "s32p": "", "s32c": depot.EncryptionC, "c2s3": depot.EncryptionS3} {
			opts := minio.GetObjectOptions{}
			if mode == depot.EncryptionC {
				opts.ServerSideEncryption = ssec
			}
			if got := mustGet(t, mc, bucket, key, opts); !bytes.Equal(got, body) {
				t.Fatalf("%s read back wrong", key)
			}
			if o := meta(t, key); encModeOf(o) != mode {
				t.Fatalf("%s: mode %q, want %q", key, encModeOf(o), mode)
			}
		}
		// The copy source's key is required, and must be right.
		_, err := mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: bucket, Object: "nokey"}, minio.CopySrcOptions{Bucket: bucket, Object: "s32c"})
		if errCode(err) != "InvalidRequest" {
			t.Fatalf("copy without the source key: %v", err)
		}
		_, err = mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: bucket, Object: "nokey"}, minio.CopySrcOptions{Bucket: bucket, Object: "s32c", Encryption: wrong})
		if errCode(err) != "AccessDenied" {
			t.Fatalf("copy with a wrong source key: %v", err)
		}
		// Encrypting an object in place is a legal copy onto itself.
		copyTo(minio.CopySrcOptions{Object: "plain-src"}, minio.CopyDestOptions{Object: "plain-src", Encryption: sseS3})
		if o := meta(t, "plain-src"); encModeOf(o) != depot.EncryptionS3 {
			t.Fatal("copy onto itself did not encrypt")
		}
	})

	t.Run("BucketDefault", func(t *testing.T) {
		ctx := ctxT(t)
		ts := httptest.NewServer(c.GW.Server.Handler())
		t.Cleanup(ts.Close)
		cl := mustSDK(t, ts.URL, c.User, c.Password, ts.Client())
		const b = "default-enc"
		if _, err := cl.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
		_, err := cl.GetBucketEncryption(ctx, &awss3.GetBucketEncryptionInput{Bucket: aws.String(b)})
		if apiCode(err) != "ServerSideEncryptionConfigurationNotFoundError" {
			t.Fatalf("get before put: %v", err)
		}
		if _, err := cl.PutBucketEncryption(ctx, &awss3.PutBucketEncryptionInput{Bucket: aws.String(b),
			ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{Rules: []types.ServerSideEncryptionRule{{
				ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{SSEAlgorithm: types.ServerSideEncryptionAes256}}}}}); err != nil {
			t.Fatal(err)
		}
		got, err := cl.GetBucketEncryption(ctx, &awss3.GetBucketEncryptionInput{Bucket: aws.String(b)})
		if err != nil || len(got.ServerSideEncryptionConfiguration.Rules) != 1 ||
			got.ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault.SSEAlgorithm != types.ServerSideEncryptionAes256 {
			t.Fatalf("get: %+v %v", got, err)
		}
		put, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("k"), Body: bytes.NewReader(body[:1000])})
		if err != nil || put.ServerSideEncryption != types.ServerSideEncryptionAes256 {
			t.Fatalf("put under the default: %+v %v", put, err)
		}
		if o, err := ns.GetObject(ctx, b, "k"); err != nil || encModeOf(o) != depot.EncryptionS3 {
			t.Fatalf("stored %q, %v", encModeOf(o), err)
		}
		if _, err := cl.DeleteBucketEncryption(ctx, &awss3.DeleteBucketEncryptionInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("k2"), Body: bytes.NewReader(body[:1000])}); err != nil {
			t.Fatal(err)
		}
		if o, _ := ns.GetObject(ctx, b, "k2"); o.Encryption != nil {
			t.Fatal("encrypted after the default was deleted")
		}
		_, err = cl.PutBucketEncryption(ctx, &awss3.PutBucketEncryptionInput{Bucket: aws.String(b),
			ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{Rules: []types.ServerSideEncryptionRule{{
				ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{SSEAlgorithm: types.ServerSideEncryptionAwsKms}}}}})
		if apiCode(err) != "NotImplemented" {
			t.Fatalf("KMS default: %v", err)
		}
	})

	t.Run("NothingPlainOnDisk", func(t *testing.T) {
		n := 512 << 10
		if testing.Short() {
			n = 128 << 10
		}
		pPlain := "PLAIN-MARKER:the quick brown fox jumps over 13 lazy dogs;"
		pS3 := "SSES3-MARKER:the quick brown fox jumps over 13 lazy dogs;"
		pC := "SSEC-MARKER:the quick brown fox jumps over 13 lazy dogs;"
		mustPut(t, mc, bucket, "disk-plain", patterned(pPlain, n), minio.PutObjectOptions{})
		mustPut(t, mc, bucket, "disk-s3", patterned(pS3, n), minio.PutObjectOptions{ServerSideEncryption: sseS3})
		mustPut(t, mc, bucket, "disk-c", patterned(pC, n), minio.PutObjectOptions{ServerSideEncryption: ssec})
		found := map[string]bool{}
		needles := map[string][]byte{pPlain: []byte(pPlain), pS3: []byte(pS3), pC: []byte(pC),
			"customer key": ckey, "customer key base64": []byte(base64.StdEncoding.EncodeToString(ckey))}
		files := 0
		// Every file of the cluster: the dataservers' shard files and the
		// nameserver's database.
		err := filepath.WalkDir(c.Opts.Dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files++
			for name, nd := range needles {
				if bytes.Contains(b, nd) {
					found[name] = true
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !found[pPlain] {
			t.Fatalf("the plain object's text is in none of %d files: the search does not work", files)
		}
		for name := range needles {
			if name != pPlain && found[name] {
				t.Errorf("%s found on disk", name)
			}
		}
	})

	t.Run("KeyRotation", func(t *testing.T) {
		// Objects sealed under master key 1 read back through a gateway
		// whose keyring made key 2 active, new objects are sealed under
		// key 2, and a gateway without key 2 cannot read those.
		ctx := ctxT(t)
		old := body[:100_000]
		mustPut(t, mc, bucket, "rot-old", old, minio.PutObjectOptions{ServerSideEncryption: sseS3})
		kr12, err := sse.ParseKeyring(k1 + "\n2:" + hex.EncodeToString(bytes.Repeat([]byte{2}, 32)))
		if err != nil {
			t.Fatal(err)
		}
		// A second gateway of the same cluster, rolled out with key 2.
		ts := httptest.NewServer(newS3(t, c, s3.Config{Keyring: kr12}))
		t.Cleanup(ts.Close)
		mc2 := minioAt(t, ts.URL, c.User, c.Password)
		if got := mustGet(t, mc2, bucket, "rot-old", minio.GetObjectOptions{}); !bytes.Equal(got, old) {
			t.Fatal("object under key 1 read back wrong after rotation")
		}
		fresh := body[:90_000]
		mustPut(t, mc2, bucket, "rot-new", fresh, minio.PutObjectOptions{ServerSideEncryption: sseS3})
		for key, id := range map[string]string{"rot-old": "1", "rot-new": "2"} {
			if o := meta(t, key); o.Encryption.Streams[0].KeyID != id {
				t.Fatalf("%s: sealed under %+v, want key %s", key, o.Encryption, id)
			}
		}
		if got := mustGet(t, mc2, bucket, "rot-new", minio.GetObjectOptions{}); !bytes.Equal(got, fresh) {
			t.Fatal("object under key 2 read back wrong")
		}
		once := mustMinioOpts(t, c, 1) // minio-go retries a 500 with backoff
		o, _ := once.GetObject(ctx, bucket, "rot-new", minio.GetObjectOptions{})
		if _, err := io.ReadAll(o); minio.ToErrorResponse(err).StatusCode != http.StatusInternalServerError {
			t.Fatalf("gateway without key 2: %v", err)
		}
	})

	t.Run("NoTLS", func(t *testing.T) {
		// Without SSECOverHTTP, SSE-C keys on plain HTTP are refused, as
		// S3 does; without a keyring, SSE-S3 is NotImplemented.
		ctx := ctxT(t)
		ts := httptest.NewServer(newS3(t, c, s3.Config{}))
		t.Cleanup(ts.Close)
		mch := minioAt(t, ts.URL, c.User, c.Password)
		_, err := mch.PutObject(ctx, bucket, "notls", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{ServerSideEncryption: ssec})
		if errCode(err) != "InvalidRequest" {
			t.Fatalf("SSE-C over HTTP: %v", err)
		}
		_, err = mch.PutObject(ctx, bucket, "notls", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{ServerSideEncryption: sseS3})
		if errCode(err) != "NotImplemented" {
			t.Fatalf("SSE-S3 without a keyring: %v", err)
		}
		// Over TLS the same key is taken.
		tls := httptest.NewUnstartedServer(newS3(t, c, s3.Config{}))
		tls.StartTLS()
		t.Cleanup(tls.Close)
		u, _ := url.Parse(tls.URL)
		mcs, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(c.User, c.Password, ""), Region: "us-east-1",
			Secure: true, Transport: tls.Client().Transport})
		if err != nil {
			t.Fatal(err)
		}
		mustPut(t, mcs, bucket, "notls", []byte("over tls"), minio.PutObjectOptions{ServerSideEncryption: ssec})
		if got := mustGet(t, mcs, bucket, "notls", minio.GetObjectOptions{ServerSideEncryption: ssec}); string(got) != "over tls" {
			t.Fatalf("%q", got)
		}
	})
}

func encModeOf(o depot.Object) string {
	if o.Encryption == nil {
		return ""
	}
	return o.Encryption.Mode
}

// newS3 returns another S3 front end on c's client and nameserver: a second
// gateway, configured by cfg.
func newS3(t testing.TB, c *testcluster.Cluster, cfg s3.Config) *s3.Server {
	t.Helper()
	cfg.Client = c.Client()
	cfg.Namespace = func() (*nsclient.Client, error) { return c.NSClient(), nil }
	cfg.RootUser, cfg.RootPassword = c.User, c.Password
	srv, err := s3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// BenchmarkS3Encryption puts and gets objects through the gateway with
// minio-go, plain and SSE-S3 in turns, and reports the throughput of each
// and the ratios encrypted/plain (1.0: encryption costs nothing).
func BenchmarkS3Encryption(b *testing.B) {
	c := testcluster.New(b, testcluster.Options{})
	u, _ := url.Parse(c.Endpoint())
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(c.User, c.Password, ""), Region: "us-east-1"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := mc.MakeBucket(ctx, "bench", minio.MakeBucketOptions{}); err != nil {
		b.Fatal(err)
	}
	const size = 4 << 20
	body := randBytes(b, size)
	modes := []struct {
		name string
		enc  encrypt.ServerSide
	}{{"plain", nil}, {"sse-s3", encrypt.NewSSE()}}
	var putT, getT [2]float64
	for i := 0; b.Loop(); i++ {
		for m, mode := range modes {
			key := fmt.Sprintf("%s-%d", mode.name, i%8)
			start := time.Now()
			if _, err := mc.PutObject(ctx, "bench", key, bytes.NewReader(body), size, minio.PutObjectOptions{ServerSideEncryption: mode.enc}); err != nil {
				b.Fatal(err)
			}
			putT[m] += time.Since(start).Seconds()
			start = time.Now()
			o, err := mc.GetObject(ctx, "bench", key, minio.GetObjectOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, o); err != nil || n != size {
				b.Fatalf("get: %d bytes, %v", n, err)
			}
			o.Close()
			getT[m] += time.Since(start).Seconds()
		}
	}
	mb := float64(b.N) * size / (1 << 20)
	b.ReportMetric(mb/putT[0], "plain-put-MiB/s")
	b.ReportMetric(mb/putT[1], "sse-put-MiB/s")
	b.ReportMetric(mb/getT[0], "plain-get-MiB/s")
	b.ReportMetric(mb/getT[1], "sse-get-MiB/s")
	b.ReportMetric(putT[0]/putT[1], "put-ratio")
	b.ReportMetric(getT[0]/getT[1], "get-ratio")
}
