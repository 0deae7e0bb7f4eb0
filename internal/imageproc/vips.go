package imageproc

/*
#cgo pkg-config: vips
#include <stdlib.h>
#ifdef __linux__
#include <malloc.h>
#endif
#include <vips/vips.h>

// limit_arenas caps glibc's malloc arenas. glibc gives each thread that
// meets contention its own arena, up to 8 per core, and libvips' worker
// threads allocate large pixel buffers from all of them; freed memory is
// then stranded across arenas and RSS creeps up. Two arenas hold it flat
// for a small cost in lock contention.
static void limit_arenas(int n) {
#if defined(__GLIBC__) && defined(M_ARENA_MAX)
	mallopt(M_ARENA_MAX, n);
#endif
}

static void discard_log(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data) {}

// quiet_warnings drops libvips' warnings, which GLib would print as
// free-form lines on stderr between the JSON log lines. A hostile file can
// produce thousands; the failures that matter come back as errors.
static void *set_nocache(GType type, void *a) {
	VipsOperationClass *class = VIPS_OPERATION_CLASS(g_type_class_ref(type));
	class->flags |= VIPS_OPERATION_NOCACHE;
	return NULL; // classes live as long as the process: the ref is kept
}

// disable_operation_cache marks every operation class uncacheable. A cache
// limited to zero entries still inserts each operation and trims it a
// moment later, outside its lock; in that moment another thread asking for
// an operation with the same arguments (the same bytes at the same address
// reused from a buffer pool, the same options) gets the first thread's
// images, and two threads then compute and free the same images: a heap
// corruption seen twice in soaks. Operations marked no-cache are never
// inserted, so nothing is ever shared.
static void disable_operation_cache(void) {
	vips_type_map_all(VIPS_TYPE_OPERATION, set_nocache, NULL);
}

static int operation_nocache(const char *nickname) {
	GType type = vips_type_find("VipsOperation", nickname);
	if (!type) {
		return -1;
	}
	VipsOperationClass *class = VIPS_OPERATION_CLASS(g_type_class_ref(type));
	int nocache = (class->flags & VIPS_OPERATION_NOCACHE) != 0;
	g_type_class_unref(class);
	return nocache;
}

// vips_image_new_from_buffer is variadic, which cgo cannot call.
static VipsImage *vips_image_new_from_buffer_bridge(const void *buf, size_t len, const char *options) {
	return vips_image_new_from_buffer(buf, len, options, NULL);
}

// header_info opens buf lazily (no pixels are decoded) and reads what
// planning needs. It frees all it allocates; bimg's Metadata leaks a C
// string for each of the fifty EXIF tags it looks up.
static int header_info(const void *buf, size_t len, int *width, int *height, int *alpha, int *orientation) {
	VipsImage *img = vips_image_new_from_buffer(buf, len, "", NULL);
	if (img == NULL) {
		return -1;
	}
	*width = vips_image_get_width(img);
	*height = vips_image_get_height(img);
	*alpha = vips_image_hasalpha(img);
	*orientation = 1;
	if (vips_image_get_typeof(img, VIPS_META_ORIENTATION)) {
		int o;
		if (vips_image_get_int(img, VIPS_META_ORIENTATION, &o) == 0 && o >= 1 && o <= 8) {
			*orientation = o;
		}
	}
	g_object_unref(img);
	return 0;
}

// malloc_in_use is the heap memory malloc has handed out and not had back,
// for the leak test; -1 where glibc's mallinfo2 is missing.
static long long malloc_in_use(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
	struct mallinfo2 m = mallinfo2();
	return (long long)(m.uordblks + m.hblkhd);
#else
	return -1;
#endif
}

static void quiet_warnings(void) {
	g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING, discard_log, NULL);
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/h2non/bimg"
)

var vipsOnce sync.Once

// startVips finishes libvips' one-time set-up. bimg calls vips_init when it
// is imported; this turns its operation cache off: the cache keys decoded
// pixels by operation arguments, and a resize service almost never sees the
// same arguments twice, so bimg's default (100 MB, 500 operations) would be
// memory held for no hits. Setting its size to zero is not enough (see
// disable_operation_cache). libvips' own thread pool stays at bimg's one
// thread per operation: the Gate runs one operation per core instead, which
// keeps every core busy without threads fighting over them.
func startVips() {
	vipsOnce.Do(func() {
		if os.Getenv("MALLOC_ARENA_MAX") == "" { // an explicit setting wins
			C.limit_arenas(2)
		}
		bimg.VipsCacheSetMax(0)
		bimg.VipsCacheSetMaxMem(0)
		C.disable_operation_cache()
		// Untrusted loaders (ImageMagick, matrix, FITS, ...) are never
		// wanted from the network; blockLoaders narrows further.
		C.vips_block_untrusted_set(C.TRUE)
		C.quiet_warnings()
	})
}

// vipsLoaders maps input formats to their libvips loader class; blocking a
// class blocks its file, buffer and source variants.
var vipsLoaders = map[Format]string{
	FormatJPEG: "VipsForeignLoadJpeg",
	FormatPNG:  "VipsForeignLoadPng",
	FormatWebP: "VipsForeignLoadWebp",
	FormatGIF:  "VipsForeignLoadNsgif",
	FormatAVIF: "VipsForeignLoadHeif",
	FormatHEIF: "VipsForeignLoadHeif",
	FormatTIFF: "VipsForeignLoadTiff",
	FormatSVG:  "VipsForeignLoadSvg",
	FormatPDF:  "VipsForeignLoadPdf",
}

// blockLoaders blocks every libvips loader, then unblocks those of the
// allowed formats. The untrusted flag alone is not enough: libvips does not
// mark some loaders (its native format, matrix, CSV, PPM) untrusted. The
// block list is process-wide libvips state; the last Processor built sets it.
// TIFF stays open for the service's own intermediates; the sniffer still
// refuses TIFF input unless it is allowed.
func blockLoaders(allowed []Format) {
	setBlock("VipsForeignLoad", true)
	setBlock(vipsLoaders[FormatTIFF], false) // the service's own intermediates
	for _, f := range allowed {
		setBlock(vipsLoaders[f], false)
	}
}

func setBlock(class string, blocked bool) {
	cs := C.CString(class)
	defer C.free(unsafe.Pointer(cs))
	b := C.gboolean(C.FALSE)
	if blocked {
		b = C.TRUE
	}
	C.vips_operation_block_set(cs, b)
}

// vipsLoad opens b the way libvips does when nobody names a loader (the
// path bimg takes for bytes it does not recognise) and returns the loader
// used. It fails for unknown bytes and for blocked loaders.
func vipsLoad(b []byte) (string, error) {
	if len(b) == 0 {
		return "", errors.New("empty")
	}
	empty := C.CString("")
	defer C.free(unsafe.Pointer(empty))
	img := C.vips_image_new_from_buffer_bridge(unsafe.Pointer(&b[0]), C.size_t(len(b)), empty)
	defer runtime.KeepAlive(b)
	if img == nil {
		msg := C.GoString(C.vips_error_buffer())
		C.vips_error_clear()
		return "", errors.New(strings.TrimSpace(msg))
	}
	defer C.g_object_unref(C.gpointer(img))
	field := C.CString("vips-loader")
	defer C.free(unsafe.Pointer(field))
	var loader *C.char
	if C.vips_image_get_string(img, field, &loader) != 0 {
		C.vips_error_clear()
		return "", errors.New("no vips-loader field")
	}
	return C.GoString(loader), nil
}

// vipsInfo is what libvips reads of an image's header.
type vipsInfo struct {
	width, height int
	alpha         bool
	orientation   int
}

// vipsHeader reads an image's header through libvips, without decoding
// pixels; only unblocked loaders open it. Call it from a locked thread.
func vipsHeader(b []byte) (vipsInfo, error) {
	if len(b) == 0 {
		return vipsInfo{}, errors.New("empty")
	}
	var w, h, a, o C.int
	rc := C.header_info(unsafe.Pointer(&b[0]), C.size_t(len(b)), &w, &h, &a, &o)
	runtime.KeepAlive(b)
	if rc != 0 {
		msg := C.GoString(C.vips_error_buffer())
		C.vips_error_clear()
		return vipsInfo{}, errors.New(strings.TrimSpace(msg))
	}
	return vipsInfo{width: int(w), height: int(h), alpha: a != 0, orientation: int(o)}, nil
}

// operationCached reports whether libvips would cache the operation with
// this nickname (for tests).
func operationCached(nickname string) bool {
	cs := C.CString(nickname)
	defer C.free(unsafe.Pointer(cs))
	return C.operation_nocache(cs) == 0
}

// mallocInUse is glibc's count of heap bytes in use, or -1.
func mallocInUse() int64 { return int64(C.malloc_in_use()) }

// VipsVersion returns the version of the libvips library in use.
func VipsVersion() string { return bimg.VipsVersion }

// Shutdown stops libvips. libvips cannot be started again in the same
// process, so only the process's last act calls it.
func Shutdown() { bimg.Shutdown() }

// Check reports whether libvips is up and able to write JPEG, for the
// readiness probe. It takes no gate slot: a busy server is still ready.
func Check(ctx context.Context) error {
	suffix := C.CString(".jpg")
	defer C.free(unsafe.Pointer(suffix))
	if C.vips_foreign_find_save_buffer(suffix) == nil {
		msg := C.GoString(C.vips_error_buffer())
		C.vips_error_clear()
		return fmt.Errorf("libvips cannot write JPEG: %s", strings.TrimSpace(msg))
	}
	return nil
}
