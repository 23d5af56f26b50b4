// Low-precision similarities for exact screening (Docs/losses.md, "Exact screening of the
// memory term"; the Swift side is Sources/XBMKernels/Screening.swift).
//
// The memory keeps a bf16 copy of each row; the screen computes ŝ_ij = Σ_k â_ik r̂_jk for 16
// anchors (a "panel") against a run of those rows, with a kernel chosen at run time: every
// kernel is compiled for its own ISA with __attribute__((target)), so the file itself builds
// for generic x86-64 and a binary uses AVX512-BF16 or AVX2 wherever the CPU has them.
//
// Layouts:
//   bf16 row:  `stride` = xbm_bf16_stride(d) values, r̂_0 … r̂_{d-1}, then a zero if d is odd.
//   panel:     (stride / 2) × 16 × 2 bf16: panel[(32·p) + 2·lane + h] = â_{lane, 2p+h}, zero
//              beyond the last anchor and beyond d. One 32-bit word per (pair p, lane), the
//              operand layout of VDPBF16PS.
//   out:       (rows) × 16 floats: out[16·j + lane] = ŝ_{lane, j}.
#ifndef XBM_SCREENING_H
#define XBM_SCREENING_H

#include <stddef.h>
#include <stdint.h>

/// The kernels, by the ISA they need (the Swift enum ScreeningKernel mirrors these values).
enum {
    XBM_SCREEN_SCALAR = 0,       // portable C
    XBM_SCREEN_AVX2 = 1,         // AVX2 + FMA: bf16 widened to fp32 by a shift
    XBM_SCREEN_AVX512_BF16 = 2,  // AVX512F + AVX512_BF16: VDPBF16PS, 32 bf16 products an instruction
};

/// Values per bf16 row: d rounded up to even.
static inline size_t xbm_bf16_stride(size_t d) { return (d + 1) & ~(size_t)1; }

/// out[k] = bf16(x[k]) for k < d, rounded to nearest even (subnormals included, NaN stays a
/// quiet NaN); out[d ..< stride] = 0.
void xbm_bf16_round_row(const float *x, size_t d, uint16_t *out);

/// The panel of `count` ≤ 16 anchors (row-major, count × d floats), rounded as above.
void xbm_screen_pack_anchors(const float *anchors, size_t count, size_t d, uint16_t *panel);

/// out (rows × 16) = ŝ of the panel's 16 lanes against `rows` bf16 rows of `stride` values,
/// with `kernel` (an XBM_SCREEN_* the CPU must have: the caller checks). With `prefetch`, the
/// rows ~8 KiB ahead are requested as the kernel goes (the first panel over a block of the
/// memory reads it from DRAM; the others from cache).
void xbm_screen_similarities(int kernel, const uint16_t *panel, const uint16_t *rows, size_t count,
                             size_t stride, int prefetch, float *out);

#endif
