package nameserver

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"depot"
	"depot/internal/auth"
	"depot/nameserver/nsclient"
)

func TestServer_AdminCredential(t *testing.T) {
	admin, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	c := MustCluster(t, []string{"a", "b", "c"}, func(cfg *Config) { cfg.AdminKey = admin })
	ctx := ctxT(t)
	node := c.client // signs with the cluster key
	adm := nsclient.New(c.srv.URL(), admin, nil)

	t.Run("NodeRefusedOnAdminRoutes", func(t *testing.T) {
		if err := node.PutUser(ctx, nsclient.User{AccessKey: "AK", Secret: "s3cr3t-s3cr3t"}); !errors.Is(err, depot.ErrUnauthorized) {
			t.Fatalf("PutUser with the cluster key: err = %v, want ErrUnauthorized", err)
		}
		if _, err := node.Users(ctx); !errors.Is(err, depot.ErrUnauthorized) {
			t.Fatalf("Users with the cluster key: err = %v, want ErrUnauthorized", err)
		}
		if err := node.Drain(ctx, "a", false); !errors.Is(err, depot.ErrUnauthorized) {
			t.Fatalf("Drain with the cluster key: err = %v, want ErrUnauthorized", err)
		}
	})
	t.Run("NodeRoutesStillOpenToNodes", func(t *testing.T) {
		if _, err := node.Status(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("AdminOK", func(t *testing.T) {
		if err := adm.PutUser(ctx, nsclient.User{AccessKey: "AK", Secret: "s3cr3t-s3cr3t"}); err != nil {
			t.Fatal(err)
		}
		us, err := adm.Users(ctx)
		if err != nil || len(us) != 1 {
			t.Fatalf("Users = %v, %v", us, err)
		}
		if _, err := adm.Status(ctx); err != nil {
			t.Fatalf("admin on a node route: %v", err)
		}
	})
	t.Run("UIBasicAuth", func(t *testing.T) {
		for _, tc := range []struct {
			pass string
			want int
		}{
			{admin.String(), http.StatusOK},
			{c.key.String(), http.StatusForbidden},
			{"guess", http.StatusForbidden},
		} {
			req, _ := http.NewRequest(http.MethodGet, c.srv.URL()+"/ui", nil)
			req.SetBasicAuth("admin", tc.pass)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("GET /ui with Basic auth: %d, want %d", resp.StatusCode, tc.want)
			}
		}
	})
}

// TestServer_UserPolicyValidated: every route that writes a user record
// refuses a policy that does not parse, and keeps the record as it was.
func TestServer_UserPolicyValidated(t *testing.T) {
	c := MustCluster(t, []string{"a", "b", "c"}, nil)
	ctx := ctxT(t)
	bad := `{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Nope":{}}}]}`
	err := c.client.PutUser(ctx, nsclient.User{AccessKey: "AK", Secret: "s3cr3t-s3cr3t", Policy: bad})
	if !errors.Is(err, depot.ErrBadRequest) {
		t.Fatalf("PUT /users with a bad policy: err = %v, want ErrBadRequest", err)
	}
	if _, err := c.client.User(ctx, "AK"); !errors.Is(err, depot.ErrNotFound) {
		t.Fatalf("user after a refused PUT /users: err = %v, want ErrNotFound", err)
	}
	if err := c.client.PutUser(ctx, nsclient.User{AccessKey: "AK", Secret: "s3cr3t-s3cr3t"}); err != nil {
		t.Fatal(err)
	}
	if err := c.client.SetUserPolicy(ctx, "AK", bad); !errors.Is(err, depot.ErrBadRequest) {
		t.Fatalf("PUT /users/AK/policy with a bad policy: err = %v, want ErrBadRequest", err)
	}
	if u, err := c.client.User(ctx, "AK"); err != nil || u.Policy != "" {
		t.Fatalf("user after a refused policy: %+v, %v", u, err)
	}
}

// TestServer_CapturedTokenReplay: a signed request to set a user's policy,
// captured on the wire, is refused when sent again with another body, and
// when sent again as it was.
func TestServer_CapturedTokenReplay(t *testing.T) {
	c := MustCluster(t, []string{"a", "b", "c"}, nil)
	ctx := ctxT(t)
	if err := c.client.PutUser(ctx, nsclient.User{AccessKey: "AK", Secret: "s3cr3t-s3cr3t"}); err != nil {
		t.Fatal(err)
	}
	readOnly := `{"policy":"{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::shop/*\"}]}"}`
	everything := `{"policy":"{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"*\"}]}"}`
	capture := func() *http.Request {
		t.Helper()
		r, err := http.NewRequest(http.MethodPut, c.srv.URL()+"/users/AK/policy", strings.NewReader(readOnly))
		if err != nil {
			t.Fatal(err)
		}
		c.key.Sign(r)
		return r
	}
	send := func(captured *http.Request, body string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, captured.URL.String(), strings.NewReader(body))
		req.Header = captured.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := send(capture(), everything); st != http.StatusForbidden {
		t.Errorf("captured token with another body: %d, want 403", st)
	}
	captured := capture()
	if st := send(captured, readOnly); st != http.StatusNoContent {
		t.Fatalf("the captured request itself: %d, want 204", st)
	}
	if st := send(captured, readOnly); st != http.StatusForbidden {
		t.Errorf("the captured request replayed: %d, want 403", st)
	}
	u, err := c.client.User(ctx, "AK")
	if err != nil || strings.Contains(u.Policy, "s3:*") || !strings.Contains(u.Policy, "s3:GetObject") {
		t.Fatalf("policy after the replays: %q, %v", u.Policy, err)
	}
}
