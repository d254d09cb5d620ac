// Package httpjson holds the JSON API plumbing the shop's services share:
// decoding bodies strictly, writing answers and errors, and mapping
// errors to status codes.
package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"

	"depot/shop/objstore"
)

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

// Write writes v as JSON with status code.
func Write(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// Fail writes err with the status code its kind asks for: invalid and
// notFound are the service's own error values.
func Fail(w http.ResponseWriter, err error, invalid, notFound error) {
	code := http.StatusInternalServerError
	msg := err.Error()
	switch {
	case errors.Is(err, notFound):
		code = http.StatusNotFound
	case errors.Is(err, invalid):
		code = http.StatusBadRequest
	case errors.Is(err, objstore.ErrUnavailable):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "5")
		msg = "image storage is unavailable right now, please try again in a moment (" + err.Error() + ")"
	}
	Write(w, code, Error{msg})
}

// IsJSON reports whether a request says its body is JSON.
func IsJSON(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json"
}

// Decode reads a JSON body of at most 1 MiB into v, rejecting unknown
// fields and other content types (a cross-site form cannot send JSON).
func Decode(w http.ResponseWriter, r *http.Request, v any) error {
	if !IsJSON(r) {
		return fmt.Errorf("Content-Type must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON body: %v", err)
	}
	return nil
}

// IntParam parses an optional integer query parameter.
func IntParam(r *http.Request, name string) int {
	n, _ := strconv.Atoi(r.URL.Query().Get(name))
	return n
}
