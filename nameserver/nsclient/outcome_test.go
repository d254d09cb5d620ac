package nsclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"testing"

	"depot"
	"depot/internal/httpx"
)

// TestRefused checks which errors of a nameserver write count as a
// definite refusal (discard what was stored for it) and which leave the
// outcome unknown (keep it).
func TestRefused(t *testing.T) {
	remote := func(status int, code string) error {
		return fmt.Errorf("nsclient: PUT /objects/b: %w", &httpx.RemoteError{Status: status, Code: code, Msg: "x"})
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"NotFound", remote(404, "NotFound"), true},
		{"BadRequest", remote(400, "BadRequest"), true},
		{"Exists", remote(409, "Exists"), true},
		{"NotEmpty", remote(409, "NotEmpty"), true},
		{"Precondition", remote(412, "Precondition"), true},
		{"Unauthorized", remote(403, "Unauthorized"), true},
		{"LocalPrecondition", fmt.Errorf("object b/k: %w", depot.ErrPrecondition), true},
		{"NoLeader", remote(503, "NoLeader"), false},
		{"Internal", remote(500, "Internal"), false},
		{"BrokenConnection", fmt.Errorf("nsclient: %w", &url.Error{Op: "Put", URL: "http://ns", Err: io.EOF}), false},
		{"Cancelled", fmt.Errorf("nsclient: %w", &url.Error{Op: "Put", URL: "http://ns", Err: context.Canceled}), false},
		{"Deadline", context.DeadlineExceeded, false},
		{"CancelledWhileRefused", errors.Join(context.Canceled, depot.ErrNotFound), false},
	} {
		if got := Refused(tc.err); got != tc.want {
			t.Errorf("%s: Refused(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
