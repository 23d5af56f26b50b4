// FreeType, found through pkg-config `freetype2`; used only by the hanzi renderer.
#ifndef XBM_CFREETYPE_SHIM_H
#define XBM_CFREETYPE_SHIM_H
#include <ft2build.h>
#include FT_FREETYPE_H
#include FT_OUTLINE_H
#include FT_BITMAP_H
#endif
