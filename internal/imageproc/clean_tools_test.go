package imageproc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The real tools the cleaners' tests use to make and inspect files:
// exiftool plants and reads metadata, libvips encodes and decodes, djpeg
// counts scans. Without them the tests fail rather than skip: they are the
// proof that no metadata leaks.

// needTool returns the path of a command the test needs. Without it the test
// fails rather than skips: these tests are the proof that no metadata leaks.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed (exiftool: libimage-exiftool-perl; vips: libvips-tools; djpeg: libjpeg-turbo-progs; cwebp: webp): %v", name, err)
	}
	return p
}

// runTool runs a command and returns its standard output and standard
// error; a failure fails the test.
func runTool(t testing.TB, name string, args ...string) (stdout, stderr []byte) {
	t.Helper()
	cmd := exec.Command(needTool(t, name), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, e.Bytes())
	}
	return o.Bytes(), e.Bytes()
}

func readTestFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encodeTestPNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writeTestFile writes b to a new file named name in a test's directory.
func writeTestFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// plantedStrings are the values planted in the metadata of test files. No
// byte sequence of them may survive cleaning, and exiftool must find none.
var plantedStrings = []string{
	"PlantedArtist", "PlantedCopyright", "PlantedDescription", "PlantedModel",
	"PlantedMakerNote", "PlantedUserComment", "PlantedGPSArea",
	"PlantedXMPCreator", "PlantedIPTCByline", "PlantedComment",
}

// plantMetadata has exiftool write, into each file, EXIF (IFD0 with the
// orientation given for the file, an artist and copyright; a maker note
// and user comment; a GPS position), XMP and, where the format has them,
// IPTC, a comment and a modification time. One exiftool process does all
// the files.
func plantMetadata(t testing.TB, orientation map[string]int) {
	t.Helper()
	var args []string
	for path, o := range orientation {
		if len(args) > 0 {
			args = append(args, "-execute")
		}
		args = append(args, "-m", "-q", "-overwrite_original",
			fmt.Sprintf("-Orientation#=%d", o),
			"-Artist=PlantedArtist", "-Copyright=PlantedCopyright",
			"-ImageDescription=PlantedDescription", "-Make=Acme", "-Model=PlantedModel",
			"-MakerNoteUnknownText=PlantedMakerNote", "-UserComment=PlantedUserComment",
			"-GPSLatitude=51.5", "-GPSLatitudeRef=N", "-GPSLongitude=0.12", "-GPSLongitudeRef=W",
			"-GPSAreaInformation=PlantedGPSArea",
			"-XMP-dc:Creator=PlantedXMPCreator", "-IPTC:By-line=PlantedIPTCByline",
			"-Comment=PlantedComment", "-PNG:ModifyDate=2020:01:02 03:04:05",
			path)
	}
	argfile := writeTestFile(t, t.TempDir(), "args", []byte(strings.Join(args, "\n")+"\n"))
	runTool(t, "exiftool", "-@", argfile)
}

// exifTags returns what exiftool reads from each file, as
// group:tag -> value by path. One exiftool process reads them all.
func exifTags(t testing.TB, paths ...string) map[string]map[string]any {
	t.Helper()
	var tags []map[string]any
	out, _ := runTool(t, "exiftool", append([]string{"-j", "-a", "-U", "-G1"}, paths...)...)
	if err := json.Unmarshal(out, &tags); err != nil || len(tags) != len(paths) {
		t.Fatalf("exiftool -j: %d results for %d files, %v", len(tags), len(paths), err)
	}
	byPath := map[string]map[string]any{}
	for _, m := range tags {
		p, _ := m["SourceFile"].(string)
		byPath[p] = m
	}
	return byPath
}

// metadataGroups are exiftool's groups (-G1) of the metadata the cleaners
// remove; exiftool must find none of them in a cleaned file.
var metadataGroups = []string{"IFD0", "IFD1", "ExifIFD", "GPS", "InteropIFD", "MakerNotes", "MakerUnknown", "XMP", "IPTC", "Photoshop", "FlashPix", "MPF"}

// checkStripped fails unless exiftool found the planted values in the
// input (so that their absence afterwards means something) and finds none
// of them, and no metadata group, in the cleaned output; and unless none of
// the planted strings occurs in the output's bytes.
func checkStripped(t testing.TB, in, out map[string]any, outBytes []byte, want []string) {
	t.Helper()
	found := func(tags map[string]any, s string) []string {
		var keys []string
		for k, v := range tags {
			if strings.Contains(fmt.Sprint(v), s) {
				keys = append(keys, k)
			}
		}
		return keys
	}
	for _, s := range want {
		if len(found(in, s)) == 0 {
			t.Errorf("exiftool did not plant %s in the input", s)
		}
	}
	for _, s := range plantedStrings {
		if keys := found(out, s); len(keys) > 0 {
			t.Errorf("%s survives cleaning in %v", s, keys)
		}
		if bytes.Contains(outBytes, []byte(s)) {
			t.Errorf("%s survives cleaning in the bytes", s)
		}
	}
	for k := range out {
		for _, g := range metadataGroups {
			if strings.HasPrefix(k, g) {
				t.Errorf("exiftool still reads %s = %v", k, out[k])
			}
		}
	}
}

// vipsPixels returns the pixel data of a .v file (libvips' own format: a
// 64-byte header, then the pixels, then XML metadata).
func vipsPixels(t testing.TB, path string) []byte {
	t.Helper()
	b := readTestFile(t, path)
	if len(b) < 64 {
		t.Fatalf("%s: short .v file", path)
	}
	w, h := binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
	bands, format := binary.LittleEndian.Uint32(b[12:]), binary.LittleEndian.Uint32(b[20:])
	sizes := []int{1, 1, 2, 2, 4, 4, 4, 8, 8, 16} // uchar char ushort short uint int float complex double dpcomplex
	if int(format) >= len(sizes) {
		t.Fatalf("%s: band format %d", path, format)
	}
	n := int(w) * int(h) * int(bands) * sizes[format]
	if n == 0 || 64+n > len(b) {
		t.Fatalf("%s: %dx%dx%d of format %d does not fit", path, w, h, bands, format)
	}
	return b[64 : 64+n]
}

// vipsDecode has the vips command decode a file into a .v file as the
// service reads its inputs: failing on truncation, and on libjpeg's
// warnings that a scan's data ended early (jpegCutShort), lenient
// otherwise.
func vipsDecode(t testing.TB, in, out string) error {
	t.Helper()
	cmd := exec.Command(needTool(t, "vips"), "copy", in+"[fail_on=truncated]", out)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("vips copy %s: %v: %s", in, err, msg)
	}
	for _, w := range jpegCutShort {
		if bytes.Contains(msg, []byte(w)) {
			return fmt.Errorf("vips copy %s: %s", in, msg)
		}
	}
	// libvips tells only the first of libjpeg's warnings; the service
	// asks libjpeg itself after any (decodeWarnings).
	if b := readTestFile(t, in); len(msg) > 0 && Sniff(b) == FormatJPEG {
		c := newCbuf(len(b))
		defer c.free()
		copy(c.bytes(), b)
		if jpegEndsEarly(c) {
			return fmt.Errorf("%s: a scan's data ends early, behind: %s", in, msg)
		}
	}
	return nil
}

// djpegScans counts the scans libjpeg-turbo's djpeg reports decoding. A
// warning (exit status 2, as for the empty scans of a crafted file) is
// not a failure.
func djpegScans(t testing.TB, path string) int {
	t.Helper()
	cmd := exec.Command(needTool(t, "djpeg"), "-verbose", "-verbose", "-outfile", os.DevNull, path)
	trace, err := cmd.CombinedOutput()
	if ee := (*exec.ExitError)(nil); err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 2) {
		t.Fatalf("djpeg %s: %v: %s", path, err, trace)
	}
	return strings.Count(string(trace), "Start Of Scan")
}
