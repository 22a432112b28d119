"""Your own PyTorch stereo architecture as a model folder, pruned and saved like the built-in ones.

A custom model folder holds:
- `model.py`: a `build(config: dict) -> torch.nn.Module` whose `forward(left, right)` takes N x 3 x H x W RGB
  in [0, 1] and returns N x 1 x H x W disparity (pixels of the input size, left view);
- `config.json`: the architecture's own keys plus `max_disp`; optionally `"protected_layers": [module names]`
  whose output width pruning must never change (added to the class's own `pruning_ignored_layers()` if it
  has one; the graph's last layer and layers whose channels the graph loses track of are protected
  automatically);
- optionally `model.safetensors` (without it the model starts from `build`'s initial weights).

Running `model.py` is the user's explicit choice: nothing here imports it unless it is trusted, either for the
whole process (`allow_custom_code()`: the CLI's `--trust-code`) or file by file (`trust_code_file(path)`,
what the window calls after a confirmation naming the file). Trust follows the file's content (SHA-256): a
pruned copy carries the same code and stays trusted; an edited file is not. Otherwise `CodeNotTrustedError`
(a `ModelError`, with `.path`) names the file and says how to trust it.

A pruned custom model saves as a folder that reloads in a fresh process: `model.py` copied beside the weights
(the exact bytes that were imported), `config.json` with the pruned tensor shapes by state-dict name
(`pruned_shapes`); loading builds from `model.py`, re-creates those layers at their stored shapes
(convolutions, norms and linear layers as modules, any other parameter or buffer as a tensor of that shape),
then loads the weights. The round trip is checked before anything is written.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import json
import os
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stereo_studio.errors import ModelError

CODE_NAME = "model.py"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MANAGED_KEYS = ("pruned_shapes", "meta")  # written by Stereo Studio, never passed to build()
PROTECTED_KEY = "protected_layers"
PROBE_SIZE = (64, 128)  # the size a custom network must run at (the pruning graph traces at it too)
_SHOW = 5

_TRUST_ALL = False
_TRUSTED: set[str] = set()  # SHA-256 of trusted model.py contents
_MODULES: dict[str, Any] = {}  # SHA-256 -> the imported module (one import per distinct code)


class CodeNotTrustedError(ModelError):
    """A model folder's `model.py` would have to run, and the user has not trusted it. `.path` names it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        super().__init__(
            f"{self.path} is Python code that would run on this machine: load it only if you trust it "
            "(pass --trust-code on the command line; the window asks first)"
        )


@dataclass(frozen=True)
class CustomCode:
    """The code a custom model was built from: where it was read, its exact bytes and their SHA-256."""

    path: Path
    source: bytes
    sha256: str

    def __deepcopy__(self, memo: dict) -> CustomCode:
        return self  # immutable: copies of a model share it


# ---------------------------------------------------------------------------------------------- trust


def allow_custom_code(enabled: bool = True) -> None:
    """Trust every `model.py` this process loads (the CLI's `--trust-code`)."""
    global _TRUST_ALL
    _TRUST_ALL = bool(enabled)


def trust_code_file(path: str | os.PathLike) -> str:
    """Trust one `model.py` (its current content); returns the SHA-256 trusted. A model folder or its
    config.json may be given for its model.py."""
    code = code_path(path)
    try:
        digest = hashlib.sha256(code.read_bytes()).hexdigest()
    except OSError as exc:
        raise ModelError(f"cannot read {code}: {exc}") from exc
    _TRUSTED.add(digest)
    return digest


def is_trusted(path: str | os.PathLike) -> bool:
    """True when `model.py` at `path` (or in that folder) may run."""
    if _TRUST_ALL:
        return True
    try:
        return hashlib.sha256(code_path(path).read_bytes()).hexdigest() in _TRUSTED
    except OSError:
        return False


def reset_trust() -> None:
    """Forget every trust decision (tests; a new session)."""
    allow_custom_code(False)
    _TRUSTED.clear()


@contextlib.contextmanager
def custom_code_allowed() -> Iterator[None]:
    """Context: `allow_custom_code()` inside, the previous setting restored after."""
    global _TRUST_ALL
    before = _TRUST_ALL
    _TRUST_ALL = True
    try:
        yield
    finally:
        _TRUST_ALL = before


# ---------------------------------------------------------------------------------------------- folders


def code_path(path: str | os.PathLike) -> Path:
    """The `model.py` of a folder, of a file in it (config.json, weights) or the file itself."""
    p = Path(path).expanduser()
    if p.is_dir():
        return p / CODE_NAME
    return p if p.name == CODE_NAME or p.suffix == ".py" else p.parent / CODE_NAME


def custom_folder(spec: str | os.PathLike) -> Path | None:
    """The folder of a custom model spec (a folder holding model.py, or a file in it); None otherwise."""
    text = str(spec).strip()
    if not text:
        return None
    p = Path(text).expanduser()
    if p.is_file() and p.suffix in (".json", ".safetensors", ".py"):
        p = p.parent
    return p if p.is_dir() and (p / CODE_NAME).is_file() else None


def is_custom_model(model: Any) -> bool:
    """True for a model built from a custom folder's model.py."""
    return isinstance(getattr(model, "custom_code", None), CustomCode)


def describe(model: nn.Module) -> str:
    """`ClassName`, plus `(model.py at PATH)` for a custom model: for messages naming the file."""
    code = getattr(model, "custom_code", None)
    name = type(model).__name__
    return f"{name} ({code.path})" if isinstance(code, CustomCode) else name


def read_custom_config(folder: Path) -> dict[str, Any]:
    """config.json of a custom folder: a JSON object with a positive integer `max_disp`."""
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise ModelError(f"{path} not found: a custom model folder holds {CODE_NAME} and {CONFIG_NAME} "
                         "(the architecture's own keys plus max_disp)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"bad JSON in {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise ModelError(f"{path} must hold a JSON object (the architecture's keys plus max_disp)")
    max_disp = config.get("max_disp")
    if isinstance(max_disp, bool) or not isinstance(max_disp, int) or max_disp < 1:
        raise ModelError(f"{path} must give \"max_disp\": a positive integer (the largest disparity the "
                         f"network outputs), got {max_disp!r}")
    protected = config.get(PROTECTED_KEY, [])
    if not isinstance(protected, list) or not all(isinstance(n, str) for n in protected):
        raise ModelError(f"{path}: \"{PROTECTED_KEY}\" must be a list of layer names, got {protected!r}")
    return config


def build_config(config: dict[str, Any]) -> dict[str, Any]:
    """What `build()` receives: the config without the keys Stereo Studio manages."""
    return {k: v for k, v in config.items() if k not in MANAGED_KEYS}


# ---------------------------------------------------------------------------------------------- code


def import_code(path: str | os.PathLike) -> tuple[Any, CustomCode]:
    """Import a trusted `model.py` (CodeNotTrustedError otherwise); returns (module, code). The bytes that
    were checked are the bytes that run; one import per distinct content."""
    path = code_path(path).resolve()
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    digest = hashlib.sha256(source).hexdigest()
    if not (_TRUST_ALL or digest in _TRUSTED):
        raise CodeNotTrustedError(path)
    code = CustomCode(path=path, source=source, sha256=digest)
    module = _MODULES.get(digest)
    if module is None:
        name = f"stereo_studio_custom_{digest[:16]}"
        spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
        module = importlib.util.module_from_spec(spec)
        module.__file__ = str(path)
        sys.modules[name] = module  # dataclasses, typing and friends look their module up by name
        try:
            exec(compile(source, str(path), "exec"), module.__dict__)  # trusted by the user
        except Exception as exc:
            sys.modules.pop(name, None)
            raise ModelError(f"{path} failed to import: {type(exc).__name__}: {exc}") from exc
        _MODULES[digest] = module
    build = getattr(module, "build", None)
    if not callable(build):
        raise ModelError(f"{path} defines no build function: expected `def build(config: dict) -> "
                         "torch.nn.Module` returning the network")
    return module, code


def _call_build(module: Any, code: CustomCode, config: dict[str, Any]) -> nn.Module:
    try:
        model = module.build(dict(build_config(config)))
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{code.path}: build(config) failed with {code.path.parent / CONFIG_NAME}: "
                         f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ModelError(f"{code.path}: build(config) returned {type(model).__name__}; expected a "
                         "torch.nn.Module")
    return model


def _attach(model: nn.Module, code: CustomCode, config: dict[str, Any], meta: dict[str, Any]) -> nn.Module:
    model.config = dict(config)
    model.meta = dict(meta)
    model.custom_code = code
    # What the pruning engine asks every model: the class's own list (if any) plus config.json's. A bound
    # method in the instance: a deep copy (prune_model) binds it to the copy.
    model.pruning_ignored_layers = types.MethodType(_ignored_layers, model)
    return model


def _ignored_layers(model: nn.Module) -> list[nn.Module]:
    own = getattr(type(model), "pruning_ignored_layers", None)
    declared = list(own(model)) if callable(own) else []
    return declared + listed_protected_layers(model)


def build_custom(code: CustomCode, config: dict[str, Any], shapes: dict[str, list[int]] | None = None,
                 source: Path | str | None = None) -> nn.Module:
    """The network of `code` built from `config`, with pruned `shapes` (state-dict name -> shape)."""
    module = _MODULES.get(code.sha256)
    if module is None:
        module, code = import_code(code.path)
    model = _call_build(module, code, config)
    if shapes:
        apply_custom_shapes(model, shapes, source or code.path.parent / CONFIG_NAME)
    return model


def apply_custom_shapes(model: nn.Module, shapes: dict[str, list[int]], source: Path | str) -> None:
    """Give `model` the pruned shapes: convolutions, batch norms and linear layers are re-created as layers
    of that width (`storage.apply_shapes`); any other parameter or buffer is replaced by a tensor of the
    stored shape (its values come from the weights file)."""
    from stereo_studio.models.storage import _resized, apply_shapes

    by_owner: dict[str, list[str]] = {}
    for name in shapes:
        by_owner.setdefault(name.rpartition(".")[0], []).append(name)
    layers: dict[str, list[int]] = {}
    tensors: dict[str, list[int]] = {}
    for owner, names in by_owner.items():
        try:
            module = model.get_submodule(owner) if owner else model
        except AttributeError as exc:
            raise ModelError(f"{source}: pruned shape of '{names[0]}' names no layer of the model") from exc
        target = layers if _resized(module, owner, shapes) is not None else tensors
        target.update({n: shapes[n] for n in names})
    if layers:
        apply_shapes(model, layers, source)
    for name, shape in tensors.items():
        owner, _, attr = name.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        if attr in module._parameters and module._parameters[attr] is not None:
            old = module._parameters[attr]
            module._parameters[attr] = nn.Parameter(old.new_empty(shape), requires_grad=old.requires_grad)
        elif attr in module._buffers and module._buffers[attr] is not None:
            module._buffers[attr] = module._buffers[attr].new_empty(shape)
        else:
            raise ModelError(f"{source}: pruned shape of '{name}' names no parameter or buffer of the model")


# ---------------------------------------------------------------------------------------------- checks


def _probe(model: nn.Module, size: tuple[int, int]) -> tuple[torch.Tensor | None, str]:
    """Run one random 1 x 3 x H x W pair through `model` (eval, no grad): (output, "") when it returns a
    1 x 1 x H x W tensor, else (None, what went wrong)."""
    h, w = size
    g = torch.Generator().manual_seed(0)
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    left = torch.rand(1, 3, h, w, generator=g).to(device)
    right = torch.rand(1, 3, h, w, generator=g).to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(left, right)
    except ModelError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, f"forward(left, right) failed on a 1 x 3 x {h} x {w} pair: {type(exc).__name__}: {first}"
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, 1, h, w):
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        return None, (f"forward(left, right) returned {got} for a 1 x 3 x {h} x {w} pair; expected disparity "
                      f"N x 1 x H x W, here (1, 1, {h}, {w})")
    return out, ""


def check_output(model: nn.Module, source: Path | str, size: tuple[int, int] = PROBE_SIZE) -> torch.Tensor:
    """One 1 x 3 x H x W pair through `model`; ModelError naming `source` unless it returns 1 x 1 x H x W.
    Returns the output."""
    out, problem = _probe(model, size)
    if out is None:
        raise ModelError(f"{source}: {problem}")
    return out


def check_weights(model: nn.Module, tensors: dict[str, torch.Tensor], weights: Path, code: Path,
                  config: Path) -> None:
    """ModelError naming the files unless `tensors` fit `model`'s state dict exactly."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    mismatched = [f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in expected.items() if k in tensors and tuple(tensors[k].shape) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({', '.join(missing[:_SHOW])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:_SHOW])})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches ({'; '.join(mismatched[:_SHOW])})")
    if problems:
        raise ModelError(f"weights in {weights} do not fit the network {code} builds from {config}: "
                         + ", ".join(problems))


def listed_protected_layers(model: nn.Module) -> list[nn.Module]:
    """The modules a model's config lists under "protected_layers" (ModelError naming an unknown one)."""
    names = (getattr(model, "config", None) or {}).get(PROTECTED_KEY) or []
    found = []
    for name in names:
        try:
            found.append(model.get_submodule(name))
        except AttributeError as exc:
            code = getattr(model, "custom_code", None)
            where = code.path.parent / CONFIG_NAME if isinstance(code, CustomCode) else "the model config"
            raise ModelError(f"{where}: \"{PROTECTED_KEY}\" names '{name}', which is no layer of "
                             f"{type(model).__name__}") from exc
    return found


def check_pruned(pruned: nn.Module, size: tuple[int, int] = PROBE_SIZE) -> None:
    """After pruning a custom model: ModelError naming its model.py unless it still runs and returns
    N x 1 x H x W (Torch-Pruning could not follow an operation of the graph)."""
    code = pruned.custom_code
    out, problem = _probe(pruned, size)
    if out is None:
        raise ModelError(f"pruning broke the network of {code.path} ({problem}): Torch-Pruning could not "
                         "follow an operation of its graph that depends on a layer's width; list that layer "
                         f"under \"{PROTECTED_KEY}\" in {code.path.parent / CONFIG_NAME}")


# ---------------------------------------------------------------------------------------------- load / save


def load_custom_model(spec: str | os.PathLike, check: bool = True) -> nn.Module:
    """Load a custom model folder (trusted model.py required); eval mode. With `check`, one small forward
    pass checks the output shape."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = custom_folder(spec)
    if folder is None:
        raise ModelError(f"no {CODE_NAME} in {spec}: a custom model folder holds {CODE_NAME} "
                         f"(with build(config)) and {CONFIG_NAME}")
    config = read_custom_config(folder)
    module, code = import_code(folder / CODE_NAME)
    shapes = config.get("pruned_shapes") or {}
    config_path = folder / CONFIG_NAME
    model = _call_build(module, code, config)
    if shapes:
        apply_custom_shapes(model, shapes, config_path)
    meta = dict(config.get("meta") or {})
    weights = folder / WEIGHTS_NAME
    _attach(model, code, build_config(config) | ({"pruned_shapes": shapes} if shapes else {}), meta)
    if weights.is_file():
        try:
            tensors = load_file(str(weights))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot read {weights} (corrupt or truncated?): {exc}") from exc
        check_weights(model, tensors, weights, code.path, config_path)
        model.load_state_dict(tensors, strict=True)
    else:
        if shapes:
            raise ModelError(f"{config_path} records pruned shapes but {weights} is missing")
        model.meta["untrained"] = True
    model.eval()
    if check:
        check_output(model, code.path)
    return model


def custom_pruned_shapes(model: nn.Module) -> dict[str, list[int]]:
    """{state-dict name: shape} of every tensor whose shape differs from a fresh build of the same config."""
    code: CustomCode = model.custom_code
    config = build_config(model.config)
    config.pop("pruned_shapes", None)
    try:
        with torch.device("meta"):
            fresh = build_custom(code, config).state_dict()
    except Exception:  # code that cannot build on the meta device: build it for real
        fresh = build_custom(code, config).state_dict()
    return {name: list(t.shape) for name, t in model.state_dict().items()
            if name not in fresh or tuple(fresh[name].shape) != tuple(t.shape)}


def save_custom_model(model: nn.Module, directory: str | os.PathLike,
                      meta: dict[str, Any] | None = None) -> Path:
    """Write model.py (the bytes it was built from), config.json (its keys + pruned_shapes + meta) and
    model.safetensors; the folder is checked to rebuild the same network before anything is written."""
    from safetensors.torch import save_file

    code: CustomCode = model.custom_code
    directory = Path(directory)
    config = build_config(model.config)
    config.pop("pruned_shapes", None)
    shapes = custom_pruned_shapes(model)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    _check_round_trip(model, code, config, shapes, tensors)
    if shapes:
        config["pruned_shapes"] = shapes
    config["meta"] = dict(meta if meta is not None else getattr(model, "meta", {}) or {})
    directory.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    tmp = {name: directory / f".{name}.tmp-{pid}" for name in (CODE_NAME, WEIGHTS_NAME, CONFIG_NAME)}
    try:
        tmp[CODE_NAME].write_bytes(code.source)
        save_file(tensors, str(tmp[WEIGHTS_NAME]), metadata={"format": "pt", "arch": "custom"})
        tmp[CONFIG_NAME].write_text(json.dumps(config, indent=2, default=_json_default) + "\n")
        for name in (CODE_NAME, WEIGHTS_NAME, CONFIG_NAME):  # config last: a folder with it is complete
            os.replace(tmp[name], directory / name)
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
    return directory


def _check_round_trip(model: nn.Module, code: CustomCode, config: dict[str, Any],
                      shapes: dict[str, list[int]], tensors: dict[str, torch.Tensor]) -> None:
    """ModelError unless build(config) + the recorded shapes + the weights give the same network."""
    where = code.path
    try:
        rebuilt = build_custom(code, config, shapes, source=f"{where} (pruned shapes)")
        check_weights(rebuilt, tensors, Path("the weights being saved"), where, Path(CONFIG_NAME))
        rebuilt.load_state_dict(tensors, strict=True)
    except ModelError as exc:
        raise ModelError(f"cannot save {describe(model)}: the pruned network cannot be re-created from "
                         f"{CODE_NAME}: {exc}") from exc
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    probe = copy.deepcopy(model).to("cpu") if device.type != "cpu" else model
    expected = check_output(probe, where)
    got = check_output(rebuilt, f"{where} (rebuilt from its saved config)")
    if not torch.allclose(expected, got, rtol=1e-4, atol=1e-4 * max(1.0, float(expected.abs().max()))):
        diff = float((expected - got).abs().max())
        raise ModelError(f"cannot save {describe(model)}: the network re-created from {CODE_NAME} with the "
                         f"pruned shapes computes something else (max difference {diff:.3g} px); a pruned "
                         "layer keeps a width attribute its forward uses: list it under "
                         f"\"{PROTECTED_KEY}\" in {CONFIG_NAME}")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"meta value {value!r} is not JSON-serialisable")


__all__ = [
    "CODE_NAME",
    "CodeNotTrustedError",
    "CustomCode",
    "allow_custom_code",
    "check_output",
    "check_pruned",
    "custom_code_allowed",
    "custom_folder",
    "describe",
    "import_code",
    "is_custom_model",
    "is_trusted",
    "listed_protected_layers",
    "load_custom_model",
    "reset_trust",
    "save_custom_model",
    "trust_code_file",
]
