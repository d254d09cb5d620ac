package s3_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/minio/minio-go/v7/pkg/signer"

	"depot/internal/testcluster"
)

// hostile sends requests that a client library would refuse to make, or
// that try to escape what they name, to a running gateway.
type hostile struct {
	t     *testing.T
	c     *testcluster.Cluster
	host  string
	creds aws.Credentials
}

const unsigned = "UNSIGNED-PAYLOAD"

// request makes a request for target, the path and query exactly as they
// go on the wire.
func (h *hostile) request(method, target string, body []byte) *http.Request {
	h.t.Helper()
	u, err := url.Parse("http://" + h.host + target)
	if err != nil {
		h.t.Fatal(err)
	}
	req := &http.Request{Method: method, URL: u, Host: h.host, Header: http.Header{}, ContentLength: int64(len(body)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return req
}

// sign signs req as aws-sdk-go-v2 signs S3 requests.
func (h *hostile) sign(req *http.Request, payload, service, region string, at time.Time) *http.Request {
	h.t.Helper()
	req.Header.Set("X-Amz-Content-Sha256", payload)
	s := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err := s.SignHTTP(context.Background(), h.creds, req, payload, service, region, at); err != nil {
		h.t.Fatal(err)
	}
	return req
}

func (h *hostile) signed(method, target string, body []byte) *http.Request {
	return h.sign(h.request(method, target, body), unsigned, "s3", "us-east-1", time.Now())
}

// presign returns req's presigned URL, valid for expires seconds from at.
func (h *hostile) presign(req *http.Request, region string, at time.Time, expires int) string {
	h.t.Helper()
	q := req.URL.Query()
	q.Set("X-Amz-Expires", strconv.Itoa(expires))
	req.URL.RawQuery = q.Encode()
	s := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	u, _, err := s.PresignHTTP(context.Background(), h.creds, req, unsigned, "s3", region, at)
	if err != nil {
		h.t.Fatal(err)
	}
	return u
}

// answer is a response with its S3 error code, if any.
type answer struct {
	status int
	code   string
	header http.Header
	body   []byte
}

func (h *hostile) do(req *http.Request) answer {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return readAnswer(h.t, resp)
}

func readAnswer(t *testing.T, resp *http.Response) answer {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: b}
	if resp.StatusCode >= 300 && len(b) > 0 {
		var e struct{ Code string }
		if err := xml.Unmarshal(b, &e); err != nil {
			t.Fatalf("status %d, body is not an S3 error: %q", resp.StatusCode, b)
		}
		a.code = e.Code
	}
	return a
}

// raw writes b on a new connection and reads one answer. Go's HTTP client
// would not send these bytes.
func (h *hostile) raw(b []byte) (answer, bool) { return h.rawClose(b, false) }

// rawClose is raw that, with halfClose, also ends the request's bytes with
// a half-close: a body shorter than declared ends there. (net/http takes a
// half-close for a client gone and cancels the request's context, so only
// requests with a cut body use it.)
func (h *hostile) rawClose(b []byte, halfClose bool) (answer, bool) {
	h.t.Helper()
	conn, err := net.Dial("tcp", h.host)
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(b); err != nil {
		return answer{}, false // the server hung up first
	}
	if halfClose {
		conn.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		h.t.Fatalf("no answer to %q...: %v", b[:min(len(b), 80)], err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: body}
	var e struct{ Code string }
	if xml.Unmarshal(body, &e) == nil {
		a.code = e.Code
	}
	return a, true
}

// wireBytes is req as it would be sent.
func wireBytes(t *testing.T, req *http.Request) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (h *hostile) want(name string, a answer, status int, code string) {
	h.t.Helper()
	if a.status != status || a.code != code {
		h.t.Errorf("%s: %d %s, want %d %s (%q)", name, a.status, a.code, status, code, a.body[:min(len(a.body), 300)])
	}
}

// TestS3Hostile sends hostile requests: each gets S3's error code and
// status (or is stored verbatim where S3 stores it), the gateway stays up,
// what was stored before is intact, and nothing is written outside the
// cluster's directories nor under a name the attacker chose.
func TestS3Hostile(t *testing.T) {
	root := t.TempDir()
	dataRoot := filepath.Join(root, "cluster")
	// A narrow code with room to spare: the attacks are on the gateway, and
	// writes go on while a dataserver of a busy test machine misses gossip.
	c := testcluster.New(t, testcluster.Options{Dir: dataRoot, Dataservers: 5, K: 2, M: 1})
	u, err := url.Parse(c.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	h := &hostile{t: t, c: c, host: u.Host, creds: aws.Credentials{AccessKeyID: c.User, SecretAccessKey: c.Password}}
	h.want("create bucket", h.do(h.signed(http.MethodPut, "/hostile", nil)), 200, "")
	precious := []byte("precious bytes stored before the attack")
	h.want("put existing", h.do(h.signed(http.MethodPut, "/hostile/existing", precious)), 200, "")

	t.Run("TraversalKeys", func(t *testing.T) {
		// S3 keys are names, not paths: each is stored verbatim and reads
		// back under the same name.
		for target, key := range map[string]string{
			"/hostile/../../etc/passwd":                   "../../etc/passwd",
			"/hostile/%2e%2e%2f%2e%2e%2fetc%2fshadow":     "../../etc/shadow",
			"/hostile//etc/passwd-abs":                    "/etc/passwd-abs",
			"/hostile/nul%00byte":                         "nul\x00byte",
			"/hostile/..%5c..%5cwindows%5cwin.ini":        `..\..\windows\win.ini`,
			"/hostile/%2e%2e/%2e%2e/%2e%2e/tmp/depot-pwn": "../../../tmp/depot-pwn",
		} {
			body := []byte("content of " + key)
			h.want("PUT "+target, h.do(h.signed(http.MethodPut, target, body)), 200, "")
			a := h.do(h.signed(http.MethodGet, target, nil))
			if a.status != 200 || !bytes.Equal(a.body, body) {
				t.Errorf("GET %s: %d %q", target, a.status, a.body)
			}
			a = h.do(h.signed(http.MethodGet, "/hostile?list-type=2&encoding-type=url&prefix="+url.QueryEscape(key), nil))
			var l struct {
				Contents []struct{ Key string }
			}
			if err := xml.Unmarshal(a.body, &l); err != nil || len(l.Contents) != 1 {
				t.Errorf("list %q: %d %q", key, a.status, a.body)
				continue
			}
			if got, _ := url.QueryUnescape(l.Contents[0].Key); got != key {
				t.Errorf("listed as %q, want %q", got, key)
			}
		}
	})

	t.Run("TraversalBuckets", func(t *testing.T) {
		h.want("create ..", h.do(h.signed(http.MethodPut, "/%2e%2e", nil)), 400, "InvalidBucketName")
		h.want("create a/NUL", h.do(h.signed(http.MethodPut, "/a%00b", nil)), 400, "InvalidBucketName")
		h.want("create ../etc", h.do(h.signed(http.MethodPut, "/..%2fetc", nil)), 404, "NoSuchBucket")
		h.want("put into ..", h.do(h.signed(http.MethodPut, "/..%2f..%2ftmp%2fx", []byte("x"))), 404, "NoSuchBucket")
		h.want("get from ..", h.do(h.signed(http.MethodGet, "/%2e%2e/etc/passwd", nil)), 404, "NoSuchBucket")
		h.want("list /etc", h.do(h.signed(http.MethodGet, "/etc", nil)), 404, "NoSuchBucket")
		a, _ := h.raw([]byte("GET http://evil.example/etc/passwd HTTP/1.1\r\nHost: evil.example\r\n\r\n"))
		h.want("absolute-form target, anonymous", a, 403, "AccessDenied")
		req := h.signed(http.MethodGet, "/etc/passwd", nil)
		b := bytes.Replace(wireBytes(t, req), []byte("GET /etc/passwd"), []byte("GET http://"+h.host+"/etc/passwd"), 1)
		a, _ = h.raw(b)
		h.want("absolute-form target, signed", a, 404, "NoSuchBucket")
	})

	t.Run("HeaderInjection", func(t *testing.T) {
		// CR or LF inside a header value: net/http refuses the request
		// before the gateway sees it.
		for _, v := range []string{"x\rSet-Cookie: a=b", "x\x00y"} {
			a, _ := h.raw([]byte("PUT /hostile/inject HTTP/1.1\r\nHost: " + h.host + "\r\nX-Amz-Meta-A: " + v + "\r\nContent-Length: 0\r\n\r\n"))
			if a.status != 400 {
				t.Errorf("meta %q: %d, want 400", v, a.status)
			}
		}
		// A bare LF ends a header line: the "injected" header is a header
		// of the request like the others, which is not signed.
		a, _ := h.raw([]byte("PUT /hostile/inject HTTP/1.1\r\nHost: " + h.host + "\r\nX-Amz-Meta-A: x\nSet-Cookie: a=b\r\nContent-Length: 0\r\n\r\n"))
		h.want("meta with a bare LF", a, 403, "AccessDenied")
		// A key with CR LF in it is a name like any other; it never
		// reaches a response header.
		key := "crlf\r\nSet-Cookie: evil=1\r\nX-Injected: 1"
		target := "/hostile/" + url.PathEscape(key)
		h.want("PUT CRLF key", h.do(h.signed(http.MethodPut, target, []byte("x"))), 200, "")
		req := h.request(http.MethodPut, "/hostile/meta", []byte("m"))
		req.Header.Set("X-Amz-Meta-Note", "ok") // signed: an unsigned x-amz-* header is refused
		h.want("PUT meta", h.do(h.sign(req, unsigned, "s3", "us-east-1", time.Now())), 200, "")
		for _, target := range []string{target, target + "?response-content-type=" + url.QueryEscape("text/plain\r\nSet-Cookie: evil=1")} {
			a := h.do(h.signed(http.MethodGet, target, nil))
			if a.header.Get("Set-Cookie") != "" || a.header.Get("X-Injected") != "" {
				t.Errorf("GET %s: headers injected: %v", target, a.header)
			}
		}
		a = h.do(h.signed(http.MethodGet, "/hostile?list-type=2&prefix=crlf", nil))
		var l struct{ Contents []struct{ Key string } }
		if err := xml.Unmarshal(a.body, &l); err != nil || len(l.Contents) != 1 || l.Contents[0].Key != key {
			t.Errorf("list CRLF key: %+v %v %q", l, err, a.body)
		}
		// An obsolete folded header line: net/http joins or refuses it;
		// either way no header of the attacker's appears.
		if a, ok := h.raw([]byte("GET /hostile/meta HTTP/1.1\r\nHost: " + h.host + "\r\nX-Amz-Meta-A: x\r\n Set-Cookie: evil=1\r\n\r\n")); ok &&
			a.header.Get("Set-Cookie") != "" {
			t.Errorf("folded header: %v", a.header)
		}
	})

	t.Run("HugeMetadata", func(t *testing.T) {
		req := h.signed(http.MethodPut, "/hostile/bigmeta", []byte("x"))
		req.Header.Set("X-Amz-Meta-A", strings.Repeat("a", 1500))
		req.Header.Set("X-Amz-Meta-B", strings.Repeat("b", 1500))
		req = h.sign(req, unsigned, "s3", "us-east-1", time.Now())
		h.want("3 KB of metadata", h.do(req), 400, "MetadataTooLarge")
		req = h.signed(http.MethodPut, "/hostile/bigmeta", []byte("x"))
		req.Header.Set("X-Amz-Meta-A", strings.Repeat("a", 16<<10))
		h.want("16 KB header", h.do(req), 400, "RequestHeaderSectionTooLarge")
		a, ok := h.raw([]byte("PUT /hostile/bigmeta HTTP/1.1\r\nHost: " + h.host + "\r\nX-Amz-Meta-A: " + strings.Repeat("a", 2<<20) + "\r\n\r\n"))
		if ok && a.status != http.StatusRequestHeaderFieldsTooLarge && a.status != 400 {
			t.Errorf("2 MB header: %d", a.status)
		}
		h.want("key absent", h.do(h.signed(http.MethodHead, "/hostile/bigmeta", nil)), 404, "")
	})

	t.Run("AWSChunked", func(t *testing.T) {
		chunked := func(decoded int, frames func(sign func([]byte) string) []byte) answer {
			req := h.request(http.MethodPut, "/hostile/existing", nil)
			req.Header.Set("Content-Encoding", "aws-chunked")
			req.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(decoded))
			at := time.Now()
			h.sign(req, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "s3", "us-east-1", at)
			auth := req.Header.Get("Authorization")
			seed, _ := hex.DecodeString(auth[strings.LastIndex(auth, "=")+1:])
			ss := v4.NewStreamSigner(h.creds, "s3", "us-east-1", seed)
			body := frames(func(p []byte) string {
				sig, err := ss.GetSignature(context.Background(), nil, p, at)
				if err != nil {
					t.Fatal(err)
				}
				return hex.EncodeToString(sig)
			})
			req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			return h.do(req)
		}
		a := chunked(3, func(sign func([]byte) string) []byte {
			return []byte("40000000;chunk-signature=" + sign([]byte("abc")) + "\r\nabc")
		})
		h.want("chunk claiming 1 GiB", a, 400, "IncompleteBody")
		a = chunked(5, func(sign func([]byte) string) []byte {
			return []byte("5;chunk-signature=" + sign([]byte("hello")) + "\r\nhelloEXTRA BYTES\r\n0;chunk-signature=" + sign(nil) + "\r\n\r\n")
		})
		h.want("chunk longer than its size", a, 400, "IncompleteBody")
		a = chunked(3, func(sign func([]byte) string) []byte {
			return []byte("5;chunk-signature=" + sign([]byte("hello")) + "\r\nhello\r\n0;chunk-signature=" + sign(nil) + "\r\n\r\n")
		})
		h.want("chunks longer than declared", a, 400, "IncompleteBody")
		a = chunked(5, func(sign func([]byte) string) []byte {
			return []byte("5;chunk-signature=" + sign([]byte("hello")) + "\r\nhello\r\n")
		})
		h.want("no final chunk", a, 400, "IncompleteBody")
	})

	t.Run("Presigned", func(t *testing.T) {
		get := h.request(http.MethodGet, "/hostile/existing", nil)
		u := h.presign(get, "us-east-1", time.Now().Add(-2*time.Minute), 60)
		h.want("expired presigned URL replayed", h.do(h.request(http.MethodGet, strings.TrimPrefix(u, "http://"+h.host), nil)), 403, "AccessDenied")
		u = h.presign(h.request(http.MethodGet, "/hostile/existing", nil), "us-east-1", time.Now(), 600)
		target := strings.TrimPrefix(u, "http://"+h.host)
		a := h.do(h.request(http.MethodGet, target, nil))
		if a.status != 200 || !bytes.Equal(a.body, precious) {
			t.Errorf("valid presigned GET: %d", a.status)
		}
		h.want("presigned GET used to PUT", h.do(h.request(http.MethodPut, target, []byte("overwritten"))), 403, "SignatureDoesNotMatch")
		h.want("presigned GET used to DELETE", h.do(h.request(http.MethodDelete, target, nil)), 403, "SignatureDoesNotMatch")
		other := strings.Replace(target, "existing", "other", 1)
		h.want("presigned URL for another key", h.do(h.request(http.MethodGet, other, nil)), 403, "SignatureDoesNotMatch")
	})

	t.Run("RegionAndService", func(t *testing.T) {
		req := h.sign(h.request(http.MethodGet, "/hostile/existing", nil), unsigned, "s3", "eu-west-1", time.Now())
		h.want("signed for eu-west-1", h.do(req), 400, "AuthorizationHeaderMalformed")
		u := h.presign(h.request(http.MethodGet, "/hostile/existing", nil), "eu-west-1", time.Now(), 600)
		h.want("presigned for eu-west-1", h.do(h.request(http.MethodGet, strings.TrimPrefix(u, "http://"+h.host), nil)), 400, "AuthorizationQueryParametersError")
		for _, svc := range []string{"iam", "sts", "s3-object-lambda"} {
			req := h.sign(h.request(http.MethodGet, "/hostile/existing", nil), unsigned, svc, "us-east-1", time.Now())
			h.want("signed for "+svc, h.do(req), 400, "AuthorizationHeaderMalformed")
		}
		s := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
		get := h.request(http.MethodGet, "/hostile/existing?X-Amz-Expires=600", nil)
		u, _, err := s.PresignHTTP(context.Background(), h.creds, get, unsigned, "iam", "us-east-1", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		h.want("presigned for iam", h.do(h.request(http.MethodGet, strings.TrimPrefix(u, "http://"+h.host), nil)), 400, "AuthorizationQueryParametersError")
	})

	t.Run("OtherUsersBucket", func(t *testing.T) {
		if err := c.NSClient().PutUser(ctxT(t), nsUser("MALLORY", "mallory-secret")); err != nil {
			t.Fatal(err)
		}
		// Mallory may do anything, but only in her own bucket.
		own := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::mallory-box","arn:aws:s3:::mallory-box/*"]}]}`
		if err := c.AdminClient().SetUserPolicy(ctxT(t), "MALLORY", own); err != nil {
			t.Fatal(err)
		}
		m := &hostile{t: t, c: c, host: h.host, creds: aws.Credentials{AccessKeyID: "MALLORY", SecretAccessKey: "mallory-secret"}}
		m.want("create her bucket", m.do(m.signed(http.MethodPut, "/mallory-box", nil)), 200, "")
		m.want("write her bucket", m.do(m.signed(http.MethodPut, "/mallory-box/k", []byte("hers"))), 200, "")
		m.want("read", m.do(m.signed(http.MethodGet, "/hostile/existing", nil)), 403, "AccessDenied")
		m.want("list", m.do(m.signed(http.MethodGet, "/hostile?list-type=2", nil)), 403, "AccessDenied")
		m.want("overwrite", m.do(m.signed(http.MethodPut, "/hostile/existing", []byte("mine"))), 403, "AccessDenied")
		m.want("delete", m.do(m.signed(http.MethodDelete, "/hostile/existing", nil)), 403, "AccessDenied")
		m.want("delete bucket", m.do(m.signed(http.MethodDelete, "/hostile", nil)), 403, "AccessDenied")
	})

	t.Run("TruncatedBodies", func(t *testing.T) {
		b := wireBytes(t, h.signed(http.MethodPut, "/hostile/existing", bytes.Repeat([]byte("x"), 100)))
		a, _ := h.rawClose(b[:len(b)-50], true)
		h.want("body cut after 50 of 100 bytes", a, 400, "IncompleteBody")
		// minio-go's signer leaves Content-Length unsigned, so it can be
		// changed without breaking the signature.
		body := bytes.Repeat([]byte("y"), 20)
		sum := sha256.Sum256(body)
		mreq := func() []byte {
			req := h.request(http.MethodPut, "/hostile/existing", body)
			req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
			return wireBytes(t, signer.SignV4(*req, h.creds.AccessKeyID, h.creds.SecretAccessKey, "", "us-east-1"))
		}
		a, _ = h.raw(bytes.Replace(mreq(), []byte("Content-Length: 20"), []byte("Content-Length: 10"), 1))
		h.want("Content-Length shorter than the signed body", a, 400, "XAmzContentSHA256Mismatch")
		a, _ = h.rawClose(bytes.Replace(mreq(), []byte("Content-Length: 20"), []byte("Content-Length: 40"), 1), true)
		h.want("Content-Length longer than the body", a, 400, "IncompleteBody")
		if a := h.do(h.signed(http.MethodGet, "/hostile/existing", nil)); !bytes.Equal(a.body, precious) {
			t.Errorf("existing object after cut uploads: %d %q", a.status, a.body)
		}
	})

	t.Run("MalformedXML", func(t *testing.T) {
		a := h.do(h.signed(http.MethodPost, "/hostile/mp?uploads", nil))
		var init struct{ UploadId string }
		if err := xml.Unmarshal(a.body, &init); err != nil || init.UploadId == "" {
			t.Fatalf("create upload: %d %q", a.status, a.body)
		}
		bomb := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>`
		for name, tc := range map[string]struct {
			target, body, code string
		}{
			"delete, cut":               {"/hostile?delete", "<Delete><Object><Key>existing</Key>", "MalformedXML"},
			"delete, no objects":        {"/hostile?delete", "<Delete></Delete>", "MalformedXML"},
			"delete, entity bomb":       {"/hostile?delete", bomb + "<Delete><Object><Key>&lol2;</Key></Object></Delete>", "MalformedXML"},
			"delete, external entity":   {"/hostile?delete", `<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&x;</Key></Object></Delete>`, "MalformedXML"},
			"delete, 20000 deep":        {"/hostile?delete", strings.Repeat("<Delete>", 20000) + strings.Repeat("</Delete>", 20000), "MalformedXML"},
			"delete, 3 MiB":             {"/hostile?delete", "<Delete>" + strings.Repeat("<Object><Key>k</Key></Object>", 3<<20/29) + "</Delete>", "MaxMessageLengthExceeded"},
			"complete, garbage":         {"/hostile/mp?uploadId=" + init.UploadId, "<CompleteMultipartUpload><Part>", "MalformedXML"},
			"complete, bomb":            {"/hostile/mp?uploadId=" + init.UploadId, bomb + "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&lol2;</ETag></Part></CompleteMultipartUpload>", "MalformedXML"},
			"complete, bad part number": {"/hostile/mp?uploadId=" + init.UploadId, "<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>", "InvalidArgument"},
			"cors, garbage":             {"/hostile?cors", "<CORSConfiguration><CORSRule>", "MalformedXML"},
			"cors, bomb":                {"/hostile?cors", bomb + "<CORSConfiguration><CORSRule><AllowedOrigin>&lol2;</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>", "MalformedXML"},
		} {
			method := http.MethodPost
			if strings.HasSuffix(tc.target, "?cors") {
				method = http.MethodPut
			}
			h.want(name, h.do(h.signed(method, tc.target, []byte(tc.body))), 400, tc.code)
		}
		a = h.do(h.signed(http.MethodGet, "/hostile/existing", nil))
		if !bytes.Equal(a.body, precious) {
			t.Errorf("existing object after hostile deletes: %d %q", a.status, a.body)
		}
	})

	t.Run("HugeLimits", func(t *testing.T) {
		for _, q := range []string{"list-type=2&max-keys=99999999999999999999", "max-keys=-1", "list-type=2&max-keys=1e9"} {
			h.want(q, h.do(h.signed(http.MethodGet, "/hostile?"+q, nil)), 400, "InvalidArgument")
		}
		for _, q := range []string{"list-type=2&max-keys=2147483647", "max-keys=9223372036854775807", "uploads&max-uploads=2147483647"} {
			a := h.do(h.signed(http.MethodGet, "/hostile?"+q, nil))
			var l struct {
				MaxKeys    int
				MaxUploads int
			}
			if err := xml.Unmarshal(a.body, &l); a.status != 200 || err != nil || l.MaxKeys > 1000 || l.MaxUploads > 1000 {
				t.Errorf("%s: %d %+v %v", q, a.status, l, err)
			}
		}
		h.want("huge part number", h.do(h.signed(http.MethodPut, "/hostile/mp?uploadId=x&partNumber=99999999999999999999", []byte("x"))), 400, "InvalidArgument")
		h.want("huge max-parts", h.do(h.signed(http.MethodGet, "/hostile/mp?uploadId=x&max-parts=99999999999999999999", nil)), 404, "NoSuchUpload")
	})

	// The gateway is still up and what was stored before is intact.
	if a := h.do(h.signed(http.MethodGet, "/", nil)); a.status != 200 {
		t.Fatalf("list buckets after the attacks: %d", a.status)
	}
	if a := h.do(h.signed(http.MethodGet, "/hostile/existing", nil)); a.status != 200 || !bytes.Equal(a.body, precious) {
		t.Fatalf("existing object after the attacks: %d %q", a.status, a.body)
	}
	checkNoEscape(t, root, dataRoot)
}

// checkNoEscape walks root: everything in it is under dataRoot, and no
// file or directory takes its name from a key or bucket of the attacks.
func checkNoEscape(t *testing.T, root, dataRoot string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root && p != dataRoot && !strings.HasPrefix(p, dataRoot+string(filepath.Separator)) {
			t.Errorf("%s appeared outside the cluster's directory", p)
		}
		name := strings.ToLower(d.Name())
		for _, bad := range []string{"passwd", "shadow", "win.ini", "depot-pwn", "etc", "inject", "set-cookie", "crlf", "nul", "bigmeta", ".."} {
			if strings.Contains(name, bad) {
				t.Errorf("%s is named after an attacker's key", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/tmp/depot-pwn", filepath.Join(filepath.Dir(root), "depot-pwn")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s exists", p)
		}
	}
}
