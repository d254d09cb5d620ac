// Package gateway serves depot over HTTP: the native /v1 API (and, on the
// same port, the S3 API) on top of the client package. It keeps no state
// of its own: every fact lives in the nameserver or on the dataservers, so
// any number of gateways can run and a restart loses nothing.
//
// # Native API
//
//	POST   /v1/blobs          store the body; 201 {"fid":"3,1a2b0c21e4b7","size":N,"etag":"<md5>"}
//	GET    /v1/blobs/{fid}    the bytes; Range (one range; 206, 416), If-None-Match (304)
//	HEAD   /v1/blobs/{fid}    the headers of GET
//	DELETE /v1/blobs/{fid}    204
//
// Responses to GET and HEAD carry ETag (the MD5 of the bytes, quoted),
// Content-Type (as uploaded, else application/octet-stream), Accept-Ranges
// and Cache-Control: public, max-age=31536000, immutable, since a fid's
// bytes never change. A malformed fid is 400, an unknown fid or a wrong
// cookie 404. Errors are JSON: {"code":"NotFound","error":"..."}.
//
// Writes and deletes need the root credentials, as HTTP Basic
// (user:password) or as "Authorization: Bearer <password>". Reads need
// none: the cookie in a fid makes it unguessable.
//
// /healthz, /readyz and /metrics are served beside the API, without
// credentials (Config.MetricsToken makes /metrics need a bearer token).
// With Config.TLS the gateway serves HTTPS (HTTP/1.1), and Reload swaps its
// certificate for new connections.
//
// # Limits
//
// The HTTP server closes connections that take longer than
// Config.ReadHeaderTimeout to send their headers (slow-loris) or idle
// longer than Config.IdleTimeout between requests. Every request body is
// wrapped by guard.Body: a read that gets nothing for
// Config.BodyReadTimeout fails (408 RequestTimeout here, S3 RequestTimeout
// on the S3 API) and the connection is closed. Likewise every response is
// wrapped by guard.WriteStall: a write the client takes nothing of for
// Config.WriteTimeout fails and the connection is closed, so a client that
// stops reading a download holds nothing for long. At most Config.MaxConns
// connections are open at once (guard.LimitListener); more wait in the
// listen backlog. Config.RateLimit gives each
// client IP (and, on the S3 API, each access key) a token bucket; a native
// request over its IP's rate is 429 {"code":"SlowDown"} with Retry-After,
// an S3 one SlowDown 503. The S3 API's own limits are in s3.Config.
package gateway
