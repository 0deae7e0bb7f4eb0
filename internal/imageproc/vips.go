package imageproc

/*
#cgo pkg-config: vips libjpeg
#cgo LDFLAGS: -lm
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>
#ifdef __linux__
#include <malloc.h>
#endif
#include <vips/vips.h>

static void discard_log(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data) {}

static void *set_nocache(GType type, void *a) {
	VipsOperationClass *class = VIPS_OPERATION_CLASS(g_type_class_ref(type));
	class->flags |= VIPS_OPERATION_NOCACHE;
	return NULL; // classes live as long as the process: the ref is kept
}

// rz_init starts libvips for a worker process.
//
// glibc's malloc arenas are capped first: glibc gives each thread that meets
// contention its own arena, up to 8 per core, and freed pixel buffers are
// then stranded across them and RSS creeps up.
//
// The operation cache is turned off, and every operation class is marked
// no-cache besides: the cache keys decoded pixels by operation arguments, a
// resize service almost never sees the same arguments twice, and a cache
// limited to zero entries still inserts each operation and trims it a
// moment later, outside its lock (two threads then shared and freed the
// same images: a heap corruption seen twice in soaks).
//
// libvips' own thread pool is one thread per operation: a worker runs one
// image at a time and the service runs one worker per core.
//
// Untrusted loaders (ImageMagick, matrix, FITS, ...) are blocked;
// rz_block_loaders narrows further.
static int rz_init(int arenas) {
#if defined(__GLIBC__) && defined(M_ARENA_MAX)
	if (arenas > 0) {
		mallopt(M_ARENA_MAX, arenas);
	}
#endif
	if (VIPS_INIT("resizer")) {
		return -1;
	}
	vips_cache_set_max(0);
	vips_cache_set_max_mem(0);
	vips_cache_set_max_files(0);
	vips_type_map_all(VIPS_TYPE_OPERATION, set_nocache, NULL);
	vips_concurrency_set(1);
	vips_block_untrusted_set(TRUE);
	// libvips' warnings would be free-form lines on stderr; a hostile file
	// can produce thousands, and the failures that matter are errors.
	g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING, discard_log, NULL);
	return 0;
}

static void rz_block(const char *class, int blocked) {
	vips_operation_block_set(class, blocked ? TRUE : FALSE);
}

static int rz_operation_nocache(const char *nickname) {
	GType type = vips_type_find("VipsOperation", nickname);
	if (!type) {
		return -1;
	}
	VipsOperationClass *class = VIPS_OPERATION_CLASS(g_type_class_ref(type));
	int nocache = (class->flags & VIPS_OPERATION_NOCACHE) != 0;
	g_type_class_unref(class);
	return nocache;
}

// rz_header opens buf lazily (no pixels are decoded) and reads what the
// plan needs. It frees all it allocates.
static int rz_header(const void *buf, size_t len, int *width, int *height, int *bands, int *alpha,
		int *orientation, int *pages, char *loader, size_t loader_len) {
	VipsImage *img = vips_image_new_from_buffer(buf, len, "", NULL);
	if (img == NULL) {
		return -1;
	}
	*width = vips_image_get_width(img);
	*height = vips_image_get_height(img);
	*bands = vips_image_get_bands(img);
	*alpha = vips_image_hasalpha(img);
	*orientation = vips_image_get_orientation(img);
	*pages = vips_image_get_n_pages(img);
	const char *l = NULL;
	loader[0] = 0;
	if (vips_image_get_typeof(img, VIPS_META_LOADER) && vips_image_get_string(img, VIPS_META_LOADER, &l) == 0) {
		g_strlcpy(loader, l, loader_len);
	}
	g_object_unref(img);
	return 0;
}

// rz_load opens buf for one pass of top-to-bottom reading. opts go to the
// loader: fail_on, and the shrink or scale it decodes at.
static int rz_load(const void *buf, size_t len, const char *opts, VipsImage **out) {
	*out = vips_image_new_from_buffer(buf, len, opts, "access", VIPS_ACCESS_SEQUENTIAL, NULL);
	return *out == NULL ? -1 : 0;
}

// rz_jpeg_err is a libjpeg error manager that notes the warnings of a
// scan whose data ended early, whichever they are among the warnings
// (libvips passes on only the first), and turns errors into a return.
typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	int cut;
} rz_jpeg_err;

static void rz_jpeg_exit(j_common_ptr c) { longjmp(((rz_jpeg_err *)c->err)->jump, 1); }
static void rz_jpeg_quiet(j_common_ptr c) {}
static void rz_jpeg_emit(j_common_ptr c, int level) {
	if (level < 0) {
		c->err->num_warnings++;
		if (c->err->msg_code == JWRN_HIT_MARKER || c->err->msg_code == JWRN_JPEG_EOF) {
			((rz_jpeg_err *)c->err)->cut = 1;
		}
	}
}

// rz_jpeg_cut decodes the JPEG buf with libjpeg itself, at an eighth of
// its size (the entropy-coded data is read whole all the same), and
// reports 1 when a scan's data ended early, 0 when none did, -1 when it
// does not decode.
static int rz_jpeg_cut(const void *buf, size_t len) {
	struct jpeg_decompress_struct d;
	rz_jpeg_err e;
	d.err = jpeg_std_error(&e.pub);
	e.pub.error_exit = rz_jpeg_exit;
	e.pub.emit_message = rz_jpeg_emit;
	e.pub.output_message = rz_jpeg_quiet;
	e.cut = 0;
	if (setjmp(e.jump)) {
		jpeg_destroy_decompress(&d);
		return -1;
	}
	jpeg_create_decompress(&d);
	jpeg_mem_src(&d, (const unsigned char *)buf, (unsigned long)len);
	jpeg_read_header(&d, TRUE);
	d.scale_num = 1;
	d.scale_denom = 8;
	jpeg_start_decompress(&d);
	JSAMPARRAY row = (*d.mem->alloc_sarray)((j_common_ptr)&d, JPOOL_IMAGE, d.output_width * d.output_components, 1);
	while (d.output_scanline < d.output_height) {
		jpeg_read_scanlines(&d, row, 1);
	}
	jpeg_finish_decompress(&d);
	jpeg_destroy_decompress(&d);
	return e.cut;
}

// rz_decodes reports whether buf decodes whole (0) or not (-1, the
// decoder's message in the error buffer): the test that tells a broken
// input from a failure of the service's own when libvips, which decodes
// lazily, fails in a later step.
static int rz_decodes(const void *buf, size_t len) {
	VipsImage *img = vips_image_new_from_buffer(buf, len, "fail_on=truncated", "access", VIPS_ACCESS_SEQUENTIAL, NULL);
	if (img == NULL) {
		return -1;
	}
	double avg;
	int rc = vips_avg(img, &avg, NULL);
	g_object_unref(img);
	return rc;
}

// rz_thumbnail_image scales an image already decoded to exactly width x
// height.
static int rz_thumbnail_image(VipsImage *in, int width, int height, VipsImage **out) {
	return vips_thumbnail_image(in, out, width, "height", height, "size", VIPS_SIZE_FORCE, "no_rotate", TRUE, NULL);
}

static int rz_to_8bit_untagged(VipsImage *in, VipsImage **out);

// rz_to_8bit converts any interpretation and depth to 8-bit sRGB, or to
// 8-bit grey for grey images, keeping an alpha band. Pixels with an
// embedded profile are converted through it (relative intent, as browsers
// do); untagged pixels are taken as sRGB already, and CMYK without a
// profile goes through libvips' built-in CMYK profile.
static int rz_to_8bit(VipsImage *in, VipsImage **out) {
	if (vips_image_get_typeof(in, VIPS_META_ICC_NAME)) {
		VipsImage *t;
		if (vips_icc_transform(in, &t, "srgb", "embedded", TRUE, "intent", VIPS_INTENT_RELATIVE, NULL) == 0) {
			int rc = rz_to_8bit_untagged(t, out);
			g_object_unref(t);
			return rc;
		}
		vips_error_clear(); // a broken profile: go on as if there were none
	}
	return rz_to_8bit_untagged(in, out);
}

static int rz_to_8bit_untagged(VipsImage *in, VipsImage **out) {
	VipsInterpretation i = vips_image_guess_interpretation(in);
	int grey = i == VIPS_INTERPRETATION_B_W || i == VIPS_INTERPRETATION_GREY16;
	VipsInterpretation want = grey ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB;
	if (i == want && in->BandFmt == VIPS_FORMAT_UCHAR) {
		return vips_copy(in, out, NULL);
	}
	VipsImage *t;
	if (vips_colourspace(in, &t, want, NULL)) {
		return -1;
	}
	if (t->BandFmt == VIPS_FORMAT_UCHAR) {
		*out = t;
		return 0;
	}
	int rc = vips_cast_uchar(t, out, NULL);
	g_object_unref(t);
	return rc;
}

// rz_rgb_profile returns the ICC profile embedded in in, and its length,
// when it describes RGB data, in holds RGB pixels (three bands, and maybe
// alpha), and the profile is whole and one lcms opens: the profiles
// keep=icc keeps. Otherwise (none, a CMYK or grey profile, a broken one)
// NULL, and the pixels are converted as for keep=none. A profile cut
// short (its header gives a larger size than the data: a lost APP2
// chunk, a file cut inside it) has only its first bytes to pass for RGB;
// kept, it left the pixels unconverted under a profile no colour manager
// reads (libpng, reading the PNG written with it, says "iCCP: too
// short"). The data belong to in.
static const void *rz_rgb_profile(VipsImage *in, size_t *len) {
	const void *data;
	if (!vips_image_get_typeof(in, VIPS_META_ICC_NAME) || vips_image_get_blob(in, VIPS_META_ICC_NAME, &data, len)) {
		return NULL;
	}
	VipsInterpretation i = vips_image_guess_interpretation(in);
	int colours = vips_image_get_bands(in) - (vips_image_hasalpha(in) ? 1 : 0);
	if (*len < 128 || memcmp((const char *) data + 16, "RGB ", 4) != 0 || colours != 3 ||
			(i != VIPS_INTERPRETATION_sRGB && i != VIPS_INTERPRETATION_RGB && i != VIPS_INTERPRETATION_RGB16)) {
		return NULL;
	}
	// A profile's header alone is 128 bytes, its first four its size: a
	// shorter blob is refused before any of it is read.
	if (*len < 128) {
		return NULL;
	}
	const unsigned char *h = data;
	size_t declared = (size_t) h[0] << 24 | (size_t) h[1] << 16 | (size_t) h[2] << 8 | h[3];
	if (declared < 128 || declared > *len || !vips_icc_is_compatible_profile(in, data, *len)) {
		vips_error_clear();
		return NULL;
	}
	return data;
}

// rz_with_profile returns a copy of in that carries a copy of the ICC
// profile data: for a saver that writes the profile itself (JPEG XL).
static int rz_with_profile(VipsImage *in, const void *data, size_t len, VipsImage **out) {
	if (vips_copy(in, out, NULL)) {
		return -1;
	}
	vips_image_set_blob_copy(*out, VIPS_META_ICC_NAME, data, len);
	return 0;
}

// rz_srgb_to_profile converts in, 8-bit sRGB (and maybe alpha), into the
// space of the RGB profile data, in 8 bits: a watermark put over an
// output whose pixels stay in a kept profile's space (keep=icc), whose
// own sRGB values would otherwise be read in that space (a Display P3
// output made a mid green a saturated one). libvips 8.14 takes an output
// profile from a file only, or from the image: the profile is attached
// to the image in PCS, and the export reads it there. Alpha passes
// through. The data stay the caller's.
static int rz_srgb_to_profile(VipsImage *in, const void *data, size_t len, VipsImage **out) {
	VipsImage *pcs, *tagged;
	if (vips_icc_import(in, &pcs, "input_profile", "srgb", "intent", VIPS_INTENT_RELATIVE, NULL)) {
		return -1;
	}
	int rc = vips_copy(pcs, &tagged, NULL);
	g_object_unref(pcs);
	if (rc) {
		return -1;
	}
	vips_image_set_blob_copy(tagged, VIPS_META_ICC_NAME, data, len);
	rc = vips_icc_export(tagged, out, "depth", 8, "intent", VIPS_INTENT_RELATIVE, NULL);
	g_object_unref(tagged);
	return rc;
}

static int rz_to_srgb(VipsImage *in, VipsImage **out) {
	return vips_colourspace(in, out, VIPS_INTERPRETATION_sRGB, NULL);
}

static int rz_rot(VipsImage *in, int angle, VipsImage **out) {
	VipsAngle a = angle == 90 ? VIPS_ANGLE_D90 : angle == 180 ? VIPS_ANGLE_D180 : VIPS_ANGLE_D270;
	return vips_rot(in, out, a, NULL);
}

static int rz_flip(VipsImage *in, int vertical, VipsImage **out) {
	return vips_flip(in, out, vertical ? VIPS_DIRECTION_VERTICAL : VIPS_DIRECTION_HORIZONTAL, NULL);
}

// rz_blur blurs with a Gaussian of this sigma. The mask keeps weights down
// to 1/1000 of the largest (libvips' default, 1/5, leaves a sigma under 1
// with a mask of one pixel: no blur at all). An image with alpha is
// blurred premultiplied, so that colours mix by how much they show: a
// transparent pixel's own colour (black on a contain's canvas, anything an
// encoder left) would otherwise fringe the edges of what is visible.
static int rz_blur(VipsImage *in, double sigma, VipsImage **out) {
	if (!vips_image_hasalpha(in)) {
		return vips_gaussblur(in, out, sigma, "min_ampl", 0.001, NULL);
	}
	VipsImage *base = vips_image_new();
	VipsImage **t = (VipsImage **) vips_object_local_array(VIPS_OBJECT(base), 4);
	int rc = -1;
	if (!vips_premultiply(in, &t[0], NULL) &&
		!vips_gaussblur(t[0], &t[1], sigma, "min_ampl", 0.001, "precision", VIPS_PRECISION_FLOAT, NULL) &&
		!vips_unpremultiply(t[1], &t[2], NULL) &&
		!vips_round(t[2], &t[3], VIPS_OPERATION_ROUND_RINT, NULL) &&
		!vips_cast(t[3], out, in->BandFmt, NULL)) {
		rc = 0;
	}
	g_object_unref(base);
	return rc;
}

// rz_fill_hidden gives every fully transparent pixel of in (the last band
// its alpha) the colour of the visible pixels around it, weighted by how
// much they show: rz_blur's, which blurs an image with alpha premultiplied.
// Its reach (3.7 sigma, sigma at least 1) is more than sharpen's (about
// 1.8 sigma): every pixel that sharpen mixes into a visible one is filled.
// Pixels that show at all keep their colour; the alpha is unchanged.
static int rz_fill_hidden(VipsImage *in, double sigma, VipsImage **out) {
	VipsImage *base = vips_image_new();
	VipsImage **t = (VipsImage **) vips_object_local_array(VIPS_OBJECT(base), 5);
	int colours = in->Bands - 1;
	int rc = -1;
	if (!rz_blur(in, sigma < 1 ? 1 : sigma, &t[0]) &&
		!vips_extract_band(t[0], &t[1], 0, "n", colours, NULL) &&
		!vips_extract_band(in, &t[2], colours, "n", 1, NULL) &&
		!vips_bandjoin2(t[1], t[2], &t[3], NULL) &&
		!vips_equal_const1(t[2], &t[4], 0, NULL) &&
		!vips_ifthenelse(t[4], t[3], in, out, NULL)) {
		rc = 0;
	}
	g_object_unref(base);
	return rc;
}

// rz_sharpen sharpens the L channel with a Gaussian of this sigma, as
// libvips' sharpen does, and comes back to the image's own interpretation.
// An image with alpha first has the colour of each transparent pixel
// replaced by that of the visible pixels near it (rz_fill_hidden): the
// colours transparent pixels hide are no edge anyone sees, but sharpened
// as one they put a light or dark rim around every shape (a grey square
// on hidden black came out with a rim of 154, on hidden white of 79).
static int rz_sharpen(VipsImage *in, double sigma, VipsImage **out) {
	VipsImage *base = vips_image_new();
	VipsImage **t = (VipsImage **) vips_object_local_array(VIPS_OBJECT(base), 2);
	VipsImage *src = in;
	if (vips_image_hasalpha(in)) {
		if (rz_fill_hidden(in, sigma, &t[0])) {
			g_object_unref(base);
			return -1;
		}
		src = t[0];
	}
	int rc = -1;
	if (!vips_sharpen(src, &t[1], "sigma", sigma, NULL) &&
		!vips_colourspace(t[1], out, vips_image_guess_interpretation(in), NULL)) {
		rc = 0;
	}
	g_object_unref(base);
	return rc;
}

// rz_find_trim finds the box that a uniform border, of the colour of the
// top-left pixel within threshold, leaves; width and height are 0 when
// the whole image is that colour. As libvips' find_trim, it ignores specks
// (noise, JPEG ringing), but it masks first and smooths the mask: the
// pixels that differ from the border by more than threshold in any band,
// then those that have a majority of such pixels in their 3x3
// neighbourhood (the median of a mask). libvips smooths the image itself,
// a median filter of every band that took 4 s of an 18 MP photo's 6.4 s;
// this takes about a tenth. The first non-zero pixel of every row and
// column, from each side, gives the box.
static int rz_find_trim(VipsImage *in, double threshold, int *left, int *top, int *width, int *height) {
	VipsImage *base = vips_image_new();
	VipsImage **t = (VipsImage **) vips_object_local_array(VIPS_OBJECT(base), 14);
	// With alpha, colours are compared premultiplied: every transparent
	// pixel is then the same, whatever colour it hides, and a transparent
	// border is uniform.
	if (vips_image_hasalpha(in)) {
		if (vips_premultiply(in, &t[13], NULL)) {
			g_object_unref(base);
			return -1;
		}
		in = t[13];
	}
	double *px;
	int n;
	if (vips_getpoint(in, &px, &n, 0, 0, NULL)) {
		g_object_unref(base);
		return -1;
	}
	double *a = g_new(double, n), *b = g_new(double, n);
	for (int i = 0; i < n; i++) {
		a[i] = 1;
		b[i] = -px[i];
	}
	g_free(px);
	t[0] = vips_image_new_matrixv(3, 3, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0);
	vips_image_set_double(t[0], "scale", 255); // the mask is 0 or 255: a count
	double top_off, left_off, bottom_off, right_off;
	int rc = -1;
	if (!vips_linear(in, &t[1], a, b, n, NULL) &&
		!vips_abs(t[1], &t[2], NULL) &&
		!vips_more_const1(t[2], &t[3], threshold, NULL) &&
		!vips_bandor(t[3], &t[4], NULL) &&
		!vips_conv(t[4], &t[5], t[0], "precision", VIPS_PRECISION_INTEGER, NULL) &&
		!vips_more_const1(t[5], &t[6], 4, NULL) &&
		(t[7] = vips_image_copy_memory(t[6])) &&
		!vips_profile(t[7], &t[8], &t[9], NULL) &&
		!vips_min(t[8], &top_off, NULL) &&
		!vips_min(t[9], &left_off, NULL) &&
		!vips_rot(t[7], &t[10], VIPS_ANGLE_D180, NULL) &&
		!vips_profile(t[10], &t[11], &t[12], NULL) &&
		!vips_min(t[11], &bottom_off, NULL) &&
		!vips_min(t[12], &right_off, NULL)) {
		int w = t[7]->Xsize, h = t[7]->Ysize;
		*left = left_off;
		*top = top_off;
		*width = VIPS_MAX(0, w - (int) right_off - (int) left_off);
		*height = VIPS_MAX(0, h - (int) bottom_off - (int) top_off);
		if (w != in->Xsize || h != in->Ysize) {
			vips_error("rz_find_trim", "the mask is %dx%d, not %dx%d", w, h, in->Xsize, in->Ysize);
		} else {
			rc = 0;
		}
	}
	g_free(a);
	g_free(b);
	g_object_unref(base);
	return rc;
}

static int rz_crop(VipsImage *in, int left, int top, int width, int height, VipsImage **out) {
	return vips_extract_area(in, out, left, top, width, height, NULL);
}

static int rz_smartcrop(VipsImage *in, int width, int height, VipsImage **out) {
	return vips_smartcrop(in, out, width, height, "interesting", VIPS_INTERESTING_ATTENTION, NULL);
}

static int rz_embed(VipsImage *in, int x, int y, int width, int height, double *bg, int n, VipsImage **out) {
	VipsArrayDouble *a = vips_array_double_new(bg, n);
	int rc = vips_embed(in, out, x, y, width, height, "extend", VIPS_EXTEND_BACKGROUND, "background", a, NULL);
	vips_area_unref(VIPS_AREA(a));
	return rc;
}

static int rz_flatten(VipsImage *in, double *bg, int n, VipsImage **out) {
	VipsArrayDouble *a = vips_array_double_new(bg, n);
	int rc = vips_flatten(in, out, "background", a, NULL);
	vips_area_unref(VIPS_AREA(a));
	return rc;
}

static int rz_addalpha(VipsImage *in, VipsImage **out) {
	return vips_addalpha(in, out, NULL);
}

// rz_frame copies one frame cut from an animation as an image of its own:
// without the animation's page-height, which the cut keeps. Once the frame
// is turned, its height may be a multiple of the old page-height (an 80x40
// frame is 40x80), and vips_thumbnail_image would then scale it as so many
// pages.
static int rz_frame(VipsImage *in, VipsImage **out) {
	if (vips_copy(in, out, NULL)) {
		return -1;
	}
	vips_image_remove(*out, VIPS_META_PAGE_HEIGHT);
	return 0;
}

// rz_join stacks frames of one size top to bottom into an animation: one
// tall image whose page-height is a frame's height. The frames' other
// fields (the delays, the loop count) come from the first.
static int rz_join(VipsImage **frames, int n, VipsImage **out) {
	if (vips_arrayjoin(frames, out, n, "across", 1, NULL)) {
		return -1;
	}
	vips_image_set_int(*out, "page-height", vips_image_get_height(frames[0]));
	return 0;
}

// rz_composite puts overlay, sRGB with alpha, over in at x, y (libvips'
// "over" blend, in sRGB). composite adds an alpha band to an opaque base;
// it goes again, so that an opaque image stays opaque.
static int rz_composite(VipsImage *in, VipsImage *overlay, int x, int y, VipsImage **out) {
	VipsImage *t;
	if (vips_composite2(in, overlay, &t, VIPS_BLEND_MODE_OVER, "x", x, "y", y, NULL)) {
		return -1;
	}
	if (vips_image_hasalpha(in)) {
		*out = t;
		return 0;
	}
	int rc = vips_extract_band(t, out, 0, "n", t->Bands - 1, NULL);
	g_object_unref(t);
	return rc;
}

// rz_fade multiplies the alpha band, the last, by opacity, in 8 bits.
static int rz_fade(VipsImage *in, double opacity, VipsImage **out) {
	int n = in->Bands;
	double *a = g_new(double, n), *b = g_new0(double, n);
	for (int i = 0; i < n; i++) {
		a[i] = i == n - 1 ? opacity : 1;
	}
	int rc = vips_linear(in, out, a, b, n, "uchar", TRUE, NULL);
	g_free(a);
	g_free(b);
	return rc;
}

static int rz_copy_memory(VipsImage *in, VipsImage **out) {
	*out = vips_image_copy_memory(in);
	return *out == NULL ? -1 : 0;
}

// rz_frame_field lists the fields that carry no information about the
// picture's origin and that savers need to write an animation: its layout
// and timing.
static int rz_frame_field(const char *name) {
	return strcmp(name, "page-height") == 0 || strcmp(name, "n-pages") == 0 ||
		strcmp(name, "delay") == 0 || strcmp(name, "loop") == 0 || strcmp(name, "gif-delay") == 0 ||
		strcmp(name, "gif-loop") == 0;
}

// RZ_RES is the resolution of every output, in pixels per millimetre: 72
// dots per inch, the savers' own default. The input's (a PNG's pHYs) would
// otherwise be written as it came, any value the uploader chose.
#define RZ_RES (72 / 25.4)

// rz_strip returns a copy of in without any metadata item: EXIF, XMP,
// IPTC, the ICC profile, the orientation, comments and every
// loader-specific field, and at the resolution RZ_RES; for an animation
// (frames), its layout and timing stay. Savers are also told to strip,
// but libvips 8.14.1 ignores that in its WebP saver and writes whatever
// fields are left.
static int rz_strip(VipsImage *in, int frames, VipsImage **out) {
	if (vips_copy(in, out, "xres", RZ_RES, "yres", RZ_RES, NULL)) {
		return -1;
	}
	gchar **fields = vips_image_get_fields(*out);
	for (int i = 0; fields[i] != NULL; i++) {
		if (!(frames && rz_frame_field(fields[i]))) {
			vips_image_remove(*out, fields[i]);
		}
	}
	g_strfreev(fields);
	return 0;
}

// rz_gif_delays returns a copy of in whose frame delays (ms) a GIF can
// hold as browsers show them. libvips' GIF saver writes a delay rounded
// to hundredths of a second, in the 16 bits a GIF has, without a bound: a
// longer delay than max (a WebP's frame can last 4.6 hours) was written
// modulo 65,536, a frame of 655.36 s as no delay at all; it becomes max.
// Browsers show a frame of 10 ms or less for 100 ms: a frame of 11 to
// 14 ms, which they show for its time, became 10 ms and was slowed
// tenfold; it becomes 20 ms.
static int rz_gif_delays(VipsImage *in, int max, VipsImage **out) {
	if (vips_copy(in, out, NULL)) {
		return -1;
	}
	int *delay, n;
	if (vips_image_get_typeof(*out, "delay") == 0 || vips_image_get_array_int(*out, "delay", &delay, &n)) {
		return 0;
	}
	int *capped = g_new(int, n);
	for (int i = 0; i < n; i++) {
		capped[i] = delay[i] > max ? max : delay[i] > 10 && delay[i] < 15 ? 20 : delay[i];
	}
	vips_image_set_array_int(*out, "delay", capped, n);
	g_free(capped);
	return 0;
}

enum { RZ_JPEG = 1, RZ_PNG, RZ_WEBP, RZ_GIF, RZ_AVIF, RZ_JXL };

// rz_jxl_distance is libvips 8.14's own mapping of a quality to a JPEG XL
// distance (1 at 90; larger is smaller and worse), capped at 15, the most
// the saver's distance argument takes. libvips does not cap it: below
// quality 4 it passes libjxl more than its limit, 25, which libjxl refuses
// and ignores, and it encodes at its default distance, a file larger than
// quality 80's.
static double rz_jxl_distance(int quality) {
	double d = quality >= 30 ? 0.1 + (100 - quality) * 0.09 : 6.24 + pow(2.5, (30 - quality) / 5.0) / 6.25;
	return d > 15 ? 15 : d;
}

// RZ_JXL_EFFORT: libvips' default JPEG XL effort (7 of 3..9) took 0.55 s
// for a 1600-pixel photograph, effort 4 0.09 s for 9% more bytes: a
// max_bytes search encodes up to nine times.
#define RZ_JXL_EFFORT 4

// rz_save encodes in. AVIF's effort is low: libvips' default (4 of 9)
// takes seconds per image, and effort 1 costs a few per cent in size.
// JPEG XL's too (RZ_JXL_EFFORT). interlace makes a progressive
// JPEG or an interlaced PNG. The JPEG XL saver of libvips 8.14 writes the
// ICC profile left on the image whatever strip says: only a profile that
// is kept on purpose is left there (rz_strip).
static int rz_save(VipsImage *in, int format, int quality, int interlace, void **buf, size_t *len) {
	switch (format) {
	case RZ_JPEG:
		return vips_jpegsave_buffer(in, buf, len, "Q", quality, "strip", TRUE, "optimize_coding", TRUE,
			"interlace", interlace ? TRUE : FALSE, NULL);
	case RZ_PNG:
		return vips_pngsave_buffer(in, buf, len, "strip", TRUE, "compression", 6,
			"filter", VIPS_FOREIGN_PNG_FILTER_ALL, "interlace", interlace ? TRUE : FALSE, NULL);
	case RZ_WEBP:
		return vips_webpsave_buffer(in, buf, len, "Q", quality, "strip", TRUE, NULL);
	case RZ_GIF:
		return vips_gifsave_buffer(in, buf, len, "strip", TRUE, NULL);
	case RZ_AVIF:
		return vips_heifsave_buffer(in, buf, len, "Q", quality, "strip", TRUE,
			"compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "effort", 1, NULL);
	case RZ_JXL:
		return vips_jxlsave_buffer(in, buf, len, "distance", rz_jxl_distance(quality), "strip", TRUE,
			"effort", RZ_JXL_EFFORT, NULL);
	}
	vips_error("resizer", "no saver for format %d", format);
	return -1;
}

// rz_try_save encodes a small black image in format: the check, when a
// worker starts, that a saver unblocked on purpose is there and works.
static int rz_try_save(int format) {
	VipsImage *black, *im;
	if (vips_black(&black, 8, 8, "bands", 3, NULL)) {
		return -1;
	}
	int rc = vips_copy(black, &im, "interpretation", VIPS_INTERPRETATION_sRGB, NULL);
	g_object_unref(black);
	if (rc) {
		return -1;
	}
	void *buf = NULL;
	size_t len = 0;
	rc = rz_save(im, format, 75, 0, &buf, &len);
	g_object_unref(im);
	g_free(buf);
	return rc;
}

static int rz_can_save_jpeg(void) {
	return vips_foreign_find_save_buffer(".jpg") != NULL;
}

// rz_malloc_in_use is the heap memory malloc has handed out and not had
// back, for the leak test; -1 where glibc's mallinfo2 is missing.
static long long rz_malloc_in_use(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
	struct mallinfo2 m = mallinfo2();
	return (long long)(m.uordblks + m.hblkhd);
#else
	return -1;
#endif
}
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// This file is the cgo layer: the only code that calls libvips, and the one
// way images enter it (rz_thumbnail, with fail_on) and leave it (stripped,
// then rz_save). It runs in worker processes only (worker.go), one image
// at a time on one locked OS thread: libvips keeps buffers per thread and a
// region must stay on the thread that made it.

// vipsInit starts libvips in a worker and blocks every loader but those of
// the allowed formats (and TIFF, which the service's own tests use; the
// sniffer refuses TIFF input unless it is allowed). libvips marks JPEG XL's
// loader and saver untrusted, and blocks them with the others: they are
// unblocked, exactly those classes, when JPEG XL is allowed, and the saver
// is tried once. It must run once, first.
func vipsInit(allowed []Format, arenas int) error {
	if C.rz_init(C.int(arenas)) != 0 {
		return fmt.Errorf("start libvips: %w", vipsError())
	}
	setBlock("VipsForeignLoad", true)
	for _, f := range allowed {
		if l := formatTable[f].loader; l != "" {
			setBlock(l, false)
		}
		if sv := formatTable[f].saver; sv != "" {
			setBlock(sv, false)
			if C.rz_try_save(vipsSaveFormats[f]) != 0 {
				return fmt.Errorf("libvips cannot write %s: %w", f, vipsError())
			}
		}
	}
	return nil
}

func setBlock(class string, blocked bool) {
	cs := C.CString(class)
	defer C.free(unsafe.Pointer(cs))
	b := C.int(0)
	if blocked {
		b = 1
	}
	C.rz_block(cs, b)
}

// vipsError takes libvips' error buffer as an error, and clears it.
func vipsError() error {
	msg := strings.TrimSpace(C.GoString(C.vips_error_buffer()))
	C.vips_error_clear()
	if msg == "" {
		msg = "libvips failed without a message"
	}
	return errors.New(msg)
}

// vipsVersion is the version of the libvips library linked in. It needs no
// initialisation.
func vipsVersion() string { return C.GoString(C.vips_version_string()) }

// cbuf is memory allocated by C that holds an input image: libvips keeps a
// pointer to its input for lazy decoding, which Go memory must not be
// handed out for.
type cbuf struct {
	p unsafe.Pointer
	n int
}

func newCbuf(n int) cbuf {
	if n <= 0 {
		n = 1
	}
	return cbuf{p: C.malloc(C.size_t(n)), n: n}
}

func (b cbuf) bytes() []byte { return unsafe.Slice((*byte)(b.p), b.n) }
func (b cbuf) free()         { C.free(b.p) }

// vheader is libvips' view of an image's header.
type vheader struct {
	width, height, bands int
	alpha                bool
	orientation, pages   int
	loader               string
}

func vipsHeader(in cbuf) (vheader, error) {
	var w, h, bands, a, o, pages C.int
	var loader [64]C.char
	if C.rz_header(in.p, C.size_t(in.n), &w, &h, &bands, &a, &o, &pages, &loader[0], C.size_t(len(loader))) != 0 {
		return vheader{}, vipsError()
	}
	return vheader{width: int(w), height: int(h), bands: int(bands), alpha: a != 0,
		orientation: int(o), pages: int(pages), loader: C.GoString(&loader[0])}, nil
}

// vimage is a libvips image held by Go; free releases it.
type vimage struct{ p *C.VipsImage }

func (im vimage) free() {
	if im.p != nil {
		C.g_object_unref(C.gpointer(im.p))
	}
}

func (im vimage) width() int  { return int(C.vips_image_get_width(im.p)) }
func (im vimage) height() int { return int(C.vips_image_get_height(im.p)) }
func (im vimage) bands() int  { return int(C.vips_image_get_bands(im.p)) }
func (im vimage) alpha() bool { return C.vips_image_hasalpha(im.p) != 0 }

// then runs op on im and frees im, so that a step reads as im = im.then(...).
// libvips keeps what it needs of im through the new image's references.
func (im vimage) then(op func(in *C.VipsImage, out **C.VipsImage) C.int) (vimage, error) {
	var out *C.VipsImage
	rc := op(im.p, &out)
	im.free()
	if rc != 0 {
		return vimage{}, vipsError()
	}
	return vimage{out}, nil
}

// jpegCutShort are libjpeg's warnings that the coded pixels ended before
// the image did: an end marker, or the end of the input, met in the middle
// of a scan. libjpeg fills what is missing with grey and goes on, and
// fail_on=truncated does not stop it (only fail_on=warning does, which
// would also refuse harmless quirks such as stray bytes between segments):
// a file cut in the middle and closed with a fake FF D9 would be served
// half grey. libvips passes the warnings to its error buffer, where
// decodeWarnings finds them.
var jpegCutShort = []string{"premature end of data segment", "Premature end of JPEG file"}

// inputWarnings are the input's warnings set aside while a watermark is
// decoded (markWarnings), one job's worth. A worker runs one job at a
// time, as the error buffer itself assumes.
var inputWarnings strings.Builder

// clearDecodeWarnings empties libvips' error buffer before a job, so that
// decodeWarnings sees only the job's own.
func clearDecodeWarnings() {
	C.vips_error_clear()
	inputWarnings.Reset()
}

// decodeWarnings fails with ErrUndecodable when the job's decoding of its
// input, in, met pixel data cut short (jpegCutShort), and clears the
// buffer. libvips passes on only libjpeg's first warning: a harmless one
// first (a JFIF revision it does not know) would hide the cut, so a JPEG
// that warned at all is decoded once more by libjpeg itself, which tells
// every warning (rz_jpeg_cut); a JPEG that warns is rare.
func decodeWarnings(in cbuf, f Format) error {
	msg := inputWarnings.String() + C.GoString(C.vips_error_buffer())
	clearDecodeWarnings()
	return endedEarly(msg, in, f, ErrUndecodable)
}

// endedEarly is kind when the warnings msg of decoding in, of format f,
// tell of pixel data cut short: one of them is a jpegCutShort, or a JPEG
// warned at all and libjpeg itself meets a scan that ends early.
func endedEarly(msg string, in cbuf, f Format, kind error) error {
	if err := cutShort(msg, kind); err != nil || f != FormatJPEG || !strings.Contains(msg, "VipsJpeg") {
		return err
	}
	if jpegEndsEarly(in) {
		// The warning that led here (often a harmless one: an unknown
		// JFIF revision) says nothing to the client, and repeats.
		return fmt.Errorf("%w: truncated: a scan's data ends early", kind)
	}
	return nil
}

// jpegEndsEarly reports whether libjpeg, decoding the JPEG in itself, meets
// a scan whose data ends early (rz_jpeg_cut).
func jpegEndsEarly(in cbuf) bool { return C.rz_jpeg_cut(in.p, C.size_t(in.n)) == 1 }

// setAsideWarnings keeps what the buffer holds so far (the input's) before
// a watermark is decoded, so that markWarnings finds the watermark's
// alone, and a broken watermark is never taken for a broken input.
func setAsideWarnings() {
	inputWarnings.WriteString(C.GoString(C.vips_error_buffer()))
	C.vips_error_clear()
}

// markWarnings fails as decodeWarnings does (ErrUndecodable) when the
// decoding of the watermark in, of format f, since setAsideWarnings met
// pixel data cut short, and clears the buffer: a cut scan behind a
// harmless first warning is as cut in a watermark as in an input. The
// watermark step makes every failure of a watermark the option's
// (ErrBadWatermark), as it does its other decoding errors.
func markWarnings(in cbuf, f Format) error {
	msg := C.GoString(C.vips_error_buffer())
	C.vips_error_clear()
	return endedEarly(msg, in, f, ErrUndecodable)
}

// cutShort is kind when msg holds a warning of jpegCutShort.
func cutShort(msg string, kind error) error {
	for _, w := range jpegCutShort {
		if strings.Contains(msg, w) {
			return fmt.Errorf("%w: truncated: %s", kind, w)
		}
	}
	return nil
}

// vipsDecodes reports whether in decodes whole; the error is the decoder's.
func vipsDecodes(in cbuf) error {
	if C.rz_decodes(in.p, C.size_t(in.n)) != 0 {
		return vipsError()
	}
	return nil
}

// vipsLoad opens in for decoding, with the loader options opts (see
// loadOptions).
func vipsLoad(in cbuf, opts string) (vimage, error) {
	co := C.CString(opts)
	defer C.free(unsafe.Pointer(co))
	var out *C.VipsImage
	if C.rz_load(in.p, C.size_t(in.n), co, &out) != 0 {
		return vimage{}, vipsError()
	}
	return vimage{out}, nil
}

func (im vimage) thumbnail(w, h int) (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int {
		return C.rz_thumbnail_image(in, C.int(w), C.int(h), out)
	})
}

func (im vimage) to8bit() (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int { return C.rz_to_8bit(in, out) })
}

// to8bitAsIs converts to 8 bits without colour management: for pixels
// kept in their own profile's space (keep=icc).
func (im vimage) to8bitAsIs() (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int { return C.rz_to_8bit_untagged(in, out) })
}

// rgbProfile returns a copy of the RGB profile embedded in im (see
// rz_rgb_profile), or nil.
func (im vimage) rgbProfile() []byte {
	var n C.size_t
	p := C.rz_rgb_profile(im.p, &n)
	if p == nil {
		return nil
	}
	return C.GoBytes(p, C.int(n))
}

// withProfile returns a new image: im carrying the ICC profile icc. im is
// not freed.
func (im vimage) withProfile(icc []byte) (vimage, error) {
	var out *C.VipsImage
	if C.rz_with_profile(im.p, unsafe.Pointer(&icc[0]), C.size_t(len(icc)), &out) != 0 {
		return vimage{}, vipsError()
	}
	return vimage{out}, nil
}

// toProfile converts im, 8-bit sRGB, into the space of the RGB profile
// icc (see rz_srgb_to_profile), which it consumes.
func (im vimage) toProfile(icc []byte) (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int {
		return C.rz_srgb_to_profile(in, unsafe.Pointer(&icc[0]), C.size_t(len(icc)), out)
	})
}

// memoryCopy returns a copy of im in memory, for a step that reads the
// pixels more than once (a max_bytes search); im is not freed.
func (im vimage) memoryCopy() (vimage, error) {
	var out *C.VipsImage
	if C.rz_copy_memory(im.p, &out) != 0 {
		return vimage{}, vipsError()
	}
	return vimage{out}, nil
}

// ref returns a new reference to im, for a step that frees what it gets.
func (im vimage) ref() vimage {
	C.g_object_ref(C.gpointer(im.p))
	return im
}

func (im vimage) toSRGB() (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int { return C.rz_to_srgb(in, out) })
}

func (im vimage) rotate(angle int) (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int { return C.rz_rot(in, C.int(angle), out) })
}

func (im vimage) mirror() (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int { return C.rz_flip(in, 0, out) })
}

func (im vimage) flipVertical() (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int { return C.rz_flip(in, 1, out) })
}

func (im vimage) blur(sigma float64) (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int { return C.rz_blur(in, C.double(sigma), out) })
}

func (im vimage) sharpen(sigma float64) (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int { return C.rz_sharpen(in, C.double(sigma), out) })
}

// findTrim returns the box a border of the top-left pixel's colour, within
// threshold, leaves; its width is 0 when the whole image is that colour. It
// reads the image; im is not freed.
func (im vimage) findTrim(threshold float64) (rect, error) {
	var l, t, w, h C.int
	if C.rz_find_trim(im.p, C.double(threshold), &l, &t, &w, &h) != 0 {
		return rect{}, vipsError()
	}
	return rect{int(l), int(t), int(w), int(h)}, nil
}

func (im vimage) crop(left, top, w, h int) (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int {
		return C.rz_crop(in, C.int(left), C.int(top), C.int(w), C.int(h), out)
	})
}

func (im vimage) smartcrop(w, h int) (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int {
		return C.rz_smartcrop(in, C.int(w), C.int(h), out)
	})
}

// cutAt is where a cut made of a larger image (crop, smartcrop) lies in
// it: libvips records the cut's origin in the larger image as the
// negated offset of the cut.
func (im vimage) cutAt() (x, y int) {
	return -int(C.vips_image_get_xoffset(im.p)), -int(C.vips_image_get_yoffset(im.p))
}

func (im vimage) embed(x, y, w, h int, bg []float64) (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int {
		return C.rz_embed(in, C.int(x), C.int(y), C.int(w), C.int(h), (*C.double)(&bg[0]), C.int(len(bg)), out)
	})
}

func (im vimage) flatten(bg []float64) (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int {
		return C.rz_flatten(in, (*C.double)(&bg[0]), C.int(len(bg)), out)
	})
}

func (im vimage) addAlpha() (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int { return C.rz_addalpha(in, out) })
}

// frame makes one frame cut from an animation an image of its own (see
// rz_frame).
func (im vimage) frame() (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int { return C.rz_frame(in, out) })
}

// join stacks frames into an animation (see rz_join); it frees the frames.
func join(frames []vimage) (vimage, error) {
	ps := make([]*C.VipsImage, len(frames))
	for i, f := range frames {
		ps[i] = f.p
	}
	var out *C.VipsImage
	rc := C.rz_join((**C.VipsImage)(unsafe.Pointer(&ps[0])), C.int(len(ps)), &out)
	for _, f := range frames {
		f.free()
	}
	if rc != 0 {
		return vimage{}, vipsError()
	}
	return vimage{out}, nil
}

// pageHeight is the height of one frame of an animation loaded whole (its
// page-height), or the image's height.
func (im vimage) pageHeight() int {
	return int(C.vips_image_get_page_height(im.p))
}

// composite puts over (which it does not free) on im at x, y; see
// rz_composite.
func (im vimage) composite(over vimage, x, y int) (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int {
		return C.rz_composite(in, over.p, C.int(x), C.int(y), out)
	})
}

func (im vimage) fade(opacity float64) (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int { return C.rz_fade(in, C.double(opacity), out) })
}

func (im vimage) inMemory() (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int { return C.rz_copy_memory(in, out) })
}

// strip removes every metadata field but, for an animation, its layout
// and timing.
func (im vimage) strip(animation bool) (vimage, error) {
	frames := C.int(0)
	if animation {
		frames = 1
	}
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int { return C.rz_strip(in, frames, out) })
}

// gifDelays makes every frame's delay one a GIF shows as browsers show
// it, at most maxMS milliseconds (see rz_gif_delays).
func (im vimage) gifDelays(maxMS int) (vimage, error) {
	return im.then(func(in *C.VipsImage, out **C.VipsImage) C.int { return C.rz_gif_delays(in, C.int(maxMS), out) })
}

// vipsSaveFormats are the output formats rz_save knows.
var vipsSaveFormats = map[Format]C.int{
	FormatJPEG: C.RZ_JPEG, FormatPNG: C.RZ_PNG, FormatWebP: C.RZ_WEBP, FormatGIF: C.RZ_GIF, FormatAVIF: C.RZ_AVIF,
	FormatJXL: C.RZ_JXL,
}

// save encodes im, which it does not free. The bytes are C memory: the
// caller frees them with freeC once written out.
func (im vimage) save(f Format, quality int, interlace bool) ([]byte, error) {
	code, ok := vipsSaveFormats[f]
	if !ok {
		return nil, fmt.Errorf("cannot write %s", f)
	}
	var buf unsafe.Pointer
	var n C.size_t
	il := C.int(0)
	if interlace {
		il = 1
	}
	if C.rz_save(im.p, code, C.int(quality), il, &buf, &n) != 0 {
		return nil, vipsError()
	}
	return unsafe.Slice((*byte)(buf), int(n)), nil
}

// pixels decodes im (which it does not free) into memory as it is laid
// out, bands interleaved, rows from the top: raw samples for the server
// to read, no encoder between. The bytes are C memory, freed with freeC.
func (im vimage) pixels() ([]byte, error) {
	var n C.size_t
	p := C.vips_image_write_to_memory(im.p, &n)
	if p == nil {
		return nil, vipsError()
	}
	return unsafe.Slice((*byte)(p), int(n)), nil
}

// freeC releases memory that libvips allocated (save's output, pixels).
func freeC(b []byte) {
	if len(b) > 0 {
		C.g_free(C.gpointer(unsafe.Pointer(&b[0])))
	}
}

// vipsCanSaveJPEG reports whether libvips can write JPEG: the readiness
// check a worker answers when it starts.
func vipsCanSaveJPEG() bool { return C.rz_can_save_jpeg() != 0 }

// operationCached reports whether libvips would cache the operation with
// this nickname (for tests).
func operationCached(nickname string) bool {
	cs := C.CString(nickname)
	defer C.free(unsafe.Pointer(cs))
	return C.rz_operation_nocache(cs) == 0
}

// mallocInUse is glibc's count of heap bytes in use, or -1.
func mallocInUse() int64 { return int64(C.rz_malloc_in_use()) }
