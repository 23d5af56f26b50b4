#include "cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

uint32_t xbm_cpu_features(void) {
    uint32_t a, b, c, d, features = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int osxsave = (c >> 27) & 1;
    const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    const int ymm = (xcr0 & 0x6) == 0x6;            // SSE and AVX state
    const int zmm = ymm && (xcr0 & 0xE0) == 0xE0;   // opmask, ZMM0-15 upper halves, ZMM16-31
    if (ymm && ((c >> 28) & 1)) features |= XBM_CPU_AVX;
    if (ymm && ((c >> 12) & 1)) features |= XBM_CPU_FMA;
    if (ymm && ((c >> 29) & 1)) features |= XBM_CPU_F16C;
    if ((c >> 22) & 1) features |= XBM_CPU_MOVBE;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        const uint32_t leaf7b = b, leaf7c = c;
        if (ymm && ((leaf7b >> 5) & 1)) features |= XBM_CPU_AVX2;
        if ((leaf7b >> 3) & 1) features |= XBM_CPU_BMI1;
        if ((leaf7b >> 8) & 1) features |= XBM_CPU_BMI2;
        if (zmm) {
            if ((leaf7b >> 16) & 1) features |= XBM_CPU_AVX512F;
            if ((leaf7b >> 28) & 1) features |= XBM_CPU_AVX512CD;
            if ((leaf7b >> 30) & 1) features |= XBM_CPU_AVX512BW;
            if ((leaf7b >> 17) & 1) features |= XBM_CPU_AVX512DQ;
            if ((leaf7b >> 31) & 1) features |= XBM_CPU_AVX512VL;
            if ((leaf7c >> 11) & 1) features |= XBM_CPU_AVX512_VNNI;
            if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1)) features |= XBM_CPU_AVX512_BF16;
        }
    }
    if (__get_cpuid(0x80000001, &a, &b, &c, &d) && ((c >> 5) & 1)) features |= XBM_CPU_LZCNT;
    return features;
}
#else
uint32_t xbm_cpu_features(void) { return 0; }
#endif
