// Command animgif writes an animated GIF for the benchmarks: N frames of
// W x H, each a different gradient, so that no two frames are equal.
//
//	go run ./scripts/animgif out.gif [frames] [width] [height]
package main

import (
	"fmt"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"os"
	"strconv"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "animgif:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("usage: animgif out.gif [frames] [width] [height]")
	}
	n, w, h := 40, 400, 300
	for i, p := range []*int{&n, &w, &h} {
		if len(args) > i+1 {
			v, err := strconv.Atoi(args[i+1])
			if err != nil || v < 1 {
				return fmt.Errorf("bad number %q", args[i+1])
			}
			*p = v
		}
	}
	anim := &gif.GIF{}
	for f := 0; f < n; f++ {
		img := image.NewPaletted(image.Rect(0, 0, w, h), palette.Plan9)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				img.Set(x, y, color.RGBA{uint8((x + f*7) % 256), uint8((y + f*13) % 256), uint8((x + y + f*29) % 256), 255})
			}
		}
		anim.Image = append(anim.Image, img)
		anim.Delay = append(anim.Delay, 8)
	}
	out, err := os.Create(args[0])
	if err != nil {
		return err
	}
	if err := gif.EncodeAll(out, anim); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
