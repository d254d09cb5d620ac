package nameserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"

	"depot"
	"depot/internal/httpx"
)

// Headers of the forwarding between the members of a raft group.
const (
	// HeaderLeader, on every API answer of a raft member, is the leader's
	// base URL as the answering nameserver knows it; nsclient moves to it.
	HeaderLeader = "Depot-Nameserver-Leader"
	// headerForwarded marks a request a follower forwarded; a nameserver
	// that is not the leader either answers NoLeader instead of
	// forwarding it again.
	headerForwarded = "Depot-Forwarded"
)

// forwarder sends the API requests that reach a follower on to the leader,
// so that clients may talk to any nameserver: the leader alone decides
// every write and answers every read, so reads are as consistent as on one
// nameserver.
type forwarder struct {
	s     *Server
	tr    *http.Transport
	proxy *httputil.ReverseProxy
}

func newForwarder(s *Server) *forwarder {
	tr := s.cfg.TLS.Transport() // mutual TLS to the leader when the cluster has it
	tr.MaxIdleConnsPerHost = 128
	f := &forwarder{s: s, tr: tr}
	f.proxy = &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(r *httputil.ProxyRequest) {
			target := r.In.Context().Value(leaderKey{}).(*url.URL)
			r.SetURL(target)
			r.Out.Host = r.In.Host
			r.Out.Header.Set(headerForwarded, "1")
			// The request id (nsclient.HeaderRequestID) goes on as
			// it came, so that the leader applies a repeat once.
			// A streamed body's token MAC (auth.BodyMacTrailer) arrives
			// in the incoming request's trailer as the body ends; the
			// outgoing request must send that map, not the copy Clone
			// made while its values were still empty.
			r.Out.Trailer = r.In.Trailer
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// A change that reached the leader may have been applied
			// there even though its answer is lost: its outcome is
			// unknown. Only a connection never made is a plain NoLeader.
			var op *net.OpError
			if r.Method == http.MethodGet || r.Method == http.MethodHead || errors.As(err, &op) && op.Op == "dial" {
				httpx.WriteError(w, fmt.Errorf("nameserver: forward to the leader: %w: %v", depot.ErrNoLeader, err))
				return
			}
			httpx.WriteError(w, fmt.Errorf("nameserver: forward to the leader: %w: %w: %v", depot.ErrUnknownOutcome, depot.ErrNoLeader, err))
		},
	}
	return f
}

type leaderKey struct{}

func (f *forwarder) close() { f.tr.CloseIdleConnections() }

// wrap serves next on the leader (or a nameserver alone) and forwards
// elsewhere.
func (f *forwarder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := f.s
		if s.raft == nil {
			next.ServeHTTP(w, r)
			return
		}
		_, leader := s.Leader()
		if leader != "" {
			w.Header().Set(HeaderLeader, leader)
		}
		if s.IsLeader() {
			next.ServeHTTP(w, r)
			return
		}
		if leader == "" || r.Header.Get(headerForwarded) != "" || leader == s.URL() {
			httpx.WriteError(w, fmt.Errorf("nameserver %s: %w", s.raft.id, depot.ErrNoLeader))
			return
		}
		u, err := url.Parse(leader)
		if err != nil {
			httpx.WriteError(w, fmt.Errorf("nameserver: leader url %q: %w: %v", leader, depot.ErrNoLeader, err))
			return
		}
		s.metrics.forwarded.Inc()
		f.proxy.ServeHTTP(w, r.WithContext(contextWithLeader(r, u)))
	})
}

func contextWithLeader(r *http.Request, u *url.URL) context.Context {
	return context.WithValue(r.Context(), leaderKey{}, u)
}
