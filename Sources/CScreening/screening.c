// Low-precision similarities for exact screening: see include/screening.h for the layouts and
// Docs/losses.md, "Exact screening of the memory term", for why ŝ is close enough to s that
// the loss can skip the pairs it proves inactive.
//
// Each kernel is one chain per lane: ŝ = Σ_k â_k r̂_k, every product of two bf16 exact in fp32,
// the sums rounded in fp32 in some order. The error bound does not depend on that order (nor
// on the flush of subnormals that VDPBF16PS does), so the kernels may differ in their bits:
// the exact recomputation, not ŝ, decides what the loss sees.
#include "screening.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static inline uint16_t bf16_round(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x0040u);  // NaN, kept quiet
    // Round to nearest, ties to even, on the bit pattern: exact for normals and subnormals, and
    // what overflows the largest bf16 becomes infinity.
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

static inline float bf16_widen(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

static inline uint32_t load_pair(const uint16_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

void xbm_bf16_round_row(const float *x, size_t d, uint16_t *out) {
    for (size_t k = 0; k < d; k++) out[k] = bf16_round(x[k]);
    for (size_t k = d; k < xbm_bf16_stride(d); k++) out[k] = 0;
}

void xbm_screen_pack_anchors(const float *anchors, size_t count, size_t d, uint16_t *panel) {
    const size_t stride = xbm_bf16_stride(d);
    memset(panel, 0, stride * 16 * sizeof *panel);
    for (size_t lane = 0; lane < count && lane < 16; lane++)
        for (size_t k = 0; k < d; k++) panel[32 * (k / 2) + 2 * lane + (k & 1)] = bf16_round(anchors[lane * d + k]);
}

/// Rows ahead of the ones being multiplied that are requested from memory: ~8 KiB.
static inline size_t prefetch_rows(size_t stride) {
    size_t rows = 8192 / (2 * stride);
    return rows < 4 ? 4 : rows;
}

static void screen_scalar(const uint16_t *panel, const uint16_t *rows, size_t count, size_t stride, float *out) {
    for (size_t j = 0; j < count; j++) {
        const uint16_t *r = rows + j * stride;
        float s[16] = {0};
        for (size_t k = 0; k < stride; k++) {
            const float rk = bf16_widen(r[k]);
            const uint16_t *a = panel + 32 * (k / 2) + (k & 1);
            for (int lane = 0; lane < 16; lane++) s[lane] += bf16_widen(a[2 * lane]) * rk;
        }
        memcpy(out + 16 * j, s, sizeof s);
    }
}

#if defined(__x86_64__)

// AVX2 + FMA: 16 lanes are two registers of 8. A pair word (â_2p, â_2p+1) widens to fp32 as
// word << 16 (the even k) and word & 0xffff0000 (the odd k); four rows share each panel load.
__attribute__((target("avx2,fma")))
static void screen_avx2(const uint16_t *panel, const uint16_t *rows, size_t count, size_t stride, int prefetch,
                        float *out) {
    const size_t pairs = stride / 2, ahead = prefetch_rows(stride) * stride;
    const __m256i high = _mm256_set1_epi32((int)0xffff0000u);
#define EVEN(v) _mm256_castsi256_ps(_mm256_slli_epi32((v), 16))
#define ODD(v) _mm256_castsi256_ps(_mm256_and_si256((v), high))
    size_t j = 0;
    for (; j + 4 <= count; j += 4) {
        const uint16_t *r0 = rows + j * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
        if (prefetch)
            for (size_t byte = 0; byte < 4 * stride * 2; byte += 64) __builtin_prefetch((const char *)(r0 + ahead) + byte, 0, 3);
        __m256 s0l = _mm256_setzero_ps(), s0h = s0l, s1l = s0l, s1h = s0l, s2l = s0l, s2h = s0l, s3l = s0l, s3h = s0l;
        for (size_t p = 0; p < pairs; p++) {
            const __m256i lo = _mm256_loadu_si256((const __m256i *)(panel + 32 * p));
            const __m256i hi = _mm256_loadu_si256((const __m256i *)(panel + 32 * p + 16));
            const __m256 ael = EVEN(lo), aol = ODD(lo), aeh = EVEN(hi), aoh = ODD(hi);
#define ROW(r, sl, sh)                                                                \
            do {                                                                      \
                const __m256i w = _mm256_set1_epi32((int)load_pair((r) + 2 * p));     \
                const __m256 e = EVEN(w), o = ODD(w);                                 \
                sl = _mm256_fmadd_ps(aol, o, _mm256_fmadd_ps(ael, e, sl));            \
                sh = _mm256_fmadd_ps(aoh, o, _mm256_fmadd_ps(aeh, e, sh));            \
            } while (0)
            ROW(r0, s0l, s0h);
            ROW(r1, s1l, s1h);
            ROW(r2, s2l, s2h);
            ROW(r3, s3l, s3h);
#undef ROW
        }
        float *o = out + 16 * j;
        _mm256_storeu_ps(o, s0l); _mm256_storeu_ps(o + 8, s0h);
        _mm256_storeu_ps(o + 16, s1l); _mm256_storeu_ps(o + 24, s1h);
        _mm256_storeu_ps(o + 32, s2l); _mm256_storeu_ps(o + 40, s2h);
        _mm256_storeu_ps(o + 48, s3l); _mm256_storeu_ps(o + 56, s3h);
    }
#undef EVEN
#undef ODD
    if (j < count) screen_scalar(panel, rows + j * stride, count - j, stride, out + 16 * j);
}

// AVX512-BF16: one VDPBF16PS adds 16 lanes × 2 products; the row's pair word is broadcast from
// memory. Sixteen rows share each panel load, sixteen independent chains (eight ran 5% slower on
// the Xeon measured, whose VDPBF16PS issues at a quarter of its FMA rate: Docs/performance.md).
__attribute__((target("avx512f,avx512bf16")))
static void screen_avx512bf16(const uint16_t *panel, const uint16_t *rows, size_t count, size_t stride, int prefetch,
                              float *out) {
    const size_t pairs = stride / 2, ahead = prefetch_rows(stride) * stride;
    size_t j = 0;
    for (; j + 16 <= count; j += 16) {
        const uint16_t *r = rows + j * stride;
        if (prefetch)
            for (size_t byte = 0; byte < 16 * stride * 2; byte += 64) __builtin_prefetch((const char *)(r + ahead) + byte, 0, 3);
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
        __m512 s8 = s0, s9 = s0, s10 = s0, s11 = s0, s12 = s0, s13 = s0, s14 = s0, s15 = s0;
        for (size_t p = 0; p < pairs; p++) {
            const __m512bh a = (__m512bh)_mm512_loadu_si512((const void *)(panel + 32 * p));
#define ROW(n) s##n = _mm512_dpbf16_ps(s##n, a, (__m512bh)_mm512_set1_epi32((int)load_pair(r + (n) * stride + 2 * p)))
            ROW(0); ROW(1); ROW(2); ROW(3); ROW(4); ROW(5); ROW(6); ROW(7);
            ROW(8); ROW(9); ROW(10); ROW(11); ROW(12); ROW(13); ROW(14); ROW(15);
#undef ROW
        }
        float *o = out + 16 * j;
        _mm512_storeu_ps(o, s0); _mm512_storeu_ps(o + 16, s1); _mm512_storeu_ps(o + 32, s2); _mm512_storeu_ps(o + 48, s3);
        _mm512_storeu_ps(o + 64, s4); _mm512_storeu_ps(o + 80, s5); _mm512_storeu_ps(o + 96, s6); _mm512_storeu_ps(o + 112, s7);
        _mm512_storeu_ps(o + 128, s8); _mm512_storeu_ps(o + 144, s9); _mm512_storeu_ps(o + 160, s10); _mm512_storeu_ps(o + 176, s11);
        _mm512_storeu_ps(o + 192, s12); _mm512_storeu_ps(o + 208, s13); _mm512_storeu_ps(o + 224, s14); _mm512_storeu_ps(o + 240, s15);
    }
    for (; j < count; j++) {
        const uint16_t *r = rows + j * stride;
        __m512 s = _mm512_setzero_ps();
        for (size_t p = 0; p < pairs; p++)
            s = _mm512_dpbf16_ps(s, (__m512bh)_mm512_loadu_si512((const void *)(panel + 32 * p)),
                                 (__m512bh)_mm512_set1_epi32((int)load_pair(r + 2 * p)));
        _mm512_storeu_ps(out + 16 * j, s);
    }
}

#endif

void xbm_screen_similarities(int kernel, const uint16_t *panel, const uint16_t *rows, size_t count, size_t stride,
                             int prefetch, float *out) {
#if defined(__x86_64__)
    if (kernel == XBM_SCREEN_AVX512_BF16) { screen_avx512bf16(panel, rows, count, stride, prefetch, out); return; }
    if (kernel == XBM_SCREEN_AVX2) { screen_avx2(panel, rows, count, stride, prefetch, out); return; }
#endif
    (void)prefetch;
    screen_scalar(panel, rows, count, stride, out);
}
