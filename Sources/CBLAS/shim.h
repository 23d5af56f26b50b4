// OpenBLAS' cblas.h (found through pkg-config `openblas`), which also declares
// openblas_set_num_threads / openblas_get_num_threads.
#ifndef XBM_CBLAS_SHIM_H
#define XBM_CBLAS_SHIM_H
#include <cblas.h>
#endif
