package depot

import (
	"errors"
	"strings"
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

// FuzzParseFid: whatever ParseFid accepts formats to a fid that parses
// back the same, and its text differs from the input only by leading
// zeros of the needle id.
func FuzzParseFid(f *testing.F) {
	f.Add("17,3f9a0c21e4b7")
	f.Add("1,00000000")
	f.Add("4294967295,ffffffffffffffffffffffff")
	f.Add("+1,0000000000")
	f.Add("1,0x00000000")
	f.Add("01,_1234567890")
	f.Fuzz(func(t *testing.T, s string) {
		fid, err := ParseFid(s)
		if err != nil {
			if !errors.Is(err, ErrBadFid) {
				t.Fatalf("ParseFid(%q): %v does not wrap ErrBadFid", s, err)
			}
			return
		}
		text := fid.String()
		again, err := ParseFid(text)
		if err != nil || again != fid {
			t.Fatalf("round trip of %q: %v %+v %+v", s, err, again, fid)
		}
		if !strings.EqualFold(strings.TrimLeft(s[strings.IndexByte(s, ',')+1:], "0"), strings.TrimLeft(text[strings.IndexByte(text, ',')+1:], "0")) {
			t.Fatalf("ParseFid(%q) = %+v, which formats as %q", s, fid, text)
		}
	})
}

// FuzzFidString: every fid with a volume formats to text that parses back
// to it.
func FuzzFidString(f *testing.F) {
	f.Add(uint32(17), uint64(0x3f9a), uint32(0x0c21e4b7))
	f.Add(uint32(1), uint64(0), uint32(0))
	f.Add(uint32(4294967295), uint64(1<<64-1), uint32(1<<32-1))
	f.Fuzz(func(t *testing.T, vol uint32, needle uint64, cookie uint32) {
		if vol == 0 {
			return
		}
		fid := Fid{Volume: VolumeID(vol), Needle: NeedleID(needle), Cookie: Cookie(cookie)}
		got, err := ParseFid(fid.String())
		if err != nil || got != fid {
			t.Fatalf("ParseFid(%q) = %+v, %v; want %+v", fid.String(), got, err, fid)
		}
	})
}
