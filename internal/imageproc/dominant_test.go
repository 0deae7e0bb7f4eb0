package imageproc

import "testing"

func TestDominantColour(t *testing.T) {
	red, blue := [4]int{220, 20, 30, 255}, [4]int{20, 40, 230, 255}
	tests := []struct {
		name string
		w, h int
		f    func(x, y int, n func() int) [4]int
		want string // "" for none
	}{
		{"mostly red, a little blue", 32, 24, func(x, y int, n func() int) [4]int {
			if x < 6 {
				return blue
			}
			return red
		}, "dc141e"},
		// The mean of these would be a purple that is nowhere in it.
		{"red and blue, red the larger", 32, 32, func(x, y int, n func() int) [4]int {
			if x < 15 {
				return blue
			}
			return red
		}, "dc141e"},
		// Shades of one surface fall in one box, and the answer is their mean.
		{"noisy green", 20, 20, func(x, y int, n func() int) [4]int { return [4]int{40 + n()/4, 165 + n()/4, 70 + n()/4, 255} },
			"2ca94a"}, // the mean of all 400
		{"tie: the first to reach the count", 2, 1, func(x, y int, n func() int) [4]int { return [][4]int{blue, red}[x] }, "1428e6"},
		{"transparent pixels do not count", 16, 16, func(x, y int, n func() int) [4]int {
			if y < 12 {
				return [4]int{255, 255, 255, 127} // three quarters of the image, under half opaque
			}
			return blue
		}, "1428e6"},
		{"none at least half opaque", 8, 8, func(x, y int, n func() int) [4]int { return [4]int{255, 0, 0, 100} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := dominantColour(testPixels(tt.w, tt.h, tt.f))
			got := ""
			if ok {
				got = c.String()
			}
			if got != tt.want {
				t.Errorf("dominant %q, want %q", got, tt.want)
			}
		})
	}
}
