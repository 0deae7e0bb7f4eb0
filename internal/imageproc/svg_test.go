package imageproc

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
	"time"
)

// floodPNG is a w x h grey PNG of zeros: a few KB that decode to w*h
// bytes and more.
func floodPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	chunk := func(typ string, data []byte) []byte {
		c := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		c = append(append(c, typ...), data...)
		return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	row := make([]byte, 1+w) // filter byte, then the row
	for range h {
		zw.Write(row)
	}
	zw.Close()
	ihdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(w)), uint32(h))
	ihdr = append(ihdr, 8, 0, 0, 0, 0)
	return bytes.Join([][]byte{pngSignature, chunk("IHDR", ihdr), chunk("IDAT", z.Bytes()), chunk("IEND", nil)}, nil)
}

// An SVG document that embeds another file (a data: URL, which librsvg
// always loads, decoding it with gdk-pixbuf) is refused before a slot is
// taken, however the URL is spelled: an embedded PNG is decoded whole
// whatever MAX_PIXELS says (a 20000x20000 PNG in a 519 KB SVG: 200 after
// 5 s, 2.8 GB in the worker), and reaches decoders INPUT_FORMATS leaves
// off. References to other documents, which librsvg never loads, are
// still drawn without them.
func TestSVGEmbeddedFilesRefused(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) {
		c.Formats = append(append([]Format{}, DefaultInputFormats...), FormatSVG)
		c.Timeout = 20 * time.Second
	})
	flood := base64.StdEncoding.EncodeToString(floodPNG(t, 10000, 6000)) // 60 MP, over MaxPixels
	svg := func(body string) []byte {
		return []byte(`<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="100" height="60">` + body + `</svg>`)
	}
	url := "data:image/png;base64," + flood
	for name, doc := range map[string][]byte{
		"image href":       svg(`<image width="100" height="60" href="` + url + `"/>`),
		"xlink:href":       svg(`<image width="100" height="60" xlink:href="` + url + `"/>`),
		"upper case":       svg(`<image width="100" height="60" href=" DATA:` + url[5:] + `"/>`),
		"character refs":   svg(`<image width="100" height="60" href="&#100;&#x61;ta:` + url[5:] + `"/>`),
		"a newline inside": svg(`<image width="100" height="60" href="da&#10;ta:` + url[5:] + `"/>`),
		"feImage":          svg(`<filter id="f"><feImage href="` + url + `"/></filter><rect width="100" height="60" filter="url(#f)"/>`),
		"fill url":         svg(`<pattern id="p" width="1" height="1"><image width="100" height="60" href="` + url + `"/></pattern><rect width="100" height="60" fill="url(data:image/svg+xml;base64,PHN2Zy8+#p)"/>`),
		"style attribute":  svg(`<rect width="100" height="60" style="fill: url( 'data:image/svg+xml;base64,PHN2Zy8+#p' )"/>`),
		"css escape":       svg(`<rect width="100" height="60" style="filter:url(\64 ata:image/svg+xml;base64,PHN2Zy8+#f)"/>`),
		"style element":    svg(`<style>rect { fill: url(da<!-- split -->ta:image/svg+xml;base64,PHN2Zy8+#p) }</style><rect width="100" height="60"/>`),
		"css comment":      svg(`<style><![CDATA[@import /**/"data:text/css;base64,cmVjdHtmaWxsOnJlZH0=";]]></style><rect width="100" height="60"/>`),
		"stylesheet PI": []byte(`<?xml version="1.0"?><?xml-stylesheet type="text/css" href="data:text/css,rect%7Bfill:red%7D"?>
<svg xmlns="http://www.w3.org/2000/svg" width="100" height="60"><rect width="100" height="60"/></svg>`),
		"xinclude": svg(`<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="data:text/plain,hello" parse="text"/>`),
	} {
		start := time.Now()
		_, err := p.Process(t.Context(), doc, Options{Width: 100, Format: FormatPNG})
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "data:") {
			t.Errorf("%s: %v after %s, want ErrUnsupported naming data:", name, err, time.Since(start).Round(time.Millisecond))
		}
	}
	for name, doc := range map[string][]byte{
		"other documents": svg(`<image width="10" height="10" href="https://example.com/a.png"/><image width="10" height="10" xlink:href="file:///etc/hostname"/>`),
		"fragments":       svg(`<defs><rect id="r" width="10" height="10"/></defs><use href="#r"/><rect width="100" height="60" fill="url(#g)"/>`),
		"words that hold data:": svg(`<metadata xmlns:x="urn:x-metadata:1" x:path="C:\Users\me\data: 1.svg">metadata: data:</metadata>` +
			`<text x="1" y="20">data:image/png;base64,AAAA</text><style>/* metadata: */ rect { fill: #123 }</style>`),
		"latin-1": []byte(`<?xml version="1.0" encoding="ISO-8859-1"?>` + "\n" +
			`<svg xmlns="http://www.w3.org/2000/svg" width="100" height="60"><title>caf` + "\xe9" + `</title><rect width="100" height="60"/></svg>`),
	} {
		if _, err := p.Process(t.Context(), doc, Options{Width: 50, Format: FormatPNG}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// An encoding whose bytes can spell data: otherwise (UTF-7: +AGQ-ata:)
	// is not read.
	utf7 := []byte(`<?xml version="1.0" encoding="UTF-7"?>` + "\n" + `<svg xmlns="http://www.w3.org/2000/svg" width="100" height="60"><image width="100" height="60" href="+AGQ-ata:image/png;base64,` + flood + `"/></svg>`)
	if _, err := p.Process(t.Context(), utf7, Options{Width: 50, Format: FormatPNG}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("UTF-7: %v, want ErrUnsupported", err)
	}
}

// feTurbulence's octaves are bounded: a document asking for more than
// maxSVGOctaves is refused at once, before a slot, rather than held until
// PROCESS_TIMEOUT; one within the bound is drawn.
func TestSVGTurbulenceBounded(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) {
		c.Formats = append(append([]Format{}, DefaultInputFormats...), FormatSVG)
	})
	doc := func(octaves string) []byte {
		return []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400"><filter id="t"><feTurbulence baseFrequency="0.05" numOctaves="` +
			octaves + `"/></filter><rect width="400" height="400" filter="url(#t)"/></svg>`)
	}
	for _, n := range []string{"100000", " 11 ", "1e6", "2147483647"} {
		start := time.Now()
		_, err := p.Process(t.Context(), doc(n), Options{Width: 100, Format: FormatPNG})
		if !errors.Is(err, ErrUnsatisfiable) || !strings.Contains(err.Error(), "numOctaves") || time.Since(start) > time.Second {
			t.Errorf("numOctaves=%q: %v after %s, want ErrUnsatisfiable at once", n, err, time.Since(start).Round(time.Millisecond))
		}
	}
	for _, n := range []string{"1", "4", "10"} {
		if _, err := p.Process(t.Context(), doc(n), Options{Width: 100, Format: FormatPNG}); err != nil {
			t.Errorf("numOctaves=%s: %v", n, err)
		}
	}
}

// FuzzCheckSVG checks that any document is accepted or refused with one
// of checkSVG's three errors, never a panic; and that a document it
// accepts is refused once a data: URL is added to it, in any of the
// places librsvg reads one, however the attribute spells it.
func FuzzCheckSVG(f *testing.F) {
	for _, s := range []string{
		`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>`,
		`<?xml version="1.0" encoding="ISO-8859-1"?><svg xmlns="http://www.w3.org/2000/svg"><title>caf` + "\xe9" + `</title></svg>`,
		`<svg xmlns="http://www.w3.org/2000/svg"><style>rect { fill: url(#g) } /* data */</style><use href="#r"/></svg>`,
		`<svg xmlns="http://www.w3.org/2000/svg"><filter id="t"><feTurbulence numOctaves="4"/></filter></svg>`,
		`<svg xmlns="http://www.w3.org/2000/svg"><metadata>metadata: data:</metadata></svg>`,
	} {
		f.Add([]byte(s), uint8(0))
	}
	spellings := []string{`data:`, `DATA:`, `&#100;ata:`, `da&#x0A;ta:`, ` Data:`}
	f.Fuzz(func(t *testing.T, b []byte, which uint8) {
		err := checkSVG(b)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrUndecodable) && !errors.Is(err, ErrUnsatisfiable) {
				t.Fatalf("error %v wraps none of checkSVG's errors", err)
			}
			return
		}
		end := bytes.LastIndex(b, []byte("</svg>"))
		if end < 0 {
			return
		}
		url := spellings[int(which)%len(spellings)] + "image/png;base64,AAAA"
		with := append(append(append([]byte{}, b[:end]...), `<image href="`+url+`"/>`...), b[end:]...)
		if !hasImageElement(with) {
			return // the last </svg> was in a comment, a CDATA section, ...
		}
		if err := checkSVG(with); !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrUndecodable) {
			t.Fatalf("a data: URL added (%s) to an accepted document: %v", url, err)
		}
	})
}

// hasImageElement reports whether doc, read as XML, holds an <image>
// element with an href: FuzzCheckSVG's addition, where it became one.
func hasImageElement(doc []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	d.CharsetReader = svgCharset
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		if e, ok := tok.(xml.StartElement); ok && e.Name.Local == "image" {
			for _, a := range e.Attr {
				if a.Name.Local == "href" && strings.Contains(a.Value, "image/png;base64,AAAA") {
					return true
				}
			}
		}
	}
}
