"""The networks of xbm-dist in PyTorch, to use a trained model outside the trainer.

    import xbm_models
    model = xbm_models.load("model.safetensors")      # from `xbm-dist export`
    embeddings = model(images)                          # (N, C, H, W) float32 in [0, 1] -> (N, d)

`load` reads the file's metadata (which network, its sizes), builds the module, loads the
exported state dict strictly and returns the module in eval mode. The embeddings equal those
of `xbm-dist embed` on the same inputs (to float rounding, ~1e-6): batch norm uses its running
statistics, and the output rows have unit length. Images are what xbm-dist feeds its network:
uint8 pixels divided by 255, channels first; features are float32 (N, D).

Needs torch and safetensors (pip install torch safetensors).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file


class GlyphNet(nn.Module):
    """Four conv3x3 (no bias) - BN - ReLU blocks of 32, 64, 128, 256 channels, 2x2 max pooling
    after the first three, global average pooling, linear to d, L2 normalisation. in_channels
    is 1 for glyphs and 3 for colour images (the export's conv1.weight says which)."""

    def __init__(self, dim=128, in_channels=1, channels=(32, 64, 128, 256)):
        super().__init__()
        widths = (in_channels,) + tuple(channels)
        for k in range(4):
            setattr(self, f"conv{k + 1}", nn.Conv2d(widths[k], widths[k + 1], 3, padding=1, bias=False))
            setattr(self, f"bn{k + 1}", nn.BatchNorm2d(widths[k + 1]))
        self.fc = nn.Linear(widths[-1], dim)

    def forward(self, x):
        for k in range(1, 5):
            x = F.relu(getattr(self, f"bn{k}")(getattr(self, f"conv{k}")(x)))
            if k < 4:
                x = F.max_pool2d(x, 2)
        return F.normalize(self.fc(x.mean(dim=(2, 3))), dim=1)


class MLP(nn.Module):
    """linear(D -> h, no bias) - BN - ReLU - linear(h -> d) - L2 normalisation."""

    def __init__(self, in_features, hidden=512, dim=128):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return F.normalize(self.fc2(F.relu(self.bn1(self.fc1(x)))), dim=1)


def build(metadata, state):
    """The module an exported file describes (its metadata and tensor shapes)."""
    kind = metadata.get("model")
    dim = int(metadata["embedding_size"])
    if kind == "glyphnet":
        channels = tuple(state[f"conv{k}.weight"].shape[0] for k in range(1, 5))
        return GlyphNet(dim=dim, in_channels=state["conv1.weight"].shape[1], channels=channels)
    if kind == "mlp":
        hidden, in_features = state["fc1.weight"].shape
        return MLP(in_features, hidden=hidden, dim=dim)
    raise ValueError(f"not an xbm-dist export: model {kind!r} (expected glyphnet or mlp)")


def load(path):
    """The trained network in `path` (written by `xbm-dist export`), in eval mode."""
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("producer") != "xbm-dist":
        raise ValueError(f"{path}: not written by `xbm-dist export` (no producer metadata)")
    state = load_file(path)
    model = build(metadata, state)
    model.load_state_dict(state, strict=True)
    return model.eval()
