package pipeline

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"

	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/storage"
	"github.com/resizer/resizer/internal/watermark"
)

// fill is a w x h image of one colour, encoded by enc.
func fill(t *testing.T, w, h int, c color.NRGBA, enc func(*bytes.Buffer, image.Image) error) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	var b bytes.Buffer
	if err := enc(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func pngEnc(b *bytes.Buffer, img image.Image) error { return png.Encode(b, img) }
func jpegEnc(b *bytes.Buffer, img image.Image) error {
	return jpeg.Encode(b, img, &jpeg.Options{Quality: 95})
}

// A VARIANTS entry's watermark is read from the store under the watermark
// prefix and put over that variant only, in uploads and in runs of a
// stored original alike.
func TestVariantWatermark(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			if _, err := st.Put(ctx, "watermarks/logo.png", fill(t, 40, 20, color.NRGBA{255, 0, 0, 255}, pngEnc), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			marks, err := watermark.New(watermark.Config{Prefix: "watermarks/", MaxBytes: 1 << 20, CacheBytes: 4 << 20,
				Apart: []string{"uploads/", "resized/"}}, st)
			if err != nil {
				t.Fatal(err)
			}
			pcfg := testProcConfig()
			pcfg.Watermarks = marks
			proc, err := imageproc.New(pcfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(proc.Close)
			newPipeline := func(variants, rejected string) *Pipeline {
				cfg := testConfig(t)
				cfg.RejectedPrefix = rejected
				if cfg.Variants, err = ParseVariants(variants, 8192); err != nil {
					t.Fatal(err)
				}
				p, err := New(cfg, st, st, proc)
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			p := newPipeline("thumb:200x200:cover?watermark=logo.png&watermark_position=northwest&watermark_margin=0;plain:100x0", "")
			grey := fill(t, 400, 300, color.NRGBA{100, 100, 100, 255}, jpegEnc)
			check := func(res Result) {
				t.Helper()
				thumb, _, err := st.Get(ctx, res.Outputs[0].Key, storage.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				plain, _, err := st.Get(ctx, res.Outputs[1].Key, storage.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if c := pixel(t, thumb, 10, 5); c.R < 200 || c.G > 60 {
					t.Errorf("thumb at the watermark: %v, want red", c)
				}
				if c := pixel(t, thumb, 100, 100); c.R > 120 || c.R < 80 {
					t.Errorf("thumb beside the watermark: %v, want grey", c)
				}
				if c := pixel(t, plain, 5, 5); c.R > 120 || c.R < 80 {
					t.Errorf("the variant without a watermark has one: %v", c)
				}
			}
			res, err := p.Upload(ctx, "uploads/w.jpg", grey, nil)
			if err != nil {
				t.Fatal(err)
			}
			check(res)
			if _, err := st.Put(ctx, "uploads/stored.jpg", grey, storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if res, err = p.Run(ctx, "uploads/stored.jpg", ""); err != nil || res.Status != StatusProcessed {
				t.Fatalf("run: %+v %v", res, err)
			}
			check(res)

			// A watermark that VARIANTS names and the store lacks is the
			// configuration's fault: the upload is refused as a fault of the
			// service, nothing stored; a stored original is neither rejected
			// nor moved aside, and is made once the watermark is there.
			missing := newPipeline("marked:200x200:cover?watermark=gone.png", "rejected/") // a name of its own: up-to-date does not yet look at definitions
			err = missing.CheckWatermarks(ctx)
			if !errors.Is(err, ErrMisconfigured) || errors.Is(err, imageproc.ErrBadOption) ||
				!strings.Contains(err.Error(), "VARIANTS") || !strings.Contains(err.Error(), `"gone.png"`) {
				t.Fatalf("check with a missing watermark: %v, want ErrMisconfigured naming VARIANTS and gone.png", err)
			}
			_, err = missing.Upload(ctx, "uploads/m.jpg", grey, nil)
			if !errors.Is(err, ErrMisconfigured) || errors.Is(err, imageproc.ErrBadOption) || IsPermanent(err) {
				t.Fatalf("upload with a missing watermark: %v, want ErrMisconfigured only", err)
			}
			if _, err := st.Head(ctx, "uploads/m.jpg"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("the refused upload was stored: %v", err)
			}
			for range 2 { // a retry finds it as the first try did
				res, err = missing.Run(ctx, "uploads/stored.jpg", "")
				if !errors.Is(err, ErrMisconfigured) || res.Status == StatusRejected {
					t.Fatalf("run with a missing watermark: %+v %v, want ErrMisconfigured, not rejected", res, err)
				}
			}
			if _, err := st.Head(ctx, "uploads/stored.jpg"); err != nil {
				t.Errorf("the original left the inputs: %v", err)
			}
			if _, err := st.Head(ctx, "rejected/stored.jpg"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("the original was moved under the rejected prefix: %v", err)
			}
			if _, err := st.Put(ctx, "watermarks/gone.png", fill(t, 40, 20, color.NRGBA{255, 0, 0, 255}, pngEnc), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := missing.CheckWatermarks(ctx); err != nil {
				t.Errorf("check once the watermark is stored: %v", err)
			}
			if res, err = missing.Run(ctx, "uploads/stored.jpg", ""); err != nil || res.Status != StatusProcessed {
				t.Fatalf("run once the watermark is stored: %+v %v", res, err)
			}
			if err := p.CheckWatermarks(ctx); err != nil {
				t.Errorf("check of watermarks that are there: %v", err)
			}
		})
	}
}

func pixel(t *testing.T, b []byte, x, y int) color.RGBA {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
}
