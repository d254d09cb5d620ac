package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"depot/internal/testcluster"
	"depot/nameserver/nsclient"
)

// TestAdminUserPolicy sets, reads and removes a key's policy, and makes a
// bucket public and private again through the admin commands' functions.
func TestAdminUserPolicy(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	ctx := context.Background()
	ns := c.NSClient()
	if err := ns.PutUser(ctx, nsclient.User{AccessKey: "AK", Secret: "secret"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(good, []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/incoming/*"}]}`), 0o600)
	os.WriteFile(bad, []byte(`{"Statement":[{"Effect":"Allow","NotAction":"s3:*","Resource":"*"}]}`), 0o600)
	if err := adminUserPolicy(ctx, ns, []string{"set", "AK", good}); err != nil {
		t.Fatal(err)
	}
	if u, err := ns.User(ctx, "AK"); err != nil || !strings.Contains(u.Policy, "incoming") {
		t.Fatalf("stored: %+v %v", u, err)
	}
	if err := adminUserPolicy(ctx, ns, []string{"set", "AK", bad}); err == nil {
		t.Fatal("a policy that does not parse was set")
	}
	if err := adminUserPolicy(ctx, ns, []string{"set", "NOBODY", good}); err == nil {
		t.Fatal("policy set for an unknown key")
	}
	if err := adminUserPolicy(ctx, ns, []string{"rm", "AK"}); err != nil {
		t.Fatal(err)
	}
	if err := adminUserPolicy(ctx, ns, []string{"get", "AK"}); err == nil {
		t.Fatal("get after rm found a policy")
	}

	if _, err := ns.CreateBucket(ctx, "pics"); err != nil {
		t.Fatal(err)
	}
	anonStatus := func() int {
		resp, err := http.Get(c.Endpoint() + "/pics/none")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// 404 (no such key) once anyone may read; 403 while nobody may.
	waitStatus := func(want int) {
		deadline := time.Now().Add(10 * time.Second)
		for s := anonStatus(); s != want; s = anonStatus() {
			if time.Now().After(deadline) {
				t.Fatalf("anonymous GET: %d, want %d", s, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitStatus(403)
	if err := setPublic(ctx, ns, "pics", true); err != nil {
		t.Fatal(err)
	}
	b, err := ns.Bucket(ctx, "pics")
	if err != nil || b.Public || !strings.Contains(b.Policy, "DepotPublicRead") {
		t.Fatalf("public bucket: %+v %v", b, err)
	}
	waitStatus(404)
	if err := setPublic(ctx, ns, "pics", false); err != nil {
		t.Fatal(err)
	}
	if b, err := ns.Bucket(ctx, "pics"); err != nil || b.Policy != "" {
		t.Fatalf("private bucket: %+v %v", b, err)
	}
	waitStatus(403)
}
