package client

import (
	"errors"
	"strings"
	"testing"

	"depot"
)

func TestTag_RoundTrip(t *testing.T) {
	for _, tag := range []Tag{
		{},
		{Size: 12345, ETag: strings.Repeat("a", 32), ContentType: "image/jpeg"},
		{Size: 1 << 40, Manifest: true, ContentType: strings.Repeat("x", maxContentType)},
		{Size: 1 << 40, ETag: strings.Repeat("b", 32), ContentType: strings.Repeat("x", maxContentType), Pending: true, Written: 1 << 40},
	} {
		suffix := encodeTag(tag)
		// The tag is found at the end of whatever precedes it.
		shard := append([]byte("erasure-coded bytes"), suffix...)
		got, err := decodeTag(shard[max(0, len(shard)-maxTagBytes-tagTrailer):])
		if err != nil {
			t.Fatalf("decodeTag(%+v): %v", tag, err)
		}
		if got != tag {
			t.Fatalf("decodeTag = %+v, want %+v", got, tag)
		}
	}
}

func TestTag_ErrCorrupt(t *testing.T) {
	good := encodeTag(Tag{Size: 5})
	for name, b := range map[string][]byte{
		"Empty":     nil,
		"NoMagic":   []byte("hello world"),
		"LongLen":   append([]byte{'{', '}'}, 0xff, 0x0f, 'D', 'T'),
		"BadJSON":   append([]byte("{nope"), 5, 0, 'D', 'T'),
		"Negative":  append([]byte(`{"s":-1}`), 8, 0, 'D', 'T'),
		"Truncated": good[3:],
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeTag(b); !errors.Is(err, depot.ErrCorrupt) {
				t.Fatalf("decodeTag(%q) = %v, want ErrCorrupt", b, err)
			}
		})
	}
}

func FuzzDecodeTag(f *testing.F) {
	f.Add(encodeTag(Tag{Size: 7, ETag: "abc"}))
	f.Add([]byte("DT"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tag, err := decodeTag(b)
		if err != nil {
			return
		}
		if tag.Size < 0 {
			t.Fatalf("negative size accepted: %+v", tag)
		}
	})
}
