package s3_test

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"depot/internal/testcluster"
)

// TestS3AWSCLI drives the aws binary against the in-process cluster. It is
// skipped when aws is absent, unless CI is set.
func TestS3AWSCLI(t *testing.T) {
	awsBin, err := exec.LookPath("aws")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("aws not found and CI is set: install awscli (scripts/test.sh does)")
		}
		t.Skip("aws not installed (apt-get install awscli)")
	}
	c := testcluster.New(t, testcluster.Options{})
	home := t.TempDir()
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID="+c.User, "AWS_SECRET_ACCESS_KEY="+c.Password,
		"AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE="+filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "creds"), "HOME="+home, "AWS_PAGER=")
	run := func(args ...string) string {
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
