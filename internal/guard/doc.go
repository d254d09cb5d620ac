// Package guard protects an HTTP server from clients that ask too much:
// rate limits per client IP and per access key, deadlines on request
// bodies and responses that stall, and a cap on open connections. It knows nothing of S3 or of depot's APIs;
// the gateway decides what to answer (S3 SlowDown with 503, the native
// API 429).
//
// # Rate limits
//
// Each client IP and each access key has a token bucket
// (golang.org/x/time/rate) that refills at Config.PerIP or Config.PerKey
// requests a second and holds Config.PerIPBurst or Config.PerKeyBurst
// tokens (default: twice the rate, at least 1). A request takes one token; none left means refuse.
// The buckets live in two LRU caches (hashicorp/golang-lru/v2) of
// Config.Tracked entries each, so memory is bounded whatever the number of
// clients: an evicted client starts again with a full bucket, which is
// harmless since eviction only reaches clients idle for longer than the
// Tracked most recent ones. A zero rate turns that limit off.
//
// # Stalled bodies
//
// Body wraps a request body so that every Read must make progress within
// a timeout: before each Read it moves the connection's read deadline
// (http.ResponseController.SetReadDeadline) to now plus the timeout. A
// client that stops sending mid-body is cut off, the Read fails with an
// error wrapping ErrBodyTimeout, and the connection is closed. A client
// that keeps sending, however slowly per Read, is not: pair it with a
// bound on the body size.
//
// # Stalled responses and connection count
//
// WriteStall does the same for responses: every Write must complete within
// a timeout (the connection's write deadline, moved before each Write), so
// a client that stops reading a download is cut off, while a long answer
// to a client that keeps reading is not. LimitListener caps the
// connections a server holds open; Accept waits for one to close.
package guard
