"""Bring-your-own-network helpers shared by the tests: a small custom architecture written here (not the
project's student) as a model folder, and the project's teacher exported to ONNX with its sidecar."""

from __future__ import annotations

import json
from pathlib import Path

# A stereo network unlike the project's own: a shared strided encoder with a residual block, a mean-product
# correlation volume over quarter-resolution disparities, 2D aggregation with a gated layer (`gate`: its
# output is split at a fixed channel, which Torch-Pruning cannot follow, so config.json lists it under
# "protected_layers"), one logit per disparity, soft-argmin and a residual refinement at full resolution.
# Importing it leaves `imported.flag` beside it: the tests check that an untrusted folder never runs it.
MODEL_PY = '''"""PairNet: a small stereo network (the tests' own architecture)."""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

Path(__file__).with_name("imported.flag").write_text("model.py ran")


def conv_bn(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Residual(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.body = nn.Sequential(conv_bn(ch, ch), nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch))

    def forward(self, x):
        return F.relu(x + self.body(x))


class PairNet(nn.Module):
    def __init__(self, max_disp=32, width=16, agg=16):
        super().__init__()
        self.levels = max_disp // 4
        self.encoder = nn.Sequential(conv_bn(3, width, 2), conv_bn(width, 2 * width, 2), Residual(2 * width))
        self.aggregate = nn.Sequential(conv_bn(self.levels, agg), conv_bn(agg, agg))
        self.agg = agg
        self.gate = nn.Conv2d(agg, 2 * agg, 3, padding=1)
        self.logits = nn.Conv2d(agg, self.levels, 3, padding=1)
        self.refine = nn.Sequential(conv_bn(1, 16), nn.Conv2d(16, 1, 3, padding=1))

    def forward(self, left, right):
        h, w = left.shape[-2:]
        ph, pw = (-h) % 4, (-w) % 4
        left = F.pad(left, (0, pw, 0, ph), mode="replicate")
        right = F.pad(right, (0, pw, 0, ph), mode="replicate")
        fl, fr = self.encoder(left), self.encoder(right)
        cost = [(fl * fr).mean(1, keepdim=True)]
        for d in range(1, self.levels):
            cost.append(F.pad((fl[..., d:] * fr[..., :-d]).mean(1, keepdim=True), (d, 0)))
        g = self.gate(self.aggregate(torch.cat(cost, 1)))
        prob = torch.softmax(self.logits(g[:, :self.agg] * torch.sigmoid(g[:, self.agg:])), 1)
        values = torch.arange(self.levels, dtype=prob.dtype, device=prob.device).view(1, -1, 1, 1)
        disp = F.interpolate((prob * values).sum(1, keepdim=True) * 4, scale_factor=4, mode="bilinear",
                             align_corners=False)
        disp = F.relu(disp + self.refine(disp))
        return disp[..., :h, :w]


def build(config):
    return PairNet(config["max_disp"], config.get("width", 16), config.get("agg", 16))
'''

CONFIG = {"max_disp": 32, "width": 16, "agg": 16, "protected_layers": ["gate"]}


def write_custom_model(folder: Path, code: str = MODEL_PY, config: dict | None = None) -> Path:
    """A custom model folder: model.py + config.json (no weights: build's initial ones)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(code)
    (folder / "config.json").write_text(json.dumps(CONFIG if config is None else config))
    return folder


def export_teacher_onnx(out: Path, size: tuple[int, int] = (48, 64)) -> Path:
    """The bundled teacher exported to ONNX (traced near `size`, unchecked: fast) plus its sidecar (written by
    the export itself)."""
    from stereo_studio.engine.export import export_onnx
    from stereo_studio.models.storage import load_net

    export_onnx(load_net("teacher"), out, check=False, size=size)
    return out
