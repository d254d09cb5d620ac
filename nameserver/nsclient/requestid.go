package nsclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

// HeaderRequestID carries the request id of a mutating call: the
// nameserver applies the commands of one id at most once and answers a
// repeat with the recorded result (see the nameserver's doc.go, "Request
// ids"). A follower forwards it to the leader with the request.
const HeaderRequestID = "Depot-Request-Id"

// MaxRequestIDLen bounds a request id; the nameserver refuses longer ones.
const MaxRequestIDLen = 128

type requestIDKey struct{}

// WithRequestID returns ctx carrying id as the request id of the calls
// made with it. A caller that may repeat a call itself (after an unknown
// outcome) passes the same id to every repetition, so that the call is
// applied at most once. An id names one logical call: a second call with
// another payload but the same id gets the first call's recorded result
// and changes nothing. Without one, every mutating call of Client gets a
// fresh id, kept across its own retries.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id ctx carries, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// NewRequestID returns a fresh random request id.
func NewRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ensureRequestID returns ctx with a request id: its own, or a fresh one.
func ensureRequestID(ctx context.Context) (context.Context, string) {
	if id := RequestID(ctx); id != "" {
		return ctx, id
	}
	id := NewRequestID()
	return WithRequestID(ctx, id), id
}
