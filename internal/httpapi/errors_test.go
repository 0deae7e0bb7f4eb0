package httpapi

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// A problem's detail is one line of bounded length, whatever the message
// it is made from: lines joined, repeats dropped, long ones cut whole
// runes at a time.
func TestOneLine(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"width: must be at least 1", "width: must be at least 1"},
		{"a\nb\r\nc\n", "a; b; c"},
		{"VipsJpeg: x\nVipsJpeg: x\nVipsJpeg: x\nend", "VipsJpeg: x; end"},
		{"  \n\n", ""},
	} {
		if got := oneLine(tt.in); got != tt.want {
			t.Errorf("oneLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for n := maxDetail - 4; n < maxDetail+8; n++ {
		for _, r := range []string{"a", "é", "€", "😀"} {
			in := strings.Repeat(r, n) + "\nmore"
			got := oneLine(in)
			if !utf8.ValidString(got) || len(got) > maxDetail+len("…") || strings.ContainsAny(got, "\r\n") {
				t.Fatalf("oneLine of %d %q: %d bytes, valid %v: %q", n, r, len(got), utf8.ValidString(got), got)
			}
			if len(in) > maxDetail && !strings.HasSuffix(got, "…") {
				t.Fatalf("oneLine of %d %q: cut without a mark", n, r)
			}
		}
	}
}
