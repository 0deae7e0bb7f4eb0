// aomenc.c made the .obu files here (see testdata/README.md); it is not
// built by the Go tests. It encodes a few frames of a gradient with libaom,
// writes the raw OBU stream (one temporal unit after another) to stdout,
// then decodes that stream with libaom and prints each output frame's size
// to stderr, which is the .sizes file.
//
//   gcc -o aomenc aomenc.c -laom
//   ./aomenc width height frames flags > x.obu 2> x.sizes
//
// flags: 1 video (good-quality usage; else all-intra, a still picture),
// 2 timing info with equal picture intervals, 4 timing info with a decoder
// model, 8 frames coded at half size, 16 superres, 32 error resilient,
// 64 screen content, 128 a full (not reduced) still picture header,
// 256 frames coded at a random size each.
#include <aom/aom_encoder.h>
#include <aom/aomcx.h>
#include <aom/aom_decoder.h>
#include <aom/aomdx.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: enc w h frames flags\n"); return 2; }
  int w = atoi(argv[1]), h = atoi(argv[2]), frames = atoi(argv[3]), flags = atoi(argv[4]);
  aom_codec_iface_t *iface = aom_codec_av1_cx();
  aom_codec_enc_cfg_t cfg;
  unsigned usage = (flags & 1) ? AOM_USAGE_GOOD_QUALITY : AOM_USAGE_ALL_INTRA;
  if (aom_codec_enc_config_default(iface, &cfg, usage)) return 1;
  cfg.g_w = w; cfg.g_h = h; cfg.g_lag_in_frames = 0; cfg.g_limit = frames;
  cfg.g_timebase.num = 1; cfg.g_timebase.den = 25;
  if (flags & 8) { cfg.rc_resize_mode = 1; cfg.rc_resize_denominator = 16; cfg.rc_resize_kf_denominator = 16; }
  if (flags & 256) cfg.rc_resize_mode = 2; /* RESIZE_RANDOM: a new size every frame */
  if (flags & 16) { cfg.rc_superres_mode = AOM_SUPERRES_FIXED; cfg.rc_superres_denominator = 16; cfg.rc_superres_kf_denominator = 16; }
  if (flags & 32) cfg.g_error_resilient = 1;
  if (flags & 128) cfg.full_still_picture_hdr = 1;
  aom_codec_ctx_t ctx;
  if (aom_codec_enc_init(&ctx, iface, &cfg, 0)) { fprintf(stderr, "init: %s\n", aom_codec_error_detail(&ctx)); return 1; }
  aom_codec_control(&ctx, AOME_SET_CPUUSED, 9);
  if (flags & 2) aom_codec_control(&ctx, AV1E_SET_TIMING_INFO_TYPE, AOM_TIMING_EQUAL);
  if (flags & 4) aom_codec_control(&ctx, AV1E_SET_TIMING_INFO_TYPE, AOM_TIMING_DEC_MODEL);
  if (flags & 16) aom_codec_control(&ctx, AV1E_SET_ENABLE_SUPERRES, 1);
  if (flags & 64) aom_codec_control(&ctx, AV1E_SET_TUNE_CONTENT, AOM_CONTENT_SCREEN);
  static unsigned char out[1 << 22];
  size_t n = 0, tu[64], ntu = 0;
  aom_image_t img;
  aom_img_alloc(&img, AOM_IMG_FMT_I420, w, h, 16);
  for (int f = 0; f <= frames; f++) {
    aom_image_t *in = NULL;
    if (f < frames) {
      for (int p = 0; p < 3; p++) {
        int pw = p ? (w + 1) / 2 : w, ph = p ? (h + 1) / 2 : h;
        for (int y = 0; y < ph; y++) for (int x = 0; x < pw; x++)
          img.planes[p][y * img.stride[p] + x] = (unsigned char)(p ? 128 : (x * 3 + y * 5 + f * 20));
      }
      in = &img;
    }
    if (aom_codec_encode(&ctx, in, f, 1, 0)) { fprintf(stderr, "encode: %s\n", aom_codec_error_detail(&ctx)); return 1; }
    const aom_codec_cx_pkt_t *pkt; aom_codec_iter_t it = NULL;
    while ((pkt = aom_codec_get_cx_data(&ctx, &it)))
      if (pkt->kind == AOM_CODEC_CX_FRAME_PKT) {
        fwrite(pkt->data.frame.buf, 1, pkt->data.frame.sz, stdout);
        memcpy(out + n, pkt->data.frame.buf, pkt->data.frame.sz);
        n += pkt->data.frame.sz;
        tu[ntu++] = pkt->data.frame.sz;
      }
  }
  aom_codec_destroy(&ctx);
  // Decode it back with libaom and print each output frame's size: the
  // ground truth the Go test compares its frame-header parse with.
  aom_codec_ctx_t dec;
  if (aom_codec_dec_init(&dec, aom_codec_av1_dx(), NULL, 0)) return 1;
  size_t off = 0;
  for (size_t i = 0; i < ntu; off += tu[i++]) {
    if (aom_codec_decode(&dec, out + off, tu[i], NULL)) { fprintf(stderr, "decode: %s\n", aom_codec_error_detail(&dec)); return 1; }
    aom_image_t *d; aom_codec_iter_t di = NULL;
    while ((d = aom_codec_get_frame(&dec, &di))) fprintf(stderr, "%ux%u\n", d->d_w, d->d_h);
  }
  aom_codec_destroy(&dec);
  return 0;
}
