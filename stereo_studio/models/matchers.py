"""Matchers: one interface for everything that turns a rectified RGB pair into a disparity map.

`NetMatcher` wraps a torch model (eval, inference_mode, channels-last, BatchNorm folded into the convolutions
of an inference copy, bf16 autocast only where the CPU has native bf16 kernels); `SGBMMatcher` wraps OpenCV's
semi-global block matching with hole filling.
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from stereo_studio.errors import DataError, ModelError
from stereo_studio.models.layers import ConvSumBN

PRECISIONS = ("auto", "fp32", "bf16")


class Matcher:
    """Interface: `name`, `max_disp`, `predict(left, right)`: H x W x 3 uint8 RGB in, float32 H x W out."""

    name: str = "matcher"
    max_disp: int = 64

    def predict(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_batch(self, lefts: list[np.ndarray], rights: list[np.ndarray]) -> list[np.ndarray]:
        """Disparities of several pairs (default: one by one)."""
        return [self.predict(l, r) for l, r in zip(lefts, rights, strict=True)]

    def params(self) -> dict[str, Any]:
        return {"name": self.name, "max_disp": self.max_disp}


def check_pair(left: np.ndarray, right: np.ndarray) -> None:
    """DataError unless both images are H x W x 3 uint8 of the same size."""
    for tag, img in (("left", left), ("right", right)):
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            desc = f"{img.shape} {img.dtype}" if isinstance(img, np.ndarray) else type(img).__name__
            raise DataError(f"{tag} image must be H x W x 3 uint8 RGB, got {desc}")
    if left.shape != right.shape:
        raise DataError(f"left {left.shape[:2]} and right {right.shape[:2]} image sizes differ")


def bf16_is_native() -> bool:
    """True when oneDNN has native bf16 kernels here (AVX-512 BF16 / AMX). Without them (an AVX2-only CPU)
    bf16 convolutions fall back to slow reference kernels: measured ~30x slower than fp32 on such a CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str) -> str:
    """'auto' -> 'bf16' where bf16 is native, else 'fp32'."""
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision '{precision}' (auto, fp32, bf16)")
    if precision == "auto":
        return "bf16" if bf16_is_native() else "fp32"
    return precision


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """In place: fold each BatchNorm directly following a conv in an nn.Sequential, and the BN of each
    ConvSumBN (whose convs are then merged into one), into the convolutions. For inference only."""
    for module in model.modules():
        if isinstance(module, ConvSumBN) and isinstance(module.bn, nn.BatchNorm2d):
            for i, conv in enumerate(module.convs):
                _fold(conv, module.bn, shift=i == 0)
            module.bn = nn.Identity()
            module.merge()
            continue
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for a, b in itertools.pairwise(names):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, (nn.Conv2d, nn.Conv3d)) and isinstance(bn, (nn.BatchNorm2d, nn.BatchNorm3d)):
                if bn.running_mean is None or conv.out_channels != bn.num_features:
                    continue
                _fold(conv, bn)
                module._modules[b] = nn.Identity()
    return model


@torch.no_grad()
def _fold(conv: nn.Conv2d | nn.Conv3d, bn: nn.BatchNorm2d | nn.BatchNorm3d, shift: bool = True) -> None:
    """conv <- bn(conv); with shift=False only the scale (for all but one conv of a sum)."""
    scale = bn.running_var.add(bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight
    offset = -bn.running_mean * scale
    if bn.bias is not None:
        offset = offset + bn.bias
    conv.weight.mul_(scale.view(-1, *([1] * (conv.weight.dim() - 1))))
    if conv.bias is not None:
        conv.bias.mul_(scale)
    if shift:
        if conv.bias is None:
            conv.bias = nn.Parameter(offset.clone())
        else:
            conv.bias.add_(offset)


def to_channels_last(model: nn.Module) -> nn.Module:
    """In place: channels-last weights for every Conv2d (5-D Conv3d weights are left as they are)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.to(memory_format=torch.channels_last)
    return model


class NetMatcher(Matcher):
    """A torch stereo model as a Matcher. `.model` is the model given; inference runs on a copy with BatchNorm
    folded in (`fuse=True`): call `refresh()` after changing the model's weights."""

    def __init__(
        self,
        model: nn.Module,
        name: str | None = None,
        precision: str = "auto",
        channels_last: bool | str = "auto",
        fuse: bool = True,
    ) -> None:
        self.model = model.eval()
        self.config: dict[str, Any] = dict(getattr(model, "config", {}))
        self.name = name or str(self.config.get("arch", type(model).__name__))
        self.max_disp = int(self.config.get("max_disp", getattr(model, "max_disp", 64)))
        self.precision = resolve_precision(precision)
        self.channels_last = True if channels_last == "auto" else bool(channels_last)
        self.fuse = fuse
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the inference copy from `.model` (after its weights changed)."""
        net = copy.deepcopy(self.model).eval() if self.fuse else self.model.eval()
        if self.fuse:
            fold_batchnorm(net)
        if self.channels_last:
            to_channels_last(net)
        self._net = net

    @property
    def device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def forward_tensors(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W [0, 1] tensors -> N x 1 x H x W fp32 disparity, with this matcher's settings."""
        if self.channels_last:
            left = left.contiguous(memory_format=torch.channels_last)
            right = right.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(
            device_type=left.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
        ):
            return self._net(left, right).float()

    def _to_tensor(self, images: list[np.ndarray]) -> torch.Tensor:
        batch = torch.from_numpy(np.stack(images)).to(self.device)
        return batch.permute(0, 3, 1, 2).float().div_(255.0)

    def predict(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        check_pair(left, right)
        out = self.forward_tensors(self._to_tensor([left]), self._to_tensor([right]))
        return out[0, 0].cpu().numpy().astype(np.float32, copy=False)

    def predict_batch(self, lefts: list[np.ndarray], rights: list[np.ndarray]) -> list[np.ndarray]:
        """Pairs of one size run as one batch; mixed sizes fall back to one by one."""
        if len({l.shape for l in lefts} | {r.shape for r in rights}) > 1:
            return super().predict_batch(lefts, rights)
        for l, r in zip(lefts, rights, strict=True):
            check_pair(l, r)
        out = self.forward_tensors(self._to_tensor(lefts), self._to_tensor(rights))
        return [d[0].cpu().numpy().astype(np.float32, copy=False) for d in out]

    def params(self) -> dict[str, Any]:
        return {"name": self.name, "max_disp": self.max_disp, "precision": self.precision,
                "channels_last": self.channels_last, "bn_folded": self.fuse, "config": self.config}


class SGBMMatcher(Matcher):
    """OpenCV StereoSGBM (3-way by default); invalid pixels filled from the nearest valid one on the left."""

    MODES: ClassVar[dict[str, int]] = {"sgbm": 0, "hh": 1, "3way": 2, "hh4": 3}

    def __init__(
        self,
        max_disp: int = 64,
        block_size: int = 5,
        mode: str = "3way",
        uniqueness: int = 5,
        speckle_window: int = 100,
        speckle_range: int = 2,
        disp12_max_diff: int = 1,
        fill_holes: bool = True,
    ) -> None:
        if mode not in self.MODES:
            raise ModelError(f"unknown SGBM mode '{mode}' ({', '.join(self.MODES)})")
        if block_size < 1 or block_size % 2 == 0:
            raise ModelError(f"SGBM block size must be odd and positive, got {block_size}")
        self.name = "sgbm"
        self.max_disp = int(max_disp)
        self.num_disparities = 16 * max(1, math.ceil(max_disp / 16))
        self.block_size = block_size
        self.mode = mode
        self.p1 = 8 * 3 * block_size**2
        self.p2 = 32 * 3 * block_size**2
        self.uniqueness = uniqueness
        self.speckle_window = speckle_window
        self.speckle_range = speckle_range
        self.disp12_max_diff = disp12_max_diff
        self.fill_holes = fill_holes
        self._sgbm = None

    def _matcher(self):
        import cv2

        if self._sgbm is None:
            self._sgbm = cv2.StereoSGBM_create(
                minDisparity=0, numDisparities=self.num_disparities, blockSize=self.block_size, P1=self.p1,
                P2=self.p2, disp12MaxDiff=self.disp12_max_diff, uniquenessRatio=self.uniqueness,
                speckleWindowSize=self.speckle_window, speckleRange=self.speckle_range,
                mode=self.MODES[self.mode],
            )
        return self._sgbm

    def predict(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        check_pair(left, right)
        import cv2

        l_bgr = cv2.cvtColor(left, cv2.COLOR_RGB2BGR)
        r_bgr = cv2.cvtColor(right, cv2.COLOR_RGB2BGR)
        raw = self._matcher().compute(l_bgr, r_bgr)
        disp = raw.astype(np.float32) / 16.0
        valid = raw >= 0
        if self.fill_holes:
            return fill_from_left(disp, valid)
        disp[~valid] = 0.0
        return disp

    def params(self) -> dict[str, Any]:
        return {
            "name": self.name, "max_disp": self.max_disp, "num_disparities": self.num_disparities,
            "block_size": self.block_size, "mode": self.mode, "P1": self.p1, "P2": self.p2,
            "uniqueness": self.uniqueness, "speckle_window": self.speckle_window,
            "speckle_range": self.speckle_range, "disp12_max_diff": self.disp12_max_diff,
            "fill_holes": self.fill_holes,
        }


def fill_from_left(disp: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each invalid pixel takes the nearest valid value on its left in the same row (on its right when there
    is none on the left; 0 in rows with no valid pixel). Vectorised with running max / min of indices."""
    w = disp.shape[1]
    cols = np.arange(w)[None, :]
    left_idx = np.maximum.accumulate(np.where(valid, cols, -1), axis=1)
    right_idx = np.minimum.accumulate(np.where(valid, cols, w)[:, ::-1], axis=1)[:, ::-1]
    idx = np.where(left_idx >= 0, left_idx, np.where(right_idx < w, right_idx, 0))
    out = np.take_along_axis(disp, idx, axis=1)
    out[~valid.any(axis=1)] = 0.0
    return out.astype(np.float32, copy=False)
