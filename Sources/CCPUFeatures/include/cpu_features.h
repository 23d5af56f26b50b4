// The x86-64 features this CPU and its operating system support, from CPUID and XGETBV
// (Sources/XBMKernels/CPUCheck.swift). Compiled for generic x86-64, whatever the Swift code's
// -target-cpu, so the start-up check runs on any CPU. 0 on other architectures.
#ifndef XBM_CPU_FEATURES_H
#define XBM_CPU_FEATURES_H

#include <stdint.h>

enum {
    XBM_CPU_AVX = 1u << 0,
    XBM_CPU_AVX2 = 1u << 1,
    XBM_CPU_FMA = 1u << 2,
    XBM_CPU_F16C = 1u << 3,
    XBM_CPU_BMI1 = 1u << 4,
    XBM_CPU_BMI2 = 1u << 5,
    XBM_CPU_LZCNT = 1u << 6,
    XBM_CPU_MOVBE = 1u << 7,
    XBM_CPU_AVX512F = 1u << 8,
    XBM_CPU_AVX512CD = 1u << 9,
    XBM_CPU_AVX512BW = 1u << 10,
    XBM_CPU_AVX512DQ = 1u << 11,
    XBM_CPU_AVX512VL = 1u << 12,
    XBM_CPU_AVX512_VNNI = 1u << 13,
    XBM_CPU_AVX512_BF16 = 1u << 14,
};

/// The XBM_CPU_* bits of the features usable here: a vector extension counts only when the
/// operating system saves its registers (XGETBV), as a CPU may have AVX-512 that the OS has off.
uint32_t xbm_cpu_features(void);

#endif
