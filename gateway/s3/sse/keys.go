package sse

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"depot"
)

// KeySize is the size in bytes of master keys, customer keys and data keys.
const KeySize = 32

// Errors.
var (
	// ErrUnknownKey is returned when a stream was sealed by a master key
	// the keyring does not hold.
	ErrUnknownKey = errors.New("sse: master key not in the keyring")
	// ErrBadKey is returned for a key of the wrong size or encoding, and
	// for malformed keyring text.
	ErrBadKey = errors.New("sse: bad key")
)

// KEK seals and opens data keys: a Keyring (SSE-S3) or a CustomerKey
// (SSE-C).
type KEK interface {
	// Mode returns depot.EncryptionS3 or depot.EncryptionC.
	Mode() string
	// seal seals a data key, returning the id of the key that sealed it.
	seal(dk []byte) (keyID string, sealed []byte, err error)
	// open opens a data key sealed by seal. It returns an error wrapping
	// ErrUnknownKey for an unknown key id and depot.ErrCorrupt when the
	// sealed key does not open.
	open(keyID string, sealed []byte) ([]byte, error)
}

var (
	_ KEK = (*Keyring)(nil)
	_ KEK = (*CustomerKey)(nil)
)

func derive(secret []byte, info string) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, info, KeySize)
	if err != nil {
		panic("sse: hkdf: " + err.Error()) // only for lengths above 255×32
	}
	return k
}

func newGCM(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic("sse: " + err.Error()) // keys are always 32 bytes here
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic("sse: " + err.Error())
	}
	return g
}

func dkAD(mode, keyID string) []byte {
	return []byte("depot sse dk v1\x00" + mode + "\x00" + keyID)
}

func sealDK(kek cipher.AEAD, mode, keyID string, dk []byte) ([]byte, error) {
	nonce := make([]byte, kek.NonceSize(), kek.NonceSize()+len(dk)+kek.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return kek.Seal(nonce, nonce, dk, dkAD(mode, keyID)), nil
}

func openDK(kek cipher.AEAD, mode, keyID string, sealed []byte) ([]byte, error) {
	ns := kek.NonceSize()
	if len(sealed) != ns+KeySize+kek.Overhead() {
		return nil, fmt.Errorf("%w: sealed data key is %d bytes", depot.ErrCorrupt, len(sealed))
	}
	dk, err := kek.Open(nil, sealed[:ns], sealed[ns:], dkAD(mode, keyID))
	if err != nil {
		return nil, fmt.Errorf("%w: data key does not open under key %q", depot.ErrCorrupt, keyID)
	}
	return dk, nil
}

// MasterKey is one key of a Keyring.
type MasterKey struct {
	ID  string
	Key []byte // KeySize bytes
}

// Keyring holds the master keys of SSE-S3: the active one seals new data
// keys, every one opens the data keys it sealed. It is safe for concurrent
// use and never changes after NewKeyring.
type Keyring struct {
	active string
	ids    []string
	keks   map[string]cipher.AEAD
}

// NewKeyring returns a keyring of keys; the last one is active. It returns
// an error wrapping ErrBadKey for no keys, a bad id, a repeated id or a key
// that is not KeySize bytes.
func NewKeyring(keys []MasterKey) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no master keys", ErrBadKey)
	}
	k := &Keyring{keks: make(map[string]cipher.AEAD, len(keys))}
	for _, mk := range keys {
		if !validID(mk.ID) {
			return nil, fmt.Errorf("%w: key id %q: want 1 to 32 of A-Z a-z 0-9 . _ -", ErrBadKey, mk.ID)
		}
		if len(mk.Key) != KeySize {
			return nil, fmt.Errorf("%w: key %q is %d bytes, want %d", ErrBadKey, mk.ID, len(mk.Key), KeySize)
		}
		if _, dup := k.keks[mk.ID]; dup {
			return nil, fmt.Errorf("%w: key id %q given twice", ErrBadKey, mk.ID)
		}
		k.keks[mk.ID] = newGCM(derive(mk.Key, "depot sse-s3 kek v1"))
		k.ids = append(k.ids, mk.ID)
		k.active = mk.ID
	}
	return k, nil
}

func validID(id string) bool {
	if id == "" || len(id) > 32 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Mode returns depot.EncryptionS3.
func (k *Keyring) Mode() string { return depot.EncryptionS3 }

// Active returns the id of the key that seals new data keys.
func (k *Keyring) Active() string { return k.active }

// IDs returns the ids of the keyring's keys, the active one last.
func (k *Keyring) IDs() []string { return append([]string(nil), k.ids...) }

func (k *Keyring) seal(dk []byte) (string, []byte, error) {
	sealed, err := sealDK(k.keks[k.active], depot.EncryptionS3, k.active, dk)
	return k.active, sealed, err
}

func (k *Keyring) open(keyID string, sealed []byte) ([]byte, error) {
	kek, ok := k.keks[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKey, keyID)
	}
	return openDK(kek, depot.EncryptionS3, keyID, sealed)
}

// ParseKeyring parses keyring text (see the package documentation).
func ParseKeyring(text string) (*Keyring, error) {
	var keys []MasterKey
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, entry := range strings.Split(line, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			id, key, found := strings.Cut(entry, ":")
			if !found {
				id, key = strconv.Itoa(len(keys)+1), entry
			}
			b, err := ParseKey(strings.TrimSpace(key))
			if err != nil {
				return nil, fmt.Errorf("master key %q: %w", strings.TrimSpace(id), err)
			}
			keys = append(keys, MasterKey{ID: strings.TrimSpace(id), Key: b})
		}
	}
	return NewKeyring(keys)
}

// ParseKey decodes a KeySize-byte key given as 64 hex digits or as base64
// (standard or URL alphabet, padded or not).
func ParseKey(s string) ([]byte, error) {
	if len(s) == 2*KeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadKey, len(b), KeySize)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: neither 64 hex digits nor base64", ErrBadKey)
}

// GenerateKeyringText returns keyring text with one new random key, id "1".
func GenerateKeyringText() (string, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "# depot SSE-S3 master keys, one \"id:base64\" a line; the last one is active.\n" +
		"# Keep every key for as long as objects sealed by it exist.\n" +
		"1:" + base64.StdEncoding.EncodeToString(b) + "\n", nil
}

// LoadOrCreateKeyringFile reads the keyring text in path, or writes a new
// keyring there (mode 0600) when the file does not exist.
func LoadOrCreateKeyringFile(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		text, gerr := GenerateKeyringText()
		if gerr != nil {
			return nil, gerr
		}
		f, oerr := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if oerr != nil {
			return nil, fmt.Errorf("sse: create keyring: %w", oerr)
		}
		_, werr := io.WriteString(f, text)
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return nil, fmt.Errorf("sse: write keyring: %w", err)
		}
		b = []byte(text)
	} else if err != nil {
		return nil, fmt.Errorf("sse: read keyring: %w", err)
	}
	k, err := ParseKeyring(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// CustomerKey is an SSE-C key as the client sent it, ready to seal and
// open data keys and to be checked against a KeyCheck.
type CustomerKey struct {
	kek   cipher.AEAD
	check []byte // HMAC key of the key check
}

// NewCustomerKey returns the CustomerKey of a KeySize-byte key. It returns
// an error wrapping ErrBadKey for any other size.
func NewCustomerKey(key []byte) (*CustomerKey, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: customer key is %d bytes, want %d", ErrBadKey, len(key), KeySize)
	}
	return &CustomerKey{kek: newGCM(derive(key, "depot sse-c kek v1")), check: derive(key, "depot sse-c check v1")}, nil
}

// Mode returns depot.EncryptionC.
func (c *CustomerKey) Mode() string { return depot.EncryptionC }

func (c *CustomerKey) seal(dk []byte) (string, []byte, error) {
	sealed, err := sealDK(c.kek, depot.EncryptionC, "", dk)
	return "", sealed, err
}

func (c *CustomerKey) open(keyID string, sealed []byte) ([]byte, error) {
	if keyID != "" {
		return nil, fmt.Errorf("%w: SSE-C stream names master key %q", depot.ErrCorrupt, keyID)
	}
	return openDK(c.kek, depot.EncryptionC, "", sealed)
}

const checkPrefix = "v1:"

func (c *CustomerKey) mac(salt []byte) []byte {
	h := hmac.New(sha256.New, c.check)
	h.Write(salt)
	return h.Sum(nil)
}

// KeyCheck returns a new key check of c: a random salt and the salted
// HMAC, from which the key cannot be recovered.
func (c *CustomerKey) KeyCheck() (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return checkPrefix + base64.RawURLEncoding.EncodeToString(append(salt, c.mac(salt)...)), nil
}

// Matches reports whether c is the key that made the key check.
func (c *CustomerKey) Matches(check string) bool {
	rest, ok := strings.CutPrefix(check, checkPrefix)
	if !ok {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) != 16+sha256.Size {
		return false
	}
	return hmac.Equal(b[16:], c.mac(b[:16]))
}
