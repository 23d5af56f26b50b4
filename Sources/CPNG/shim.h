// libpng 1.6, found through pkg-config `libpng`; used only by DatasetImport (its simplified
// png_image API: any colour type and bit depth in, 8-bit RGB out).
#ifndef XBM_CPNG_SHIM_H
#define XBM_CPNG_SHIM_H
#include <png.h>
#endif
