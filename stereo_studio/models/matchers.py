"""Matchers: one interface for everything that turns a rectified RGB pair into a disparity map.

`NetMatcher` wraps a torch model (eval, inference_mode, channels-last, BatchNorm folded into the convolutions
of an inference copy, bf16 autocast when asked or measured faster here); `SGBMMatcher` wraps OpenCV's
semi-global block matching with hole filling.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import asdict, dataclass, fields, replace
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
    """'auto' -> the precision measured fastest for inference on this machine (`stereo_studio.runtime`: the
    cached probe choice, or $STEREO_STUDIO_PRECISION; 'fp32' before any measurement). Native bf16 support
    alone decides nothing: bf16 was slower than fp32 on an AVX-512-BF16 CPU without AMX, 9x slower on AVX2."""
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision '{precision}' (auto, fp32, bf16)")
    if precision == "auto":
        from stereo_studio.runtime import inference_settings

        return inference_settings().precision
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


_SGBM_MODES: dict[str, int] = {"sgbm": 0, "hh": 1, "3way": 2, "hh4": 3}
_SGBM_MODE_ALIASES = {"sgbm_3way": "3way", "sgbm3way": "3way", "three_way": "3way", "full": "hh"}
# spec keys (lower case, '-' read as '_') -> SGBMParams field
_SGBM_KEYS = {
    "block": "block_size", "block_size": "block_size", "blocksize": "block_size",
    "p1": "p1", "p2": "p2",
    "uniqueness": "uniqueness", "uniqueness_ratio": "uniqueness", "unique": "uniqueness",
    "speckle_window": "speckle_window", "speckle_window_size": "speckle_window",
    "speckle_win": "speckle_window",
    "speckle_range": "speckle_range",
    "disp12": "disp12_max_diff", "disp12_max_diff": "disp12_max_diff", "disp12maxdiff": "disp12_max_diff",
    "mode": "mode",
    "ndisp": "num_disparities", "num_disparities": "num_disparities", "numdisparities": "num_disparities",
    "fill": "fill_holes", "fill_holes": "fill_holes",
}
SGBM_SPEC_KEYS = ("block", "p1", "p2", "uniqueness", "speckle-window", "speckle-range", "disp12", "mode",
                  "ndisp", "fill")
SGBM_SPEC_HELP = (
    "comma-separated KEY=VALUE: block (odd, 1-51), p1, p2 (P2 > P1; default 8*3*block^2 and 32*3*block^2), "
    "uniqueness (0-100 %%), speckle-window (0 = off), speckle-range, disp12 (max left-right difference, "
    "-1 = off), mode (sgbm | hh | 3way | hh4), ndisp (multiple of 16; default from --max-disp), "
    "fill (1 = fill invalid pixels from the left, 0 = leave them 0); e.g. 'block=7,p1=600,p2=2400,mode=hh'"
)


@dataclass(frozen=True)
class SGBMParams:
    """OpenCV StereoSGBM's tunable parameters, validated on creation (ModelError with a clear message).

    Defaults are the project's SGBM (3-way, block 5, P1 600, P2 2400, uniqueness 5, speckle 100 / 2,
    disp12MaxDiff 1). `p1` / `p2` None follow the block size as in OpenCV's samples (8 and 32 x 3 x block^2);
    `num_disparities` None comes from the matcher's max_disp rounded up to 16. `fill_holes` is ours, not
    OpenCV's: invalid pixels take the nearest valid value on their left (else they are 0).
    """

    block_size: int = 5
    p1: int | None = None
    p2: int | None = None
    uniqueness: int = 5
    speckle_window: int = 100
    speckle_range: int = 2
    disp12_max_diff: int = 1
    mode: str = "3way"
    num_disparities: int | None = None
    fill_holes: bool = True

    def __post_init__(self) -> None:
        mode = _SGBM_MODE_ALIASES.get(str(self.mode).lower(), str(self.mode).lower())
        if mode not in _SGBM_MODES:
            raise ModelError(f"unknown SGBM mode '{self.mode}' ({', '.join(_SGBM_MODES)})")
        object.__setattr__(self, "mode", mode)
        b = self.block_size
        if not 1 <= b <= 51 or b % 2 == 0:
            raise ModelError(f"SGBM block size must be odd and positive (1-51), got {b}")
        p1, p2 = self.resolved_p1, self.resolved_p2
        if p1 < 0:
            raise ModelError(f"SGBM P1 must be >= 0, got {p1}")
        if p2 <= p1:
            raise ModelError(f"SGBM needs P2 > P1 (P1 penalises 1 px disparity changes, P2 larger jumps); "
                             f"got P1 {p1}, P2 {p2}")
        if not 0 <= self.uniqueness <= 100:
            raise ModelError(f"SGBM uniqueness is a percentage (0-100), got {self.uniqueness}")
        if self.speckle_window < 0 or self.speckle_range < 0:
            raise ModelError(f"SGBM speckle window / range must be >= 0 (window 0 turns the filter off), got "
                             f"{self.speckle_window} / {self.speckle_range}")
        if self.disp12_max_diff < -1:
            raise ModelError(
                f"SGBM disp12MaxDiff must be >= -1 (-1 turns the check off), got {self.disp12_max_diff}"
            )
        n = self.num_disparities
        if n is not None and (n < 16 or n % 16):
            raise ModelError(f"SGBM numDisparities must be a positive multiple of 16, got {n}")

    @property
    def resolved_p1(self) -> int:
        return int(self.p1) if self.p1 is not None else 8 * 3 * self.block_size**2

    @property
    def resolved_p2(self) -> int:
        return int(self.p2) if self.p2 is not None else 32 * 3 * self.block_size**2

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for settings files and JSON); `from_dict` reads them back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], base: SGBMParams | None = None) -> SGBMParams:
        """Params from {key: value} (field names or the keys of `parse`) over `base` (default: defaults)."""
        known = {f.name for f in fields(cls)}
        changes: dict[str, Any] = {}
        for key, value in values.items():
            name = _SGBM_KEYS.get(str(key).strip().lower().replace("-", "_"), str(key))
            if name not in known:
                raise ModelError(f"unknown SGBM parameter '{key}' (known: {', '.join(SGBM_SPEC_KEYS)})")
            changes[name] = _sgbm_value(name, value)
        return replace(base or cls(), **changes)

    @classmethod
    def parse(cls, text: str, base: SGBMParams | None = None) -> SGBMParams:
        """'block=7,p1=600,p2=2400,mode=hh' -> SGBMParams (see SGBM_SPEC_HELP); '' gives the defaults."""
        values: dict[str, str] = {}
        for part in (p.strip() for p in str(text).split(",")):
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ModelError(f"bad SGBM setting '{part}': expected KEY=VALUE, e.g. block=7")
            values[key.strip()] = value.strip()
        return cls.from_dict(values, base)


def _sgbm_value(name: str, value: Any) -> Any:
    if value is None and name in ("p1", "p2", "num_disparities"):
        return None
    if name == "mode":
        return str(value)
    if name == "fill_holes":
        if isinstance(value, str):
            if value.strip().lower() not in ("0", "1", "true", "false", "yes", "no", "on", "off"):
                raise ModelError(f"SGBM fill must be 0 or 1, got '{value}'")
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ModelError(f"SGBM {name} must be an integer, got '{value}'") from None
    if not number.is_integer():
        raise ModelError(f"SGBM {name} must be an integer, got '{value}'")
    return int(number)


class SGBMMatcher(Matcher):
    """OpenCV StereoSGBM (3-way by default); invalid pixels filled from the nearest valid one on the left.

    `params` (an `SGBMParams`) overrides the keyword arguments; `set_params` changes them between frames
    (live tuning): the OpenCV matcher is rebuilt at the next `predict`."""

    MODES: ClassVar[dict[str, int]] = _SGBM_MODES

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
        params: SGBMParams | None = None,
    ) -> None:
        if params is None:
            params = SGBMParams(
                block_size=block_size, mode=mode, uniqueness=uniqueness, speckle_window=speckle_window,
                speckle_range=speckle_range, disp12_max_diff=disp12_max_diff, fill_holes=fill_holes,
            )
        self.name = "sgbm"
        self._max_disp_arg = int(max_disp)
        self.set_params(params)

    def set_params(self, params: SGBMParams) -> None:
        """Use new parameters from the next `predict` on (thread safe: a running `predict` keeps the old)."""
        if not isinstance(params, SGBMParams):
            raise ModelError(f"SGBM parameters must be SGBMParams, got {type(params).__name__}")
        self.sgbm_params = params
        n = params.num_disparities or 16 * max(1, math.ceil(self._max_disp_arg / 16))
        self.max_disp = params.num_disparities or self._max_disp_arg
        self.num_disparities = n
        self.block_size = params.block_size
        self.mode = params.mode
        self.p1 = params.resolved_p1
        self.p2 = params.resolved_p2
        self.uniqueness = params.uniqueness
        self.speckle_window = params.speckle_window
        self.speckle_range = params.speckle_range
        self.disp12_max_diff = params.disp12_max_diff
        self.fill_holes = params.fill_holes
        self._sgbm = None

    def _matcher(self):
        import cv2

        sgbm = self._sgbm
        if sgbm is None:
            sgbm = self._sgbm = cv2.StereoSGBM_create(
                minDisparity=0, numDisparities=self.num_disparities, blockSize=self.block_size, P1=self.p1,
                P2=self.p2, disp12MaxDiff=self.disp12_max_diff, uniquenessRatio=self.uniqueness,
                speckleWindowSize=self.speckle_window, speckleRange=self.speckle_range,
                mode=self.MODES[self.mode],
            )
        return sgbm

    def predict(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        check_pair(left, right)
        w = left.shape[1]
        if w <= self.num_disparities:  # OpenCV would try to allocate ~2**64 bytes or fail an assertion
            fix = "use larger images"
            if w > 16:
                fix = f"use --max-disp {16 * ((w - 1) // 16)} or less, or larger images"
            raise DataError(
                f"SGBM cannot match a {w} px wide image with {self.num_disparities} disparities: the image "
                f"must be wider than its disparity range ({fix})"
            )
        import cv2

        fill = self.fill_holes
        l_bgr = cv2.cvtColor(left, cv2.COLOR_RGB2BGR)
        r_bgr = cv2.cvtColor(right, cv2.COLOR_RGB2BGR)
        raw = self._matcher().compute(l_bgr, r_bgr)
        disp = raw.astype(np.float32) / 16.0
        valid = raw >= 0
        if fill:
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


def configure_sgbm(matcher: Any, params: SGBMParams | None) -> Any:
    """Give an SGBM matcher new parameters (None: leave it); ModelError for any other matcher."""
    if params is None:
        return matcher
    if not isinstance(matcher, SGBMMatcher):
        name = getattr(matcher, "name", type(matcher).__name__)
        raise ModelError(f"SGBM parameters apply to the sgbm model only, not to '{name}'")
    matcher.set_params(params)
    return matcher


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
