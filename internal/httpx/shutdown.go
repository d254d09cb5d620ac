package httpx

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
)

// Shutdown stops srv gracefully: it stops accepting, closes idle
// connections and waits, until ctx ends, for requests in flight. When ctx
// ends first the remaining connections are closed at once. That is the
// expected end of a bounded shutdown, not a failure: a client may hold a
// connection it dialed but never sent a request on (net/http counts such
// a connection as busy for five seconds), or a slow request may still be
// running. It is logged, and Shutdown returns only errors of another kind.
func Shutdown(ctx context.Context, srv *http.Server, log *slog.Logger) error {
	err := srv.Shutdown(ctx)
	if err == nil {
		return nil
	}
	srv.Close()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		log.Warn("graceful shutdown timed out; the remaining connections were closed", "addr", srv.Addr, "err", err)
		return nil
	}
	return err
}
