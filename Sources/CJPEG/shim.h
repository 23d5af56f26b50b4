// libjpeg-turbo (the libjpeg 6.2 API), found through pkg-config `libjpeg`; used only by
// DatasetImport. libjpeg reports a fatal error by calling error_exit, which must not return:
// the functions below catch it with setjmp/longjmp (which Swift cannot do) and hand back a
// message instead, so a corrupt file is an error value and never ends the process.
#ifndef XBM_CJPEG_SHIM_H
#define XBM_CJPEG_SHIM_H
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

typedef struct {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
    int truncated;
    char message[JMSG_LENGTH_MAX];
} xbm_jpeg_error;

static void xbm_jpeg_error_exit(j_common_ptr info) {
    xbm_jpeg_error *error = (xbm_jpeg_error *)info->err;
    info->err->format_message(info, error->message);
    longjmp(error->jump, 1);
}

// Warnings stay silent; "premature end of file" is remembered, since libjpeg then pads the
// missing rows with grey, which would import a damaged picture as if it were whole.
static void xbm_jpeg_emit_message(j_common_ptr info, int level) {
    xbm_jpeg_error *error = (xbm_jpeg_error *)info->err;
    if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) error->truncated = 1;
}

// Routes libjpeg's errors of `info` to `error`: the caller then setjmp()s on error->jump.
static struct jpeg_error_mgr *xbm_jpeg_catch_errors(xbm_jpeg_error *error) {
    struct jpeg_error_mgr *manager = jpeg_std_error(&error->manager);
    error->manager.error_exit = xbm_jpeg_error_exit;
    error->manager.emit_message = xbm_jpeg_emit_message;
    error->truncated = 0;
    error->message[0] = 0;
    return manager;
}

static void xbm_jpeg_copy_message(char *out, size_t capacity, const char *text) {
    if (capacity == 0) return;
    snprintf(out, capacity, "%s", text);
}

/// Decodes the JPEG in `data` (`size` bytes) to 8-bit RGB, width × height pixels of 3 bytes,
/// rows top to bottom, into a malloc'd buffer stored in *pixels (the caller frees it).
/// Grey images are expanded to RGB by libjpeg. CMYK and YCCK images are read as CMYK and
/// converted here: with an Adobe APP14 marker (Photoshop's inverted convention, 255 = no ink)
/// R = C·K/255, G = M·K/255, B = Y·K/255; without it R = (255−C)(255−K)/255 and likewise.
/// Returns 0, or −1 with a one-line reason in `message`.
static inline int xbm_jpeg_decode_rgb(const unsigned char *data, unsigned long size,
                                      unsigned char **pixels, int *width, int *height,
                                      char *message, size_t capacity) {
    struct jpeg_decompress_struct info;
    xbm_jpeg_error error;
    unsigned char *volatile out = NULL;
    unsigned char *volatile row = NULL;
    memset(&info, 0, sizeof info);
    info.err = xbm_jpeg_catch_errors(&error);
    if (setjmp(error.jump)) {
        xbm_jpeg_copy_message(message, capacity, error.message);
        jpeg_destroy_decompress(&info);
        free(out);
        free(row);
        return -1;
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, data, size);
    jpeg_read_header(&info, TRUE);
    const int cmyk = info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK;
    info.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&info);
    const size_t w = info.output_width, h = info.output_height;
    out = malloc(w * h * 3 > 0 ? w * h * 3 : 1);
    row = malloc(w * 4 > 0 ? w * 4 : 1);
    if (!out || !row) {
        snprintf(error.message, sizeof error.message, "out of memory for %zu×%zu pixels", w, h);
        longjmp(error.jump, 1);
    }
    const int inverted = info.saw_Adobe_marker;
    while (info.output_scanline < h) {
        unsigned char *rgb = out + (size_t)info.output_scanline * w * 3;
        JSAMPROW target = cmyk ? row : rgb;
        jpeg_read_scanlines(&info, &target, 1);
        if (!cmyk) continue;
        for (size_t x = 0; x < w; x++) {
            unsigned c = row[4 * x], m = row[4 * x + 1], y = row[4 * x + 2], k = row[4 * x + 3];
            if (!inverted) { c = 255 - c; m = 255 - m; y = 255 - y; k = 255 - k; }
            rgb[3 * x] = (unsigned char)((c * k + 127) / 255);
            rgb[3 * x + 1] = (unsigned char)((m * k + 127) / 255);
            rgb[3 * x + 2] = (unsigned char)((y * k + 127) / 255);
        }
    }
    jpeg_finish_decompress(&info);
    jpeg_destroy_decompress(&info);
    free(row);
    if (error.truncated) {
        free(out);
        xbm_jpeg_copy_message(message, capacity, "the file ends before the image data does (truncated)");
        return -1;
    }
    *pixels = out;
    *width = (int)w;
    *height = (int)h;
    return 0;
}

/// Encodes width × height pixels of `components` bytes (1 grey, 3 RGB, 4 CMYK in Adobe's
/// inverted convention) as a baseline JPEG at `quality` with no chroma subsampling, into a
/// malloc'd buffer (*out, *out_size; the caller frees it). Used by the tests to write the
/// fixtures the importer reads. Returns 0, or −1 with a reason in `message`.
static inline int xbm_jpeg_encode(const unsigned char *pixels, int width, int height, int components,
                                  int quality, unsigned char **out, unsigned long *out_size,
                                  char *message, size_t capacity) {
    struct jpeg_compress_struct info;
    xbm_jpeg_error error;
    memset(&info, 0, sizeof info);
    info.err = xbm_jpeg_catch_errors(&error);
    *out = NULL;
    *out_size = 0;
    if (setjmp(error.jump)) {
        xbm_jpeg_copy_message(message, capacity, error.message);
        jpeg_destroy_compress(&info);
        free(*out);
        *out = NULL;
        return -1;
    }
    jpeg_create_compress(&info);
    jpeg_mem_dest(&info, out, out_size);
    info.image_width = (JDIMENSION)width;
    info.image_height = (JDIMENSION)height;
    info.input_components = components;
    info.in_color_space = components == 1 ? JCS_GRAYSCALE : components == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&info);
    jpeg_set_quality(&info, quality, TRUE);
    for (int i = 0; i < info.num_components; i++) {
        info.comp_info[i].h_samp_factor = 1;
        info.comp_info[i].v_samp_factor = 1;
    }
    jpeg_start_compress(&info, TRUE);
    while (info.next_scanline < info.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)info.next_scanline * (size_t)width * (size_t)components);
        jpeg_write_scanlines(&info, &row, 1);
    }
    jpeg_finish_compress(&info);
    jpeg_destroy_compress(&info);
    return 0;
}
#endif
