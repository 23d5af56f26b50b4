// libmatio, found through pkg-config `matio`; used only by DatasetImport to read Cars196's
// cars_annos.mat (and by its tests to write a small one).
#ifndef XBM_CMATIO_SHIM_H
#define XBM_CMATIO_SHIM_H
#include <matio.h>
#endif
