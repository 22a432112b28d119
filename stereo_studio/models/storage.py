"""Models on disk: a folder with `config.json` (architecture config + "meta", and "pruned_shapes" for pruned
models) and `model.safetensors`. Never pickle. Also resolves model specs (`sgbm`, bundled names, paths,
`arch:NAME` untrained architectures) to models and matchers.

The bundled models ship inside the package (`stereo_studio/models/bundled/<name>/`, package data), so an
installed wheel has them. A bundled name never falls back to untrained weights: when its files are missing
the error names them; untrained weights are only built for an explicit `arch:NAME`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stereo_studio.errors import ModelError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
BUNDLED_MODELS = ("teacher", "student", "student-scratch", "student-pruned")  # what the package ships
ARCH_PREFIX = "arch:"  # `arch:student`: the architecture with untrained (random) weights
_SHOW = 5  # mismatches named in an error message


def models_dir() -> Path:
    """Folder of bundled models: $STEREO_STUDIO_MODELS, else the package's own `models/bundled`."""
    env = os.environ.get("STEREO_STUDIO_MODELS")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent / "bundled"


def bundled_model_names() -> list[str]:
    """Names of the bundled model folders that hold both a config and weights."""
    root = models_dir()
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file()
    )


def _is_name(text: str) -> bool:
    """A bare name (no path separator, no file suffix): a bundled name, `sgbm` or `arch:NAME`."""
    return "/" not in text and os.sep not in text and not text.endswith((".json", ".safetensors"))


def is_bundled_name(spec: str | os.PathLike) -> bool:
    """True for a name the package ships (or a folder name in $STEREO_STUDIO_MODELS)."""
    text = str(spec).strip()
    return _is_name(text) and (text in BUNDLED_MODELS or (models_dir() / text / CONFIG_NAME).is_file())


def architecture_spec(spec: str | os.PathLike) -> str | None:
    """The architecture name of an `arch:NAME` spec (ModelError for an unknown one); None otherwise."""
    from stereo_studio.models.registry import architecture_names

    text = str(spec).strip()
    if not text.lower().startswith(ARCH_PREFIX):
        return None
    name = text[len(ARCH_PREFIX):].strip()
    if name not in architecture_names():
        raise ModelError(f"unknown architecture '{name}' in '{text}' "
                         f"(known: {', '.join(ARCH_PREFIX + a for a in architecture_names())})")
    return name


def resolve_model(spec: str | os.PathLike) -> Path | None:
    """Model folder for a bundled name or a path (folder, its config.json or .safetensors); None if none."""
    text = str(spec).strip()
    if _is_name(text):
        folder = models_dir() / text
        if (folder / CONFIG_NAME).is_file():
            return folder
        if text in BUNDLED_MODELS:
            return None  # a bundled name never means some other folder of that name
    path = Path(text).expanduser()
    if path.is_dir():
        found = any((path / n).is_file() for n in (CONFIG_NAME, WEIGHTS_NAME, "model.py"))  # model.py: custom
        return path if found else None
    if path.is_file() and path.suffix in (".json", ".safetensors"):
        return path.parent
    return None


def _missing_model_error(spec: str | os.PathLike) -> ModelError:
    text = str(spec).strip()
    if is_bundled_name(text):
        folder = models_dir() / text
        missing = [str(folder / n) for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
        arch = f" (for untrained weights ask for '{ARCH_PREFIX}{text}')" if _is_architecture(text) else ""
        return ModelError(f"the bundled model '{text}' is missing its files: {', '.join(missing)} not found; "
                          f"reinstall stereo-studio{arch}")
    names = ", ".join(bundled_model_names()) or "none"
    return ModelError(f"no model at '{spec}' (bundled models: {names}; untrained: {ARCH_PREFIX}NAME)")


def _is_architecture(name: str) -> bool:
    from stereo_studio.models.registry import architecture_names

    return name in architecture_names()


# ----------------------------------------------------------------------------------------------- saving


def pruned_shapes(model: nn.Module) -> dict[str, list[int]]:
    """{state-dict name: shape} of every tensor whose shape differs from a fresh model of the same config."""
    from stereo_studio.models.registry import build_model

    fresh = build_model(_arch_config(model.config)).state_dict()
    return {
        name: list(t.shape)
        for name, t in model.state_dict().items()
        if name not in fresh or tuple(fresh[name].shape) != tuple(t.shape)
    }


def save_model(model: nn.Module, directory: str | os.PathLike, meta: dict[str, Any] | None = None) -> Path:
    """Write `config.json` (model.config + "meta" [+ "pruned_shapes"]) and `model.safetensors` atomically."""
    from safetensors.torch import save_file

    from stereo_studio.models import custom_arch

    if custom_arch.is_custom_model(model):  # your own architecture: model.py copied beside the weights
        return custom_arch.save_custom_model(model, directory, meta)
    if not hasattr(model, "config"):
        raise ModelError(f"{type(model).__name__} has no .config: only registered architectures can be saved")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = _arch_config(model.config)
    shapes = pruned_shapes(model)
    if shapes:
        config["pruned_shapes"] = shapes
    config["meta"] = dict(meta if meta is not None else getattr(model, "meta", {}) or {})
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    tmp_weights = directory / f".{WEIGHTS_NAME}.tmp-{os.getpid()}"
    tmp_config = directory / f".{CONFIG_NAME}.tmp-{os.getpid()}"
    try:
        save_file(tensors, str(tmp_weights), metadata={"format": "pt", "arch": str(config["arch"])})
        tmp_config.write_text(json.dumps(config, indent=2, default=_json_default) + "\n")
        os.replace(tmp_weights, directory / WEIGHTS_NAME)
        os.replace(tmp_config, directory / CONFIG_NAME)
    finally:
        for tmp in (tmp_weights, tmp_config):
            tmp.unlink(missing_ok=True)
    return directory


def _arch_config(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in ("pruned_shapes", "meta")}


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"meta value {value!r} is not JSON-serialisable")


# ----------------------------------------------------------------------------------------------- loading


def read_config(path: Path) -> dict[str, Any]:
    """Parse a model's config.json, with a clear ModelError when it is missing or malformed."""
    if not path.is_file():
        raise ModelError(f"model config not found: {path}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"bad JSON in {path}: {exc}") from exc
    if not isinstance(config, dict) or "arch" not in config:
        raise ModelError(f"{path} is not a model config (no \"arch\" key)")
    return config


def load_model(spec_or_path: str | os.PathLike) -> nn.Module:
    """Load a bundled model name or a model folder / config.json / .safetensors; returns it in eval mode.

    The config's widths are checked against the weights file's tensor shapes on the meta device (nothing
    allocated) before the real model is built, so a wrong config fails with a message naming both files
    instead of allocating whatever its widths ask for."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from stereo_studio.models import custom_arch, onnx_net

    if onnx_net.is_onnx_spec(spec_or_path):  # a frozen ONNX network (onnxruntime)
        return onnx_net.load_onnx_net(spec_or_path)
    if not is_bundled_name(spec_or_path) and custom_arch.custom_folder(spec_or_path) is not None:
        return custom_arch.load_custom_model(spec_or_path)  # model.py: runs only when trusted
    folder = resolve_model(spec_or_path)
    if folder is None:
        raise _missing_model_error(spec_or_path)
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    config = read_config(config_path)
    if not weights_path.is_file():
        if is_bundled_name(spec_or_path):
            raise _missing_model_error(spec_or_path)
        raise ModelError(f"model weights not found: {weights_path}")
    shapes = config.get("pruned_shapes") or {}
    file_shapes = _weights_shapes(weights_path)
    with torch.device("meta"):
        skeleton = _build(config, shapes, config_path)
    check_state_dict(skeleton, file_shapes, weights_path, config_path)
    del skeleton
    model = _build(config, shapes, config_path)
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot read {weights_path} (corrupt or truncated?): {exc}") from exc
    check_state_dict(model, tensors, weights_path, config_path)
    model.load_state_dict(tensors, strict=True)
    model.config = {**_arch_config(config), **({"pruned_shapes": shapes} if shapes else {})}
    model.meta = dict(config.get("meta") or {})
    return model.eval()


def _build(config: dict[str, Any], shapes: dict[str, list[int]], config_path: Path) -> nn.Module:
    from stereo_studio.models.registry import build_model

    try:
        model = build_model(_arch_config(config))
    except ModelError as exc:
        raise ModelError(f"{config_path}: {exc}") from exc
    if shapes:
        apply_shapes(model, shapes, config_path)
    return model


def _weights_shapes(path: Path) -> dict[str, torch.Tensor]:
    """{name: meta tensor of the stored shape} from a safetensors header (no weights read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: torch.empty(f.get_slice(k).get_shape(), device="meta") for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot read {path} (corrupt or truncated?): {exc}") from exc


def check_state_dict(
    model: nn.Module, tensors: dict[str, torch.Tensor], source: Path | str, config: Path | str | None = None
) -> None:
    """ModelError naming the first missing / unexpected keys and shape mismatches between model and file
    (and the config file the model was built from, when given)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    mismatched = [
        f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in tensors and tuple(tensors[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({', '.join(missing[:_SHOW])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:_SHOW])})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches ({'; '.join(mismatched[:_SHOW])})")
    if problems:
        where = f" in {config}" if config else ""
        raise ModelError(f"weights in {source} do not fit the '{model.config.get('arch')}' config{where}: "
                         + ", ".join(problems))


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TCONVS = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def apply_shapes(model: nn.Module, shapes: dict[str, list[int]], source: Path | str = "config") -> None:
    """Re-create pruned widths: replace each module owning a tensor in `shapes` by one of the stored shape."""
    owners: dict[str, nn.Module] = {}
    for name in shapes:
        owner, _, _ = name.rpartition(".")
        try:
            owners[owner] = model.get_submodule(owner) if owner else model
        except AttributeError as exc:
            raise ModelError(f"{source}: pruned shape of '{name}' names no layer of the model") from exc
    for owner_name, module in owners.items():
        new = _resized(module, owner_name, shapes)
        if new is None:
            raise ModelError(f"{source}: cannot re-create pruned shape of '{owner_name}' "
                             f"({type(module).__name__} is not a supported layer)")
        parent_name, _, child = owner_name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def _resized(module: nn.Module, name: str, shapes: dict[str, list[int]]) -> nn.Module | None:
    def shape(attr: str) -> list[int] | None:
        return shapes.get(f"{name}.{attr}") if name else shapes.get(attr)

    bias = getattr(module, "bias", None) is not None
    if isinstance(module, _CONVS + _TCONVS):
        w = shape("weight") or list(module.weight.shape)
        depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
        transposed = isinstance(module, _TCONVS)
        if transposed:
            in_ch = w[0]
            groups = in_ch if depthwise else module.groups
            out_ch = w[1] * groups
        else:
            out_ch = w[0]
            groups = out_ch if depthwise else module.groups
            in_ch = w[1] * groups
        kwargs = dict(stride=module.stride, padding=module.padding, dilation=module.dilation, groups=groups,
                      bias=bias, padding_mode=module.padding_mode)
        if transposed:
            kwargs["output_padding"] = module.output_padding
            kwargs.pop("padding_mode")
        return type(module)(in_ch, out_ch, module.kernel_size, **kwargs)
    if isinstance(module, _NORMS):
        s = shape("weight") or shape("running_mean") or [module.num_features]
        return type(module)(s[0], eps=module.eps, momentum=module.momentum, affine=module.affine,
                            track_running_stats=module.track_running_stats)
    if isinstance(module, nn.Linear):
        w = shape("weight") or list(module.weight.shape)
        return nn.Linear(w[1], w[0], bias=bias)
    return None


# ----------------------------------------------------------------------------------------------- matchers


def load_network(spec: str | os.PathLike, max_disp: int | None = None) -> nn.Module:
    """A torch model (eval mode) for a network spec: bundled name | model path | `arch:NAME` (untrained,
    built at `max_disp` when given). A trained model keeps its own max_disp; a different one is refused."""
    from stereo_studio.models.onnx_net import is_onnx_spec, load_onnx_net
    from stereo_studio.models.registry import build_model, default_config

    if is_onnx_spec(spec):
        return load_onnx_net(spec, max_disp=max_disp)
    arch = architecture_spec(spec)
    if arch is not None:
        model = build_model(default_config(arch, max_disp=max_disp)).eval()
        model.meta = {"untrained": True}
        return model
    model = load_model(spec)
    trained = int(model.config["max_disp"])
    if max_disp is not None and int(max_disp) != trained:
        raise ModelError(f"model {spec} was trained with max_disp {trained}; --max-disp {max_disp} conflicts")
    return model


def load_net(spec: str | os.PathLike | nn.Module) -> nn.Module:
    """A torch model to prune, analyse or export: a model already built, a bundled name or model folder,
    or `arch:NAME` (untrained, default config). `sgbm` and ONNX models are refused (no PyTorch layers)."""
    if isinstance(spec, nn.Module):
        return spec
    from stereo_studio.models.onnx_net import frozen_error, is_onnx_spec

    text = str(spec).strip()
    if text.lower() == "sgbm":
        raise ModelError(
            "'sgbm' is OpenCV's semi-global matcher, not a network: it has no channels to prune or export"
        )
    if is_onnx_spec(text):
        raise frozen_error(text, "pruned, analysed or exported (it has no PyTorch layers)")
    return load_network(text)


def load_matcher(spec: str, max_disp: int | None = None, precision: str = "auto"):
    """A Matcher for `spec`: "sgbm" | bundled name | model path | `arch:NAME` (untrained weights).

    A trained model keeps its own max_disp; a different `max_disp` raises ModelError. A bundled name whose
    files are missing raises ModelError naming them (never untrained weights in its place).
    """
    from stereo_studio.models.matchers import SGBMMatcher
    from stereo_studio.models.onnx_net import OnnxMatcher, is_onnx_spec

    text = str(spec).strip()
    if is_onnx_spec(text):  # run with onnxruntime; conventions from net.onnx.json or the graph
        return OnnxMatcher(text, max_disp=max_disp)
    if text.lower() == "sgbm":
        return SGBMMatcher(max_disp=max_disp or 64)
    arch = architecture_spec(text)
    if arch is not None:
        from stereo_studio.models.matchers import NetMatcher

        return NetMatcher(load_network(text, max_disp), name=f"{arch}-untrained", precision=precision)
    folder = resolve_model(text)
    if folder is None:
        raise _unknown_model_error(text)
    from stereo_studio.models.matchers import NetMatcher

    model = load_network(text, max_disp)
    name = text if is_bundled_name(text) else folder.name
    return NetMatcher(model, name=name, precision=precision)


def _unknown_model_error(text: str) -> ModelError:
    from stereo_studio.models.registry import architecture_names

    if is_bundled_name(text) or not _is_name(text) or Path(text).expanduser().exists():
        return _missing_model_error(text)
    bundled = ", ".join(bundled_model_names()) or "none"
    return ModelError(
        f"unknown model '{text}': expected sgbm, a bundled model ({bundled}), "
        f"an untrained architecture ({', '.join(ARCH_PREFIX + a for a in architecture_names())}) "
        "or a model folder"
    )
