package httpapi

import (
	"testing"

	"github.com/resizer/resizer/internal/imageproc"
)

func TestNegotiate(t *testing.T) {
	tests := []struct {
		accept string
		want   imageproc.Format
	}{
		{"", imageproc.FormatUnknown},
		{"*/*", imageproc.FormatUnknown},
		{"image/webp,*/*", imageproc.FormatWebP},
		{"image/avif,image/webp,image/apng,image/*,*/*;q=0.8", imageproc.FormatAVIF},
		{"image/avif;q=0, image/webp", imageproc.FormatWebP},
		{"IMAGE/WEBP", imageproc.FormatWebP},
		{"image/avif;q=0.0", imageproc.FormatUnknown},
		// Parameter names are case-insensitive (RFC 9110 5.6.6): Q=0
		// refuses as q=0 does.
		{"image/webp;Q=0", imageproc.FormatUnknown},
		{"image/avif; Q=0, image/webp", imageproc.FormatWebP},
		{"text/html", imageproc.FormatUnknown},
	}
	for _, tt := range tests {
		got := imageproc.FormatUnknown
		if fs := negotiate(tt.accept); len(fs) > 0 {
			got = fs[0]
		}
		if got != tt.want {
			t.Errorf("negotiate(%q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}
