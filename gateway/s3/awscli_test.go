package s3_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"depot/internal/testcluster"
)

// needAWS returns the aws binary's path; without one the test skips, or
// fails under CI.
func needAWS(t *testing.T) string {
	t.Helper()
	awsBin, err := exec.LookPath("aws")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("aws not found and CI is set: install awscli (scripts/test.sh does)")
		}
		t.Skip("aws not installed (apt-get install awscli)")
	}
	return awsBin
}

// awsRunner returns aws's home directory and a function that runs aws
// against c with c's root credentials, failing the test on an error.
func awsRunner(t *testing.T, awsBin string, c *testcluster.Cluster) (string, func(args ...string) string) {
	home := t.TempDir()
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID="+c.User, "AWS_SECRET_ACCESS_KEY="+c.Password,
		"AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE="+filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "creds"), "HOME="+home, "AWS_PAGER=")
	return home, func(args ...string) string {
		t.Helper()
		cmd := exec.Command(awsBin, append([]string{"--endpoint-url", c.Endpoint()}, args...)...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("aws %s: %v\n%s\n%s", strings.Join(args, " "), err, out.String(), errb.String())
		}
		return out.String()
	}
}

// TestS3AWSCLI drives the aws binary against the in-process cluster. It is
// skipped when aws is absent, unless CI is set.
func TestS3AWSCLI(t *testing.T) {
	awsBin := needAWS(t)
	c := testcluster.New(t, testcluster.Options{})
	home, run := awsRunner(t, awsBin, c)
	dir := t.TempDir()
	write := func(name string, n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return b
	}
	sameFile := func(a, b string) {
		t.Helper()
		x, err1 := os.ReadFile(a)
		y, err2 := os.ReadFile(b)
		if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
			t.Fatalf("%s and %s differ (%v %v)", a, b, err1, err2)
		}
	}

	run("s3", "mb", "s3://cli")
	big := filepath.Join(dir, "big.bin")
	write("big.bin", 50<<20)
	run("s3", "cp", big, "s3://cli/big/file with spaces.bin")
	run("s3", "cp", "s3://cli/big/file with spaces.bin", filepath.Join(dir, "big.back"))
	sameFile(big, filepath.Join(dir, "big.back"))

	src := filepath.Join(dir, "tree")
	for i, name := range []string{"a.txt", "sub/b.jpg", "sub/deep/c+d.png", "ü n i.txt"} {
		write(filepath.Join("tree", name), 1000*(i+1))
	}
	run("s3", "sync", src, "s3://cli/tree/")
	back := filepath.Join(dir, "tree.back")
	run("s3", "sync", "s3://cli/tree/", back)
	for _, name := range []string{"a.txt", "sub/b.jpg", "sub/deep/c+d.png", "ü n i.txt"} {
		sameFile(filepath.Join(src, name), filepath.Join(back, name))
	}
	ls := run("s3", "ls", "--recursive", "s3://cli/")
	for _, name := range []string{"big/file with spaces.bin", "tree/sub/deep/c+d.png", "tree/ü n i.txt"} {
		if !strings.Contains(ls, name) {
			t.Fatalf("ls lacks %q:\n%s", name, ls)
		}
	}
	if top := run("s3", "ls", "s3://cli/"); !strings.Contains(top, "PRE tree/") || !strings.Contains(top, "PRE big/") {
		t.Fatalf("ls top:\n%s", top)
	}
	u := strings.TrimSpace(run("s3", "presign", "s3://cli/tree/a.txt", "--expires-in", "60"))
	resp, err := httpGet(u)
	if err != nil || !bytes.Equal(resp, mustRead(t, filepath.Join(src, "a.txt"))) {
		t.Fatalf("presigned get: %v", err)
	}
	// The same with a SigV4 presigned URL.
	if err := os.WriteFile(filepath.Join(home, "config"), []byte("[default]\ns3 =\n    signature_version = s3v4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u = strings.TrimSpace(run("s3", "presign", "s3://cli/tree/sub/b.jpg", "--expires-in", "60"))
	if !strings.Contains(u, "X-Amz-Signature=") {
		t.Fatalf("not a SigV4 URL: %s", u)
	}
	resp, err = httpGet(u)
	if err != nil || !bytes.Equal(resp, mustRead(t, filepath.Join(src, "sub/b.jpg"))) {
		t.Fatalf("presigned v4 get: %v", err)
	}
	run("s3", "rm", "--recursive", "s3://cli/")
	if rest := run("s3", "ls", "--recursive", "s3://cli/"); strings.TrimSpace(rest) != "" {
		t.Fatalf("after rm: %s", rest)
	}
	run("s3", "rb", "s3://cli")
}

// TestS3AWSCLI_Everyday runs the everyday s3api calls that used to
// surprise aws-cli: user metadata comes back under its own (lower-case)
// key, plain and after a copy that replaces it; a bucket copied in parts
// between buckets (aws-cli asks GetObjectTagging first); the owner's
// second create-bucket in us-east-1 succeeds; object tagging round-trips.
func TestS3AWSCLI_Everyday(t *testing.T) {
	awsBin := needAWS(t)
	c := testcluster.New(t, testcluster.Options{})
	_, run := awsRunner(t, awsBin, c)
	runJSON := func(v any, args ...string) {
		t.Helper()
		if err := json.Unmarshal([]byte(run(append([]string{"--output", "json"}, args...)...)), v); err != nil {
			t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
		}
	}
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}

	run("s3api", "create-bucket", "--bucket", "every")
	run("s3api", "create-bucket", "--bucket", "every") // the owner's second create: 200 in us-east-1
	run("s3api", "put-object", "--bucket", "every", "--key", "m", "--body", small, "--metadata", "color=blue,Origin=shop")
	var head struct{ Metadata map[string]string }
	runJSON(&head, "s3api", "head-object", "--bucket", "every", "--key", "m")
	if head.Metadata["color"] != "blue" || head.Metadata["origin"] != "shop" || len(head.Metadata) != 2 {
		t.Fatalf("metadata read back: %v, want color=blue origin=shop", head.Metadata)
	}
	run("s3api", "copy-object", "--bucket", "every", "--key", "m2", "--copy-source", "every/m",
		"--metadata-directive", "REPLACE", "--metadata", "size=large")
	head.Metadata = nil
	runJSON(&head, "s3api", "head-object", "--bucket", "every", "--key", "m2")
	if head.Metadata["size"] != "large" || len(head.Metadata) != 1 {
		t.Fatalf("metadata after a REPLACE copy: %v", head.Metadata)
	}

	run("s3api", "put-object-tagging", "--bucket", "every", "--key", "m",
		"--tagging", `TagSet=[{Key=team,Value=media},{Key=stage,Value=raw}]`)
	var tg struct{ TagSet []struct{ Key, Value string } }
	runJSON(&tg, "s3api", "get-object-tagging", "--bucket", "every", "--key", "m")
	if len(tg.TagSet) != 2 || tg.TagSet[0] != (struct{ Key, Value string }{"team", "media"}) {
		t.Fatalf("tags read back: %+v", tg.TagSet)
	}

	// A copy between buckets that aws-cli makes in parts.
	big := filepath.Join(dir, "big")
	data := make([]byte, 20<<20)
	rand.Read(data)
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	run("s3", "mb", "s3://other")
	run("s3", "cp", big, "s3://every/big")
	run("s3", "cp", "s3://every/big", "s3://other/big")
	run("s3", "cp", "s3://other/big", filepath.Join(dir, "big.back"))
	if back := mustRead(t, filepath.Join(dir, "big.back")); !bytes.Equal(back, data) {
		t.Fatalf("copied in parts: %d bytes back, want %d", len(back), len(data))
	}
}
