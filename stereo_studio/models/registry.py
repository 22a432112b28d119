"""The one registry of model architectures. A model is built from a small JSON-able config dict.

Every architecture class:
- is registered with `@register_architecture("name")`;
- takes `**config` keyword arguments (at least `max_disp`), has `default_config()` (classmethod) and keeps
  the full config it was built with in `self.config` (including "arch");
- `forward(left, right)`: float tensors N x 3 x H x W, RGB in [0, 1], any H and W (pads internally and crops
  back); returns disparity N x 1 x H x W in pixels of the input size (left view);
- `pruning_ignored_layers()`: modules whose output width must never change (heads that output one channel
  per disparity, layers whose output is reshaped into groups, ...), used by the pruning engine.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from stereo_studio.errors import ModelError

ARCHITECTURES: dict[str, type[nn.Module]] = {}
MIN_MAX_DISP = 8  # the smallest max disparity every architecture (and the CLI's --max-disp) accepts


def register_architecture(name: str):
    """Class decorator adding an architecture to the registry under `name`."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        ARCHITECTURES[name] = cls
        cls.arch_name = name
        return cls

    return wrap


def _ensure_loaded() -> None:
    # Import the modules that register architectures (kept lazy so importing the registry is cheap).
    from stereo_studio.models import student, teacher  # noqa: F401


def architecture_names() -> list[str]:
    _ensure_loaded()
    return sorted(ARCHITECTURES)


def default_config(arch: str, **overrides: Any) -> dict[str, Any]:
    """The default config of `arch` with `overrides` applied (e.g. max_disp=64)."""
    _ensure_loaded()
    if arch not in ARCHITECTURES:
        raise ModelError(f"unknown architecture '{arch}' (known: {', '.join(sorted(ARCHITECTURES))})")
    config = dict(ARCHITECTURES[arch].default_config())
    config.update({k: v for k, v in overrides.items() if v is not None})
    config["arch"] = arch
    return config


def build_model(config: dict[str, Any]) -> nn.Module:
    """Build an (untrained) model from its config dict; `config["arch"]` names the architecture."""
    _ensure_loaded()
    arch = config.get("arch")
    if arch not in ARCHITECTURES:
        raise ModelError(f"unknown architecture '{arch}' (known: {', '.join(sorted(ARCHITECTURES))})")
    kwargs = {k: v for k, v in config.items() if k not in ("arch", "pruned_shapes", "meta")}
    check_config_values(kwargs)
    try:
        return ARCHITECTURES[arch](**kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"config does not fit architecture '{arch}': {exc}") from exc


def check_config_values(config: dict[str, Any]) -> None:
    """ModelError for a negative width / count or a max_disp below MIN_MAX_DISP (before anything is built)."""
    for key, value in config.items():
        values = value if isinstance(value, list | tuple) else [value]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if any(v < 0 for v in numbers):
            raise ModelError(f"config value {key}={value} must not be negative")
    max_disp = config.get("max_disp")
    if isinstance(max_disp, int | float) and max_disp < MIN_MAX_DISP:
        raise ModelError(f"max_disp must be at least {MIN_MAX_DISP}, got {max_disp}")
