package depot

import (
	"errors"
	"testing"
)

func TestFid_RoundTrip(t *testing.T) {
	for _, f := range []Fid{
		{Volume: 17, Needle: 0x3f9a, Cookie: 0x0c21e4b7},
		{Volume: 1, Needle: 0, Cookie: 0},
		{Volume: 4294967295, Needle: 0xffffffffffffffff, Cookie: 0xffffffff},
	} {
		s := f.String()
		g, err := ParseFid(s)
		if err != nil {
			t.Fatalf("ParseFid(%q): %v", s, err)
		}
		if g != f {
			t.Fatalf("ParseFid(%q) = %+v, want %+v", s, g, f)
		}
	}
	if got := (Fid{Volume: 17, Needle: 0x3f9a, Cookie: 0x0c21e4b7}).String(); got != "17,3f9a0c21e4b7" {
		t.Fatalf("String = %q", got)
	}
}

func TestParseFid_ErrBadFid(t *testing.T) {
	for _, s := range []string{"", ",", "17", "17,", ",abc", "0,10c21e4b7", "x,10c21e4b7", "17,0c21e4b7", "17,zz0c21e4b7", "17,1zc21e4b7", "17,1234567890abcdef0123456789"} {
		if _, err := ParseFid(s); !errors.Is(err, ErrBadFid) {
			t.Errorf("ParseFid(%q) err = %v, want ErrBadFid", s, err)
		}
	}
}

func FuzzParseFid(f *testing.F) {
	f.Add("17,3f9a0c21e4b7")
	f.Add("1,00000000")
	f.Fuzz(func(t *testing.T, s string) {
		fid, err := ParseFid(s)
		if err != nil {
			return
		}
		again, err := ParseFid(fid.String())
		if err != nil || again != fid {
			t.Fatalf("round trip of %q: %v %+v %+v", s, err, again, fid)
		}
	})
}
