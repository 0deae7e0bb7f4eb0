package imageproc

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"testing"
)

func TestSniff(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want Format
	}{
		{"jpeg", []byte("\xFF\xD8\xFF\xE0rest"), FormatJPEG},
		{"png", append(append([]byte{}, pngSignature...), "rest"...), FormatPNG},
		{"gif87", []byte("GIF87a..."), FormatGIF},
		{"gif89", []byte("GIF89a..."), FormatGIF},
		{"webp", []byte("RIFF\x00\x00\x00\x00WEBPVP8 "), FormatWebP},
		{"avif", []byte("\x00\x00\x00\x1cftypavif\x00\x00\x00\x00"), FormatAVIF},
		{"heic", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"), FormatHEIF},
		{"mp4 is not an image", []byte("\x00\x00\x00\x18ftypisom\x00\x00\x00\x00"), FormatUnknown},
		{"tiff le", []byte("II*\x00\x08\x00\x00\x00"), FormatTIFF},
		{"tiff be", []byte("MM\x00*\x00\x00\x00\x08"), FormatTIFF},
		{"pdf", []byte("%PDF-1.7\n"), FormatPDF},
		{"svg", []byte("<svg xmlns='http://www.w3.org/2000/svg'/>"), FormatSVG},
		{"jxl codestream", []byte("\xFF\x0A\xFA\x7F"), FormatJXL},
		{"jxl container", []byte("\x00\x00\x00\x0CJXL \x0D\x0A\x87\x0A\x00\x00\x00\x14ftypjxl "), FormatJXL},
		{"jxl container, signature broken", []byte("\x00\x00\x00\x0CJXL \x0D\x0A\x87\x0B"), FormatUnknown},
		{"svg with prolog", []byte("\xEF\xBB\xBF<?xml version='1.0'?>\n<!-- c -->\n<!DOCTYPE svg>\n<svg>"), FormatSVG},
		{"html", []byte("<html><svg></svg></html>"), FormatUnknown},
		{"svg with an internal DTD subset", []byte("<?xml version='1.0'?><!DOCTYPE svg [<!ENTITY e 'x'>]><svg>"), FormatUnknown},
		{"text named .jpg", []byte("hello, I am a photo"), FormatUnknown},
		{"empty", nil, FormatUnknown},
		{"bmp", []byte("BM\x36\x00\x00\x00"), FormatUnknown},
		{"psd", []byte("8BPS\x00\x01"), FormatUnknown},
		{"riff wave", []byte("RIFF\x00\x00\x00\x00WAVEfmt "), FormatUnknown},
	}
	for _, tt := range tests {
		if got := Sniff(tt.b); got != tt.want {
			t.Errorf("%s: Sniff = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestReadHeader(t *testing.T) {
	q := quadrants(300, 200)
	jpg, pngb, gifb := encodeJPEG(t, q), encodePNG(t, q), encodeGIF(t, q)
	p := newTestProcessor(t, nil)
	webp, err := p.Process(t.Context(), pngb, Options{Format: FormatWebP})
	if err != nil {
		t.Fatal(err)
	}
	avif, err := p.Process(t.Context(), pngb, Options{Format: FormatAVIF})
	if err != nil {
		t.Fatal(err)
	}
	lossless, err := p.Process(t.Context(), pngb, Options{Format: FormatPNG, Width: 150})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    Format
		b    []byte
		w, h int
	}{
		{"jpeg", FormatJPEG, jpg, 300, 200},
		{"jpeg with exif", FormatJPEG, withOrientation(jpg, 6), 300, 200}, // stored size
		{"photo", FormatJPEG, readTestdata(t, "ladybird.jpg"), 2560, 1600},
		{"png", FormatPNG, pngb, 300, 200},
		{"png from libvips", FormatPNG, lossless.Data, 150, 100},
		{"gif", FormatGIF, gifb, 300, 200},
		{"webp", FormatWebP, webp.Data, 300, 200},
		{"avif", FormatAVIF, avif.Data, 300, 200},
		{"flood png", FormatPNG, readTestdata(t, "flood.png"), 20000, 20000},
	}
	for _, tt := range tests {
		st, ok, err := readHeader(tt.f, tt.b)
		if err != nil || !ok || st.w != tt.w || st.h != tt.h {
			t.Errorf("%s: header %dx%d ok=%v err=%v, want %dx%d", tt.name, st.w, st.h, ok, err, tt.w, tt.h)
		}
		// Every prefix that cuts into the image must be refused, never
		// read as a smaller or garbage size.
		for _, cut := range []int{1, 10, 40, len(tt.b) / 2, len(tt.b) - 3} {
			if cut >= len(tt.b) {
				continue
			}
			if _, _, err := readHeader(tt.f, tt.b[:cut]); !errors.Is(err, ErrUndecodable) {
				t.Errorf("%s cut to %d bytes: err = %v, want ErrUndecodable", tt.name, cut, err)
			}
		}
	}
}

func TestGIFHeaderTakesLargestExtent(t *testing.T) {
	// A 10x10 logical screen whose first frame claims to start at
	// (60000, 0): the decoder's canvas is what counts.
	pal := color.Palette{color.Black, color.White}
	img := image.NewPaletted(image.Rect(0, 0, 10, 10), pal)
	var b bytes.Buffer
	if err := gif.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	i := bytes.IndexByte(data[13+6:], 0x2C) + 13 + 6 // first image descriptor after the palette
	data[i+1], data[i+2] = 0x60, 0xEA                // left = 60000
	st, _, err := readHeader(FormatGIF, data)
	if err != nil {
		t.Fatal(err)
	}
	if st.w != 60010 || st.h != 10 {
		t.Fatalf("header %dx%d, want 60010x10", st.w, st.h)
	}
}
