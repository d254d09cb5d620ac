package nameserver

import (
	"fmt"
	"unicode/utf8"

	"depot"
)

// MaxKeyLen is the longest object key in bytes, as in S3.
const MaxKeyLen = 1024

// checkBucketName accepts 3 to 63 bytes of letters, digits, '.', '-' and
// '_', starting with a letter or digit. The S3 gateway may apply S3's
// stricter rules on top.
func checkBucketName(name string) error {
	if len(name) < 3 || len(name) > 63 {
		return fmt.Errorf("%w: bucket name %q: want 3 to 63 characters", depot.ErrBadRequest, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			i > 0 && (c == '.' || c == '-' || c == '_')
		if !ok {
			return fmt.Errorf("%w: bucket name %q: bad character at %d", depot.ErrBadRequest, name, i)
		}
	}
	return nil
}

// checkKey accepts 1 to MaxKeyLen bytes of valid UTF-8.
func checkKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: key must be 1 to %d bytes, got %d", depot.ErrBadRequest, MaxKeyLen, len(key))
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: key is not valid UTF-8", depot.ErrBadRequest)
	}
	return nil
}

// checkObject checks object metadata before it enters the namespace: a valid
// bucket and key, well-formed fids, and segment sizes that add up to Size
// (for an encrypted object: streams that add up to Size, and segments that
// add up to the streams' stored size).
func checkObject(o depot.Object) error {
	if err := checkBucketName(o.Bucket); err != nil {
		return err
	}
	if err := checkKey(o.Key); err != nil {
		return err
	}
	if o.Size < 0 {
		return fmt.Errorf("%w: negative size", depot.ErrBadRequest)
	}
	var sum int64
	for i, sg := range o.Segments {
		if _, err := depot.ParseFid(sg.Fid); err != nil {
			return fmt.Errorf("segment %d: %w", i, err)
		}
		if sg.Size < 0 {
			return fmt.Errorf("%w: segment %d: negative size", depot.ErrBadRequest, i)
		}
		sum += sg.Size
	}
	want := o.Size
	if e := o.Encryption; e != nil {
		if err := checkEncryption(e); err != nil {
			return err
		}
		if e.Size() != o.Size {
			return fmt.Errorf("%w: encrypted streams hold %d bytes, object size is %d", depot.ErrBadRequest, e.Size(), o.Size)
		}
		want = e.StoredSize()
	}
	if sum != want {
		return fmt.Errorf("%w: segments hold %d bytes, want %d", depot.ErrBadRequest, sum, want)
	}
	return nil
}

// checkEncryption checks an object's encryption record: a known mode and
// streams with sizes that make sense.
func checkEncryption(e *depot.Encryption) error {
	if e.Mode != depot.EncryptionS3 && e.Mode != depot.EncryptionC {
		return fmt.Errorf("%w: unknown encryption mode %q", depot.ErrBadRequest, e.Mode)
	}
	if len(e.Streams) == 0 {
		return fmt.Errorf("%w: encrypted object without streams", depot.ErrBadRequest)
	}
	for i, st := range e.Streams {
		if err := checkStream(st); err != nil {
			return fmt.Errorf("stream %d: %w", i, err)
		}
	}
	return nil
}

func checkStream(st depot.Stream) error {
	if st.Size < 0 || st.ChunkSize <= 0 || len(st.Key) == 0 || len(st.Nonce) == 0 {
		return fmt.Errorf("%w: bad encrypted stream", depot.ErrBadRequest)
	}
	return nil
}
