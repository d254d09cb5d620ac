// Package sse owns the encryption at rest of S3 objects (server-side
// encryption): the master keyring, the sealing of per-stream data keys, and
// the chunked AES-256-GCM format of encrypted bytes, with range reads that
// fetch and open only the chunks a range touches. It knows nothing of HTTP
// or S3 headers; gateway/s3 wires it in.
//
// # Modes
//
// SSE-S3: every stream gets a fresh random data key, sealed by the active
// master key of the gateways' Keyring; the sealed key and the master key's
// id are kept in the object's metadata (depot.Stream), so that older master
// keys keep opening the objects they sealed after a newer key became
// active. SSE-C: the data key is sealed by a key derived from the key the
// client sends with each request (CustomerKey); that key is never stored,
// only a salted HMAC of it (KeyCheck), which tells a wrong key from the
// right one before any byte is read.
//
// # Key derivation
//
// No key is used for more than one purpose. From a 32-byte master key M
// and a 32-byte customer key C, with HKDF-SHA256 (RFC 5869, empty salt):
//
//	master key-encryption key   = HKDF(M, info "depot sse-s3 kek v1")
//	customer key-encryption key = HKDF(C, info "depot sse-c kek v1")
//	customer key check          = HMAC-SHA256(HKDF(C, info "depot sse-c check v1"), salt)
//
// A KeyCheck is the text "v1:" followed by the unpadded base64url of the
// 16-byte random salt and the 32-byte HMAC (48 bytes).
//
// # Sealed data keys
//
// A data key is 32 random bytes. Its sealed form (depot.Stream.Key) is 60
// bytes: a 12-byte random nonce, then AES-256-GCM under the key-encryption
// key of the 32-byte data key, with the additional data
//
//	"depot sse dk v1" 0x00 mode 0x00 key id
//
// (mode "SSE-S3" or "SSE-C"; key id empty for SSE-C), so that a sealed key
// cannot be moved to another mode or key id.
//
// # Streams and chunks
//
// An object's plaintext is the concatenation of its streams
// (depot.Encryption.Streams: one per PUT or copy, one per multipart part),
// and its stored bytes (the segments, in order) the concatenation of the
// streams' sealed forms. A stream of Size plaintext bytes is cut into
// chunks of ChunkSize bytes (default 64 KiB), the last one shorter; an
// empty stream is one empty chunk, so every stream ends in an authenticated
// final chunk. Chunk i is stored at offset i × (ChunkSize + 16) of the
// stream as
//
//	AES-256-GCM-Seal(data key, nonce_i, plaintext chunk i, ad_i)   (len + 16 bytes)
//	nonce_i = Nonce (12 random bytes per stream) with its last 8 bytes
//	          XORed with the big-endian uint64 i
//	ad_i    = "depot sse chunk v1" 0x00, big-endian uint64 i, one byte:
//	          1 for the stream's last chunk, 0 otherwise
//
// A chunk therefore opens only at its own index, and only the last chunk
// opens as last: reordered, repeated, spliced (between streams: each has
// its own data key) or truncated stored bytes fail to open, and a read
// fails with depot.ErrCorrupt rather than return them. A range read of
// plaintext [off, off+n) maps to the chunks off/ChunkSize through
// (off+n-1)/ChunkSize of each stream it touches, fetches exactly their
// stored bytes, opens them and trims.
//
// # Keyring text
//
// The master keys are given as text (a file, or the environment variable
// DEPOT_SSE_MASTER_KEY): entries separated by newlines or commas, each
// "[id:]key", where key is 32 bytes as 64 hex digits or as base64 (standard
// or URL alphabet, padded or not) and id is 1 to 32 characters of
// [A-Za-z0-9._-]. An entry without id is named by its position, from "1".
// Lines starting with # are comments. The last entry is the active key,
// which seals new data keys; every entry opens the data keys it sealed. To
// rotate: append a new key, restart the gateways, and keep the old entries
// for as long as objects sealed by them exist.
//
// # Versions
//
// This is version 1 of the format, named in every derivation label and
// additional data ("v1"). testdata/v1-streams.json holds streams of it
// (SSE-S3 and SSE-C), which every later version must keep reading.
package sse
