"""An ONNX stereo network as a frozen model, run with onnxruntime: two image inputs, one disparity output.

`--model path/net.onnx` works wherever a frozen network makes sense: eval, bench, preview, and as the teacher
of a distillation (outputs only: feature distillation needs a PyTorch teacher). `OnnxMatcher` is the
`Matcher`; `OnnxStereoNet` is the same network as an `nn.Module` with the project's tensor convention
(N x 3 x H x W RGB in [0, 1] in, N x 1 x H x W disparity out), what training uses as a teacher.

ONNX stereo networks differ in their conventions, so a sidecar `net.onnx.json` (or `set_onnx_overrides`,
the CLI's `--onnx-config`) states them; every key is optional:

    {"layout": "NCHW" | "NHWC", "range": 1 | 255, "channels": "RGB" | "BGR",
     "mean": [a, b, c], "std": [a, b, c],        # in the network's channel order, on the `range` scale
     "pad_multiple": 32,                          # dynamic sizes: replicate-pad to a multiple, crop back
     "input_size": [H, W],                        # a fixed size: resize in, resize + scale the disparity back
     "disparity_scale": 1.0, "disparity_sign": 1, # pixels = output * scale * sign
     "max_disp": 192, "inputs": ["left", "right"], "output": "disparity"}

Without them the graph's declarations are read (input order and names, layout from where the 3 channels
are, a fixed size, a fixed batch, uint8 inputs) and the rest is assumed: every assumption is listed in
`.assumptions` (and logged once) so the user can see it and write the sidecar. An output at 1/k of the
input resolution is upsampled and its disparity multiplied by k; a negative output (some networks return
the left-to-right flow) has its sign flipped when no sign was declared.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stereo_studio.errors import ModelError
from stereo_studio.models.matchers import Matcher, check_pair

log = logging.getLogger("stereo_studio.models")

SIDECAR_SUFFIX = ".json"  # net.onnx -> net.onnx.json
DEFAULT_PAD_MULTIPLE = 32  # the common total stride of stereo networks
DEFAULT_MAX_DISP = 192
KEYS = ("layout", "range", "channels", "mean", "std", "pad_multiple", "input_size", "disparity_scale",
        "disparity_sign", "max_disp", "inputs", "output")
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
           "tensor(uint8)": np.uint8}
_OVERRIDES: dict[str, Any] = {}


def is_onnx_spec(spec: Any) -> bool:
    """True for a model spec naming an .onnx file."""
    return isinstance(spec, str | os.PathLike) and str(spec).strip().lower().endswith(".onnx")


def sidecar_path(path: str | os.PathLike) -> Path:
    return Path(str(Path(path).expanduser()) + SIDECAR_SUFFIX)


def set_onnx_overrides(values: dict[str, Any] | None) -> None:
    """Conventions applied on top of every sidecar this process reads (the CLI's --onnx-config)."""
    _OVERRIDES.clear()
    if values:
        _OVERRIDES.update(_checked(dict(values), "--onnx-config"))


def frozen_error(spec: Any, what: str) -> ModelError:
    return ModelError(f"{spec} is an ONNX network, run frozen with onnxruntime: it can be evaluated, "
                      f"benchmarked, previewed and distilled from (as a teacher), not {what}")


@dataclass
class OnnxConventions:
    """How to feed one ONNX stereo network and read its output (resolved from sidecar + graph)."""

    left: str
    right: str
    output: str
    layout: str = "NCHW"
    range: float = 1.0
    channels: str = "RGB"
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    pad_multiple: int = 1
    input_size: list[int] | None = None
    disparity_scale: float = 1.0
    disparity_sign: int | None = 1  # None: decided from the first output
    max_disp: int = DEFAULT_MAX_DISP
    batch: int | None = None  # a fixed batch size of the graph
    dtype: str = "tensor(float)"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------ conventions


def read_sidecar(path: Path) -> dict[str, Any]:
    """The declared conventions of `path` (an .onnx file): its sidecar, with any overrides on top."""
    side = sidecar_path(path)
    declared: dict[str, Any] = {}
    if side.is_file():
        try:
            data = json.loads(side.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"bad JSON in {side}: {exc}") from exc
        if not isinstance(data, dict):
            raise ModelError(f"{side} must hold a JSON object with keys among {', '.join(KEYS)}")
        declared = _checked({k: v for k, v in data.items() if not k.startswith("_") and k != "source"},
                            str(side))
    declared.update(_OVERRIDES)
    return declared


def _checked(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate declared conventions; ModelError naming `where` and the key."""
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ModelError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")

    def bad(key: str, expected: str) -> ModelError:
        return ModelError(f"{where}: \"{key}\" must be {expected}, got {data[key]!r}")

    out = dict(data)
    if "layout" in data:
        if str(data["layout"]).upper() not in ("NCHW", "NHWC"):
            raise bad("layout", '"NCHW" or "NHWC"')
        out["layout"] = str(data["layout"]).upper()
    if "range" in data:
        value = {"0-1": 1.0, "0-255": 255.0}.get(str(data["range"]), data["range"])
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise bad("range", '1 (inputs in [0, 1]) or 255 (inputs in [0, 255])')
        out["range"] = float(value)
    if "channels" in data:
        if str(data["channels"]).upper() not in ("RGB", "BGR"):
            raise bad("channels", '"RGB" or "BGR"')
        out["channels"] = str(data["channels"]).upper()
    for key in ("mean", "std"):
        if key in data:
            value = data[key]
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = [value] * 3
            if (not isinstance(value, list) or len(value) != 3
                    or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
                raise bad(key, "a number or a list of 3 numbers (in the network's channel order)")
            if key == "std" and any(v == 0 for v in value):
                raise bad(key, "non-zero")
            out[key] = [float(v) for v in value]
    for key in ("pad_multiple", "max_disp"):
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], int) or data[key] < 1):
            raise bad(key, "a positive integer")
    if "input_size" in data and data["input_size"] is not None:
        value = data["input_size"]
        if (not isinstance(value, list) or len(value) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
            raise bad("input_size", "[height, width] in pixels, or null")
    if "disparity_scale" in data:
        value = data["disparity_scale"]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or value == 0 or not math.isfinite(value):
            raise bad("disparity_scale", "a non-zero number")
        out["disparity_scale"] = float(value)
    if "disparity_sign" in data and data["disparity_sign"] not in (1, -1):
        raise bad("disparity_sign", "1 or -1")
    if "inputs" in data and (not isinstance(data["inputs"], list) or len(data["inputs"]) != 2
                             or not all(isinstance(v, str) for v in data["inputs"])):
        raise bad("inputs", '["left input name", "right input name"]')
    if "output" in data and not isinstance(data["output"], str):
        raise bad("output", "the name of the disparity output")
    return out


def _dim(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def resolve_conventions(session: Any, path: Path, declared: dict[str, Any],
                        max_disp: int | None = None) -> tuple[OnnxConventions, list[str]]:
    """(conventions, assumptions) for `session` from `declared` plus what the graph says."""
    side = sidecar_path(path)
    notes: list[str] = []
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 2:
        names = ", ".join(f"'{i.name}' {list(i.shape)}" for i in inputs) or "none"
        raise ModelError(f"{path} has {len(inputs)} input(s) ({names}); a stereo network needs exactly two "
                         "image inputs, left and right, each N x 3 x H x W (or N x H x W x 3)")
    if not outputs:
        raise ModelError(f"{path} has no output; expected one disparity map N x 1 x H x W")
    by_name = {i.name: i for i in inputs}
    if "inputs" in declared:
        missing = [n for n in declared["inputs"] if n not in by_name]
        if missing:
            raise ModelError(f"{side}: \"inputs\" names {missing}, not inputs of {path} "
                             f"(it has {', '.join(by_name)})")
        left, right = declared["inputs"]
    else:
        left, right = _guess_left_right([i.name for i in inputs])
        if not _named_sides(inputs[0].name, inputs[1].name):
            notes.append(f"input '{left}' is the left image and '{right}' the right one (graph order)")
    out_names = [o.name for o in outputs]
    if "output" in declared:
        if declared["output"] not in out_names:
            raise ModelError(f"{side}: \"output\" '{declared['output']}' is not an output of {path} "
                             f"(it has {', '.join(out_names)})")
        output = declared["output"]
    else:
        output = out_names[0]
        if len(out_names) > 1:
            notes.append(f"the disparity is output '{output}' (the first of {', '.join(out_names)})")
    shapes = [list(by_name[n].shape) for n in (left, right)]
    for name, shape in zip((left, right), shapes, strict=True):
        if len(shape) != 4:
            raise ModelError(f"{path}: input '{name}' has {len(shape)} dimensions {shape}; expected an image "
                             "batch N x 3 x H x W (or N x H x W x 3)")
    shape = shapes[0]
    dtype = by_name[left].type
    if dtype not in _DTYPES:
        raise ModelError(f"{path}: input '{left}' is {dtype}; supported: {', '.join(_DTYPES)}")
    if "layout" in declared:
        layout = declared["layout"]
    elif shape[1] == 3:
        layout = "NCHW"
    elif shape[3] == 3:
        layout = "NHWC"
    else:
        layout = "NCHW"
        notes.append("layout NCHW (the graph does not fix a 3-channel axis)")
    channel_axis = 1 if layout == "NCHW" else 3
    if _dim(shape[channel_axis]) not in (None, 3):
        raise ModelError(f"{path}: input '{left}' {shape} has {shape[channel_axis]} channels in {layout} "
                         "layout; expected 3 (an RGB or BGR image)")
    hw = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    fixed = [_dim(hw[0]), _dim(hw[1])]
    input_size = declared.get("input_size")
    if input_size is None and all(fixed):
        input_size = fixed
        notes.append(f"the graph's fixed input size {fixed[0]}x{fixed[1]}: images are resized to it and the "
                     "disparity resized and scaled back")
    elif input_size is not None and all(fixed) and list(input_size) != fixed:
        raise ModelError(f"{side}: \"input_size\" {input_size} differs from the size {fixed} {path} declares")
    pad = int(declared.get("pad_multiple", 1 if input_size else DEFAULT_PAD_MULTIPLE))
    if input_size is None and "pad_multiple" not in declared:
        notes.append(f"sizes padded to a multiple of {pad} (replicate, cropped back)")
    if "range" in declared:
        value_range = declared["range"]
    else:
        value_range = 255.0 if dtype == "tensor(uint8)" else 1.0
        notes.append(f"input values in [0, {value_range:g}]")
    if "channels" not in declared:
        notes.append("RGB channel order")
    if "mean" not in declared and "std" not in declared and dtype != "tensor(uint8)":
        notes.append("no mean / std normalisation")
    if "disparity_scale" not in declared:
        notes.append("the output is disparity in pixels (scale 1)")
    given = declared.get("max_disp")
    if max_disp is not None and given is not None and int(max_disp) != int(given):
        raise ModelError(f"{path} declares max_disp {given} in {side}; --max-disp {max_disp} conflicts")
    if given is None and max_disp is None:
        notes.append(f"max disparity {DEFAULT_MAX_DISP}")
    conv = OnnxConventions(
        left=left, right=right, output=output, layout=layout, range=float(value_range),
        channels=declared.get("channels", "RGB"), mean=declared.get("mean", [0.0, 0.0, 0.0]),
        std=declared.get("std", [1.0, 1.0, 1.0]), pad_multiple=pad,
        input_size=list(input_size) if input_size else None,
        disparity_scale=float(declared.get("disparity_scale", 1.0)),
        disparity_sign=declared.get("disparity_sign"),
        max_disp=int(given or max_disp or DEFAULT_MAX_DISP), batch=_dim(shape[0]), dtype=dtype,
    )
    if dtype == "tensor(uint8)" and (conv.range != 255.0 or conv.mean != [0.0] * 3 or conv.std != [1.0] * 3):
        raise ModelError(f"{path}: uint8 inputs take raw 0-255 pixels; \"range\" must be 255 and mean / std "
                         f"unset in {side}")
    return conv, notes


def _named_sides(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    return ("left" in a and "right" in b) or ("right" in a and "left" in b)


def _guess_left_right(names: list[str]) -> tuple[str, str]:
    a, b = names
    if "right" in a.lower() and "left" in b.lower():
        return b, a
    return a, b


# ------------------------------------------------------------------------------------------ runner


class OnnxRunner:
    """One onnxruntime session plus its conventions: N x 3 x H x W [0, 1] RGB tensors -> disparity."""

    def __init__(self, path: str | os.PathLike, max_disp: int | None = None,
                 conventions: dict[str, Any] | None = None, threads: int | None = None) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise ModelError(f"ONNX model not found: {self.path}")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelError("onnxruntime is not installed (pip install onnxruntime): cannot run "
                             f"{self.path}") from exc
        declared = read_sidecar(self.path)
        if conventions:
            declared.update(_checked(dict(conventions), "conventions"))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"onnxruntime cannot load {self.path}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        self.conventions, self.assumptions = resolve_conventions(self.session, self.path, declared, max_disp)
        self.sidecar = sidecar_path(self.path)
        self.has_sidecar = self.sidecar.is_file()
        self._lock = threading.Lock()
        self._logged = False
        self._announce()

    def __deepcopy__(self, memo: dict) -> OnnxRunner:
        return self  # the session is immutable and thread-safe: copies share it

    def _announce(self) -> None:
        if self.assumptions and not self._logged:
            where = f"not in {self.sidecar}" if not self.has_sidecar else f"not stated in {self.sidecar}"
            log.warning("%s: conventions %s, assumed: %s", self.path, where, "; ".join(self.assumptions))
            self._logged = True

    def _note(self, text: str) -> None:
        with self._lock:
            if text not in self.assumptions:
                self.assumptions.append(text)
                log.warning("%s: assumed %s", self.path, text)

    def _prepare(self, x: torch.Tensor) -> np.ndarray:
        c = self.conventions
        x = x.detach().float().cpu()
        if c.input_size:
            size = tuple(c.input_size)
            if tuple(x.shape[-2:]) != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        elif c.pad_multiple > 1:
            h, w = x.shape[-2:]
            ph, pw = (-h) % c.pad_multiple, (-w) % c.pad_multiple
            if ph or pw:
                x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        if c.channels == "BGR":
            x = x.flip(1)
        dtype = _DTYPES[c.dtype]
        if dtype == np.uint8:
            x = (x * 255.0).round_().clamp_(0, 255)
        else:
            x = x * c.range
            if c.mean != [0.0, 0.0, 0.0]:
                x = x - torch.tensor(c.mean).view(1, 3, 1, 1)
            if c.std != [1.0, 1.0, 1.0]:
                x = x / torch.tensor(c.std).view(1, 3, 1, 1)
        if c.layout == "NHWC":
            x = x.permute(0, 2, 3, 1)
        return np.ascontiguousarray(x.numpy().astype(dtype, copy=False))

    def _maps(self, raw: Any, n: int, size: tuple[int, int], in_shape: tuple[int, ...]) -> torch.Tensor:
        """The raw output as N x 1 x h x w float32 at the network's input size `size`."""
        a = np.asarray(raw)
        shape = a.shape
        if a.ndim == 4 and shape[0] == n and shape[1] == 1:
            a = a[:, 0]
        elif a.ndim == 4 and shape[0] == n and shape[3] == 1:
            a = a[..., 0]
        elif a.ndim == 3 and shape[0] == n:
            pass
        elif a.ndim == 2 and n == 1:
            a = a[None]
        else:
            raise ModelError(self._shape_error(shape, in_shape))
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[:, None]
        h, w = size
        oh, ow = t.shape[-2:]
        if (oh, ow) != (h, w):
            k = w / ow
            if ow >= w or oh >= h or abs(h / oh - k) > 1e-6:
                raise ModelError(self._shape_error(shape, in_shape))
            self._note(f"the output is at 1/{k:g} of the input size: upsampled, disparity times {k:g}")
            t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False) * k
        return t

    def _shape_error(self, shape: tuple[int, ...], in_shape: tuple[int, ...]) -> str:
        c = self.conventions
        return (f"{self.path}: output '{c.output}' has shape {tuple(shape)} for inputs of shape "
                f"{tuple(in_shape)}; expected one disparity map per pair, N x 1 x H x W (or N x H x W) at "
                "the input size or 1/k of it")

    def run(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W [0, 1] RGB tensors -> N x 1 x H x W float32 disparity (CPU), pixels of H x W."""
        if left.dim() != 4 or left.shape[1] != 3 or left.shape != right.shape:
            raise ModelError(f"{self.path}: expected left / right N x 3 x H x W of one shape, got "
                             f"{tuple(left.shape)} and {tuple(right.shape)}")
        c = self.conventions
        n, _, h, w = left.shape
        xl, xr = self._prepare(left), self._prepare(right)
        net_hw = (xl.shape[2], xl.shape[3]) if c.layout == "NCHW" else (xl.shape[1], xl.shape[2])
        step = c.batch or n
        outs = []
        for start in range(0, n, step):
            bl, br = xl[start:start + step], xr[start:start + step]
            real = bl.shape[0]
            if real < step:  # a fixed batch larger than what is left: repeat the last pair
                fill = [bl[-1:]] * (step - real)
                bl, br = np.concatenate([bl, *fill]), np.concatenate([br, *[br[-1:]] * (step - real)])
            try:
                raw = self.session.run([c.output], {c.left: bl, c.right: br})[0]
            except Exception as exc:
                hint = ("" if c.input_size or c.pad_multiple > 1 else
                        "; if the network needs sizes padded to a multiple, set \"pad_multiple\" in "
                        f"{self.sidecar}")
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ModelError(f"onnxruntime failed to run {self.path} on a {tuple(bl.shape)} input: "
                                 f"{first}{hint}") from exc
            outs.append(self._maps(raw, step, net_hw, tuple(bl.shape))[:real])
        disp = torch.cat(outs) * c.disparity_scale
        if c.disparity_sign is None:
            negative = float(disp.median()) < 0
            c.disparity_sign = -1 if negative else 1
            if negative:
                self._note("the output is negative disparity (left-to-right flow): sign flipped")
        if c.disparity_sign == -1:
            disp = -disp
        if c.input_size:
            if tuple(net_hw) != (h, w):
                scale = w / net_hw[1]
                disp = F.interpolate(disp, size=(h, w), mode="bilinear", align_corners=False) * scale
        else:
            disp = disp[..., :h, :w]
        return disp.contiguous()

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "sidecar": str(self.sidecar) if self.has_sidecar else None,
                "conventions": self.conventions.to_json(), "assumptions": list(self.assumptions)}


# ------------------------------------------------------------------------------------------ model / matcher


class OnnxStereoNet(nn.Module):
    """A frozen ONNX stereo network as an nn.Module (no parameters): what distillation uses as a teacher."""

    frozen = True

    def __init__(self, runner: OnnxRunner) -> None:
        super().__init__()
        self.runner = runner
        self.config: dict[str, Any] = {"arch": "onnx", "max_disp": runner.conventions.max_disp,
                                       "onnx": str(runner.path)}
        self.meta: dict[str, Any] = {"onnx": runner.describe()}

    @property
    def assumptions(self) -> list[str]:
        return self.runner.assumptions

    def forward(self, left: torch.Tensor, right: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        if return_features:
            raise ModelError(f"{self.runner.path} is an ONNX teacher: it gives its disparity only; feature "
                             "distillation (--w-feat) needs a PyTorch teacher")
        with torch.no_grad(), torch.autocast(device_type=left.device.type, enabled=False):
            return self.runner.run(left, right).to(left.device)  # fp32 as onnxruntime computed it


def load_onnx_net(spec: str | os.PathLike, max_disp: int | None = None,
                  conventions: dict[str, Any] | None = None) -> OnnxStereoNet:
    """The ONNX network at `spec` as a frozen `nn.Module` (eval mode)."""
    return OnnxStereoNet(OnnxRunner(str(spec).strip(), max_disp, conventions)).eval()


class OnnxMatcher(Matcher):
    """An ONNX stereo network as a Matcher (uint8 RGB in, float32 disparity out)."""

    def __init__(self, spec: str | os.PathLike, max_disp: int | None = None, name: str | None = None,
                 conventions: dict[str, Any] | None = None) -> None:
        self.runner = OnnxRunner(str(spec).strip(), max_disp, conventions)
        self.net = OnnxStereoNet(self.runner)
        self.name = name or self.runner.path.stem
        self.max_disp = self.runner.conventions.max_disp
        self.precision = "fp32"
        self.config = dict(self.net.config)

    @property
    def assumptions(self) -> list[str]:
        return self.runner.assumptions

    @staticmethod
    def _tensor(images: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)

    def predict(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        check_pair(left, right)
        out = self.runner.run(self._tensor([left]), self._tensor([right]))
        return out[0, 0].numpy().astype(np.float32, copy=False)

    def predict_batch(self, lefts: list[np.ndarray], rights: list[np.ndarray]) -> list[np.ndarray]:
        if len({l.shape for l in lefts} | {r.shape for r in rights}) > 1:
            return super().predict_batch(lefts, rights)
        for l, r in zip(lefts, rights, strict=True):
            check_pair(l, r)
        out = self.runner.run(self._tensor(lefts), self._tensor(rights))
        return [d[0].numpy().astype(np.float32, copy=False) for d in out]

    def params(self) -> dict[str, Any]:
        return {"name": self.name, "max_disp": self.max_disp, "onnx": self.runner.describe()}


# ------------------------------------------------------------------------------------------ export side


def stereo_studio_conventions(model: nn.Module) -> dict[str, Any]:
    """The sidecar of a Stereo Studio network exported by `engine.export` (RGB [0, 1] NCHW, normalised and
    padded inside the graph, disparity in pixels)."""
    config = getattr(model, "config", {}) or {}
    return {"layout": "NCHW", "range": 1, "channels": "RGB", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
            "pad_multiple": 1, "input_size": None, "disparity_scale": 1.0, "disparity_sign": 1,
            "max_disp": int(config.get("max_disp", DEFAULT_MAX_DISP)), "inputs": ["left", "right"],
            "output": "disparity", "source": str(config.get("arch", type(model).__name__))}


def write_sidecar(onnx_path: str | os.PathLike, conventions: dict[str, Any] | nn.Module) -> Path:
    """Write `net.onnx.json` beside `onnx_path` (from a conventions dict or a Stereo Studio model)."""
    data = stereo_studio_conventions(conventions) if isinstance(conventions, nn.Module) else dict(conventions)
    _checked({k: v for k, v in data.items() if k != "source"}, "sidecar")
    path = sidecar_path(onnx_path)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


__all__ = [
    "OnnxConventions",
    "OnnxMatcher",
    "OnnxRunner",
    "OnnxStereoNet",
    "frozen_error",
    "is_onnx_spec",
    "load_onnx_net",
    "read_sidecar",
    "set_onnx_overrides",
    "sidecar_path",
    "stereo_studio_conventions",
    "write_sidecar",
]
