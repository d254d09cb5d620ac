package nameserver

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"time"

	"depot/internal/auth"
	"depot/internal/httpx"
)

// Who may call what. Every route but /healthz, /readyz and /metrics needs a
// credential: an internal token signed with the cluster key (every depot
// process holds it) or with Config.AdminKey (the admin CLI). The routes in
// adminRoutes change who may use the cluster or move its data, or show its
// state to people, and need the admin credential; while AdminKey is unset
// the cluster key is the admin credential too. A browser, which cannot
// sign tokens, may send the admin credential as the password of HTTP Basic
// auth (any user name), which is how the /ui page is opened.

// adminRoutes are the patterns that need the admin credential.
var adminRoutes = []string{
	"GET /users",
	"PUT /users",
	"DELETE /users/{key}",
	"PUT /users/{key}/policy",
	"GET /backup",
	"POST /restore",
	"POST /nameservers",
	"DELETE /nameservers/{id}",
	"POST /rebalance",
	"DELETE /rebalance",
	"POST /rebalance/drain",
	"POST /volumes/{id}/state",
	"GET /ui",
	"GET /ui/health",
}

// adminMux matches the admin routes; its handlers are never called.
func adminMux() *http.ServeMux {
	m := http.NewServeMux()
	for _, p := range adminRoutes {
		m.Handle(p, http.NotFoundHandler())
	}
	return m
}

// authenticate admits requests with a credential, admin routes only with
// the admin credential.
func (s *Server) authenticate(next http.Handler) http.Handler {
	admins := adminMux()
	adminKey := s.cfg.AdminKey
	if len(adminKey) == 0 {
		adminKey = s.cfg.Key
	}
	basic := []byte(adminKey.String())
	// One cache for both keys: a token is spent whichever key signed it.
	seen := auth.NewReplayCache(auth.DefaultReplayCapacity)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		isAdmin := adminKey.Verify(r, now, seen) == nil
		if !isAdmin {
			if _, pass, ok := r.BasicAuth(); ok {
				isAdmin = subtle.ConstantTimeCompare([]byte(pass), basic) == 1
			}
		}
		if !isAdmin {
			if err := s.cfg.Key.Verify(r, now, seen); err != nil {
				s.refuse(w, r, err)
				return
			}
			if _, p := admins.Handler(r); p != "" {
				s.refuse(w, r, fmt.Errorf("%w: %s needs the admin credential", auth.ErrBadToken, p))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// refuse answers 401 to a request that carries no credential and 403 to
// one whose credential is wrong or not enough.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	_, _, basic := r.BasicAuth()
	if r.Header.Get(auth.Header) == "" && !basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="depot nameserver"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"code":"Unauthorized","error":"credentials required"}`+"\n")
		return
	}
	s.log.Debug("refused request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
	httpx.WriteError(w, err)
}
