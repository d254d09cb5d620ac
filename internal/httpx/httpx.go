// Package httpx holds the HTTP plumbing that depot's internal APIs share:
// one table that maps depot's sentinel errors to HTTP statuses and error
// codes, JSON error bodies, and the reverse mapping on the client side so
// that errors.Is works across processes; and the bounded graceful shutdown
// every server's Close uses.
//
// An internal error response has the status from the table and the body
//
//	{"code": "NotFound", "error": "needle 17,3f9a: not found"}
package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"depot"
	"depot/internal/auth"
)

type mapping struct {
	err    error
	code   string
	status int
}

// table maps each sentinel to its code and status. The first match wins.
var table = []mapping{
	{depot.ErrNotFound, "NotFound", http.StatusNotFound},
	{depot.ErrBadFid, "BadFid", http.StatusBadRequest},
	{depot.ErrCorrupt, "Corrupt", http.StatusInternalServerError},
	{depot.ErrDiskFull, "DiskFull", http.StatusInsufficientStorage},
	{depot.ErrReadOnly, "ReadOnly", http.StatusConflict},
	{depot.ErrNoQuorum, "NoQuorum", http.StatusServiceUnavailable},
	{depot.ErrNotEnoughNodes, "NotEnoughNodes", http.StatusServiceUnavailable},
	{depot.ErrUnauthorized, "Unauthorized", http.StatusUnauthorized},
	{auth.ErrBadToken, "Unauthorized", http.StatusForbidden},
	{depot.ErrBadRequest, "BadRequest", http.StatusBadRequest},
	{depot.ErrExists, "Exists", http.StatusConflict},
	{depot.ErrNotEmpty, "NotEmpty", http.StatusConflict},
	{depot.ErrInUse, "InUse", http.StatusLocked},
	{depot.ErrTooLarge, "TooLarge", http.StatusRequestEntityTooLarge},
	{depot.ErrUnknownOutcome, "UnknownOutcome", http.StatusServiceUnavailable},
	{depot.ErrNoLeader, "NoLeader", http.StatusServiceUnavailable},
	{depot.ErrPrecondition, "Precondition", http.StatusPreconditionFailed},
	{depot.ErrLocked, "Locked", http.StatusForbidden},
}

// ErrorBody is the JSON body of an internal error response.
type ErrorBody struct {
	Code  string `json:"code"`
	Error string `json:"error"`
}

// Status returns the HTTP status and code for err.
func Status(err error) (int, string) {
	for _, m := range table {
		if errors.Is(err, m.err) {
			return m.status, m.code
		}
	}
	return http.StatusInternalServerError, "Internal"
}

// WriteError writes err as a JSON error response.
func WriteError(w http.ResponseWriter, err error) {
	status, code := Status(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(ErrorBody{Code: code, Error: err.Error()})
}

// WriteJSON writes v as a JSON response with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// RemoteError is an error answered by another depot process. It unwraps to
// the sentinel its code names, so errors.Is works across the wire.
type RemoteError struct {
	Status int
	Code   string
	Msg    string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("remote %d %s: %s", e.Status, e.Code, e.Msg)
}

// Unwrap returns the sentinel named by the error's code, if any.
func (e *RemoteError) Unwrap() error {
	for _, m := range table {
		if m.code == e.Code {
			return m.err
		}
	}
	switch e.Status {
	case http.StatusNotFound:
		return depot.ErrNotFound
	case http.StatusUnauthorized, http.StatusForbidden:
		return depot.ErrUnauthorized
	}
	return nil
}

// ReadError turns a non-2xx response into a *RemoteError, consuming at most
// 64 KiB of its body. It does not close the body.
func ReadError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body ErrorBody
	if json.Unmarshal(b, &body) != nil || body.Code == "" {
		body = ErrorBody{Error: string(b)}
	}
	return &RemoteError{Status: resp.StatusCode, Code: body.Code, Msg: body.Error}
}
