#!/usr/bin/env python3
"""Small datasets for Launch/test and Launch/check-export, written with NumPy as a user's own
script would write them.

    fixtures.py blobs DIR         DIR/{x,y,split}.npy + meta.json: 24 classes x 6 grey images
                                  (N, 32, 32) uint8, each class a bright square at its own place
                                  on noise; classes 0-15 train, 16-23 test
    fixtures.py colour DIR        DIR/{x,y,split}.npy + meta.json: 24 classes x 6 colour images
                                  (N, 3, 32, 32) uint8, each class a square of its own colour
                                  and place on noise; classes 0-15 train, 16-23 test
    fixtures.py features DIR NPZ  DIR/{x,y,split}.npy + meta.json: 24 classes x 8 float32
                                  features (N, 16), Gaussian clusters, labels int64; NPZ the
                                  same arrays as np.savez_compressed(NPZ, x=, y=, split=)
"""
import json
import os
import sys

import numpy as np


def blobs(out):
    rng = np.random.default_rng(0)
    classes, per_class = 24, 6
    x = rng.integers(0, 40, size=(classes * per_class, 32, 32), dtype=np.uint8)
    for c in range(classes):
        cy, cx = 6 + (c * 11) % 20, 6 + (c * 7) % 20
        x[c * per_class:(c + 1) * per_class, cy - 4:cy + 5, cx - 4:cx + 5] += 180
    write(out, x, np.repeat(np.arange(classes, dtype=np.int32), per_class), classes, per_class, "blobs")


def colour(out):
    rng = np.random.default_rng(0)
    classes, per_class, size = 24, 6, 32
    x = rng.integers(0, 50, size=(classes * per_class, 3, size, size), dtype=np.uint8)
    for c in range(classes):
        cy, cx = 6 + (c * 11) % 20, 6 + (c * 7) % 20
        rgb = np.array([(c * 3) % 5, (c * 2 + 1) % 5, (c + 3) % 5], dtype=np.uint8) * 45 + 20
        x[c * per_class:(c + 1) * per_class, :, cy - 5:cy + 6, cx - 5:cx + 6] += rgb[:, None, None]
    write(out, x, np.repeat(np.arange(classes, dtype=np.int32), per_class), classes, per_class, "colour-blobs")


def features(out, npz):
    rng = np.random.default_rng(1)
    classes, per_class, dim = 24, 8, 16
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    x = (np.repeat(centres, per_class, axis=0) + 0.5 * rng.normal(size=(classes * per_class, dim))).astype(np.float32)
    y = np.repeat(np.arange(classes, dtype=np.int64), per_class)
    split = write(out, x, y, classes, per_class, "features")
    np.savez_compressed(npz, x=x, y=y, split=split)


def write(out, x, y, classes, per_class, name):
    os.makedirs(out, exist_ok=True)
    split = np.repeat((np.arange(classes) >= 16).astype(np.uint8), per_class)
    np.save(os.path.join(out, "x.npy"), x)
    np.save(os.path.join(out, "y.npy"), y)
    np.save(os.path.join(out, "split.npy"), split)
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump({"name": name}, f)
    return split


if __name__ == "__main__":
    {"blobs": blobs, "colour": colour, "features": features}[sys.argv[1]](*sys.argv[2:])
