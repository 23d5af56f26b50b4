"""Checks `xbm-dist export` against `xbm-dist embed`, both ways (Docs/export.md, Docs/finetuning.md).

    python Launch/check-export.py MODEL.safetensors DATASET_DIR EMBEDDINGS.npy
        the PyTorch module that python/xbm_models.py loads from the exported file embeds the
        dataset's test split as xbm-dist does (EMBEDDINGS.npy: `xbm-dist embed --split test` of
        the same run), within 1e-4 per value
    python Launch/check-export.py torch-save MODEL.safetensors DATASET_DIR OUT.safetensors OUT.npy
        loads the export in PyTorch, moves every weight and running statistic (a seeded
        perturbation, as training in PyTorch would), saves the plain state dict with
        `safetensors.torch.save_file` (no metadata) and the module's test-split embeddings
    python Launch/check-export.py compare A.npy B.npy
        the two embeddings agree within 1e-4 per value (xbm-dist started from OUT.safetensors
        with --init-from against PyTorch's)
"""

import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import xbm_models  # noqa: E402


def test_samples(dataset):
    x = np.load(os.path.join(dataset, "x.npy"), mmap_mode="r")
    split = np.load(os.path.join(dataset, "split.npy"))
    test = np.flatnonzero(split == 1)
    samples = np.asarray(x[test])
    if samples.dtype == np.uint8:       # images: pixels / 255, channels first
        samples = samples.astype(np.float32) / 255
        if samples.ndim == 3:
            samples = samples[:, None]
    return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))


def embed(model, dataset):
    model.eval()
    with torch.no_grad():
        return model(test_samples(dataset)).numpy()


def agree(got, expected, **report):
    difference = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    print(json.dumps(dict(report, samples=len(expected), max_abs_difference=difference)))
    return 0 if difference <= 1e-4 else 1


def main(model_path, dataset, embeddings_path):
    model = xbm_models.load(model_path)
    return agree(embed(model, dataset), np.load(embeddings_path), model=type(model).__name__)


def torch_save(model_path, dataset, out_path, embeddings_path):
    from safetensors.torch import save_file
    model = xbm_models.load(model_path)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.dtype == torch.float32:
                noise = torch.rand(tensor.shape, generator=generator) * 0.2 + 0.9
                tensor.mul_(noise)          # in place: the module's own tensors; variances stay positive
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out_path)
    np.save(embeddings_path, embed(model, dataset))
    return 0


def compare(a, b):
    return agree(np.load(a), np.load(b), compared=[a, b])


if __name__ == "__main__":
    commands = {"torch-save": torch_save, "compare": compare}
    if sys.argv[1:2] and sys.argv[1] in commands:
        sys.exit(commands[sys.argv[1]](*sys.argv[2:]))
    sys.exit(main(*sys.argv[1:]))
