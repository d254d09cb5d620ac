// Package auth owns the cluster key and the token that every internal
// request between depot processes carries.
//
// # Token, version 2
//
// A signed request carries two headers and, for a streamed body, one
// trailer:
//
//	X-Depot-Auth:     2.<unix seconds>.<nonce>.<mac>
//	X-Depot-Body:     sha256=<hex SHA-256 of the body>   or   trailer
//	X-Depot-Body-Mac: <hex HMAC-SHA256(key, "depot-auth/2 body\n" <mac> "\n" <hex SHA-256 of the body>)>  (trailer)
//
// where nonce is 24 hex digits (96 random bits, new for every request)
// and mac is the hex HMAC-SHA256, under the cluster key, of
//
//	"depot-auth/2\n" <unix seconds> "\n" <nonce> "\n" <METHOD> "\n"
//	<path> "\n" <canonical query> "\n" <X-Depot-Body value>
//
// path is the request's URL path without the query; the canonical query is
// url.Values.Encode of the parsed query (keys sorted, values in order,
// escaped the same way whatever the sender wrote). A request without a
// body signs "sha256=" and the SHA-256 of nothing.
//
// The body is bound one of two ways. When the signer knows the body in
// advance (a request built over a bytes.Reader, up to MaxBufferedBody) it
// signs its hash in X-Depot-Body. When the body is a stream (a shard
// upload, a backup) it sends "X-Depot-Body: trailer" and the
// X-Depot-Body-Mac trailer after the last byte, which binds the hash of
// the bytes actually sent to this token's mac; the request goes chunked.
//
// The receiver checks, in order: the version, that the time is within
// MaxSkew of its clock, the mac, and that it has not seen the nonce before
// (ReplayCache: every nonce accepted within the token's lifetime, bounded;
// when full the oldest second is forgotten and tokens dated before it are
// refused, so a replay is never accepted). A body hashed in the header up
// to MaxBufferedBody bytes (by Content-Length) is read and checked before
// the handler runs; a longer or streamed body is checked as it is read,
// and its last Read returns an error wrapping ErrBadToken instead of
// io.EOF when the bytes do not match, so a handler that reads to the end
// (the shard store does) keeps nothing of a forged body.
//
// So a captured request cannot be sent again, nor with another body,
// query, path or method. Version 1 tokens (time, method and path only)
// are refused: every process of a cluster must run a release that signs
// version 2.
package auth
