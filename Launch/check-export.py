"""Checks `xbm-dist export` against `xbm-dist embed`: the PyTorch module that
python/xbm_models.py loads from the exported file embeds a dataset's test split as xbm-dist
does, within 1e-4 per value.

    python Launch/check-export.py MODEL.safetensors DATASET_DIR EMBEDDINGS.npy

EMBEDDINGS.npy is `xbm-dist embed --split test` of the same run on DATASET_DIR.
"""

import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import xbm_models  # noqa: E402


def main(model_path, dataset, embeddings_path):
    model = xbm_models.load(model_path)
    x = np.load(os.path.join(dataset, "x.npy"), mmap_mode="r")
    split = np.load(os.path.join(dataset, "split.npy"))
    test = np.flatnonzero(split == 1)
    samples = np.asarray(x[test])
    if samples.dtype == np.uint8:       # images: pixels / 255, channels first
        samples = samples.astype(np.float32) / 255
        if samples.ndim == 3:
            samples = samples[:, None]
    expected = np.load(embeddings_path)
    with torch.no_grad():
        got = model(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))).numpy()
    difference = float(np.abs(got - expected).max())
    print(json.dumps({"model": type(model).__name__, "samples": len(test), "max_abs_difference": difference}))
    return 0 if got.shape == expected.shape and difference <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
