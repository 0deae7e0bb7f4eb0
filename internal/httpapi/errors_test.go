package httpapi

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/resizer/resizer/internal/contract"
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

// Every problem type the table gives a client is one openapi.yaml names
// (its Problem's type pattern) and docs/api.md lists beside its status,
// so that a client can tell each kind of failure from the document: a
// row added without them would answer with a type nobody documented.
func TestProblemTypesDocumented(t *testing.T) {
	schema := contract.Doc(t).Components.Schemas["Problem"].Value.Properties["type"].Value
	guide, err := os.ReadFile(filepath.Join("..", "..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[int]string{} // status -> its row of the errors table
	for line := range strings.Lines(string(guide)) {
		var status int
		if _, err := fmt.Sscanf(line, "| %d |", &status); err == nil {
			rows[status] = line
		} else if _, err := fmt.Sscanf(line, "| %d, ", &status); err == nil {
			rows[status], rows[status+1] = line, line // "| 404, 405 |"
		}
	}
	for _, row := range append(slices.Clone(statusTable), internalRow) {
		if row.status == 499 {
			continue // the client has gone: nobody reads it
		}
		urn := "urn:resizer:problem:" + row.slug
		if err := schema.VisitJSON(urn); err != nil {
			t.Errorf("%s (%d) is not a type openapi.yaml names: %v", urn, row.status, err)
		}
		if !strings.Contains(rows[row.status], "`"+row.slug+"`") {
			t.Errorf("docs/api.md does not list %s beside %d", row.slug, row.status)
		}
	}
	if schema.VisitJSON("urn:resizer:problem:made-up") == nil {
		t.Error("openapi.yaml names any problem type")
	}
}
