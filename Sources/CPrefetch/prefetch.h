// A cache prefetch hint, which Swift has no spelling for (clang's _mm_prefetch is a macro).
// Static inline, so the Swift compiler inlines it: one prefetch instruction (PREFETCHT0 on
// x86-64, PRFM PLDL1KEEP on arm64). A hint never faults, whatever the address.
#ifndef XBM_CPREFETCH_H
#define XBM_CPREFETCH_H

static inline void xbm_prefetch_for_reading(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
