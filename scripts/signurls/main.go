// Command signurls writes signed image paths for the delivery benchmark
// (scripts/delivery-bench.sh), one a line, with the imageurl package as an
// application would: N paths of KEY, each a different size near WIDTH at
// a different quality near QUALITY, so that no two share a derived image
// and every request for them is a miss.
//
//	go run ./scripts/signurls SIGNING_KEY KEY N WIDTH QUALITY
package main

import (
	"fmt"
	"net/url"
	"os"
	"strconv"

	"github.com/resizer/resizer/imageurl"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "signurls:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 5 {
		return fmt.Errorf("usage: signurls SIGNING_KEY KEY N WIDTH QUALITY")
	}
	var n [3]int
	for i, a := range args[2:] {
		v, err := strconv.Atoi(a)
		if err != nil {
			return err
		}
		n[i] = v
	}
	count, width, quality := n[0], n[1], n[2]
	// 200 widths around WIDTH, then 20 qualities around QUALITY: 4,000
	// distinct images, every one from the same shrink-on-load of the
	// original (for the benchmark's 2560-wide original and 880), so that
	// each costs a render of about the same work.
	if count > 4000 {
		return fmt.Errorf("at most 4000 distinct paths")
	}
	s := imageurl.NewSigner(args[0])
	for i := range count {
		w, q := width-100+i%200, quality-10+i/200
		p, err := s.Path(imageurl.Request{Key: args[1], Options: url.Values{
			"width": {strconv.Itoa(w)}, "quality": {strconv.Itoa(q)}}})
		if err != nil {
			return err
		}
		fmt.Println(p)
	}
	return nil
}
