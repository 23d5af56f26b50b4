#!/usr/bin/env python3
"""Writes a tiny CUB-200-2011 tree for Launch/test's import smoke check.

Usage: make_import_tree.py DIR
DIR gets images.txt, image_class_labels.txt and images/ with 12 PNG pictures (Python's
standard library only: zlib and struct) in 4 classes, two below class 100 (split 0) and two
above (split 1), in three colour types (RGB, grey, palette) and landscape and portrait sizes.
"""
import os
import struct
import sys
import zlib


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, colour_type, rows, palette=None):
    """colour_type 0 grey, 2 RGB, 3 palette; rows: bytes per row without the filter byte."""
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    body = chunk(b"IHDR", header)
    if palette:
        body += chunk(b"PLTE", bytes(c for rgb in palette for c in rgb))
    body += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def picture(index, width, height):
    kind = index % 3
    if kind == 0:  # RGB gradient
        rows = [bytes(v for x in range(width) for v in ((x * 7 + index * 20) % 256, (y * 5) % 256, 128)) for y in range(height)]
        return png(width, height, 2, rows)
    if kind == 1:  # grey stripes
        rows = [bytes((40 + 30 * ((x // 3 + index) % 5)) for x in range(width)) for y in range(height)]
        return png(width, height, 0, rows)
    palette = [(255, 0, 0), (0, 0, 255), (20 * index % 256, 200, 60)]  # palette halves and a band
    rows = [bytes(0 if x < width // 2 else (2 if y % 4 == 0 else 1) for x in range(width)) for y in range(height)]
    return png(width, height, 3, rows, palette)


def main(root):
    classes = [(1, "001.Alpha"), (2, "002.Beta"), (101, "101.Gamma"), (102, "102.Delta")]
    images, labels = [], []
    for number, (label, folder) in enumerate((c for c in classes for _ in range(3)), start=1):
        path = f"{folder}/{number:04d}.png"
        width, height = (40, 24) if number % 2 else (20, 36)
        os.makedirs(os.path.join(root, "images", folder), exist_ok=True)
        with open(os.path.join(root, "images", path), "wb") as f:
            f.write(picture(number, width, height))
        images.append(f"{number} {path}\n")
        labels.append(f"{number} {label}\n")
    with open(os.path.join(root, "images.txt"), "w") as f:
        f.writelines(images)
    with open(os.path.join(root, "image_class_labels.txt"), "w") as f:
        f.writelines(labels)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
