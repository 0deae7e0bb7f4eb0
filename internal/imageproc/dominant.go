package imageproc

// The dominant colour is the colour a person would name for the picture:
// the most common one, not the mean (the mean of a red and green flag is a
// brown that is nowhere in it). Counted on the small decode of Info:
//
//   - each pixel at least half opaque falls in one of 512 boxes, 3 bits of
//     each of red, green and blue (boxes 32 levels wide, coarse enough that
//     the shades of one surface of a photograph fall together);
//   - the box with the most pixels wins; a tie goes to the box that
//     reached the count first, reading from the top left;
//   - the colour is the mean of that box's pixels, a colour of the image
//     rather than the corner of a box.

// dominantBits is the bits of each channel that choose a box.
const dominantBits = 3

// dominantColour returns the dominant colour of pixels in 8-bit RGBA, not
// premultiplied; ok is false when no pixel is at least half opaque.
func dominantColour(rgba []byte) (c Color, ok bool) {
	const shift = 8 - dominantBits
	var count [1 << (3 * dominantBits)]int
	var sum [1 << (3 * dominantBits)][3]int
	best := -1
	for i := 0; i+3 < len(rgba); i += 4 {
		if rgba[i+3] < 128 {
			continue
		}
		r, g, b := rgba[i], rgba[i+1], rgba[i+2]
		box := int(r>>shift)<<(2*dominantBits) | int(g>>shift)<<dominantBits | int(b>>shift)
		count[box]++
		sum[box][0] += int(r)
		sum[box][1] += int(g)
		sum[box][2] += int(b)
		if best < 0 || count[box] > count[best] {
			best = box
		}
	}
	if best < 0 {
		return Color{}, false
	}
	n := count[best]
	mean := func(s int) uint8 { return uint8((s + n/2) / n) }
	return Color{mean(sum[best][0]), mean(sum[best][1]), mean(sum[best][2])}, true
}
