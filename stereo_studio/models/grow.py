"""Function-preserving growth: a trained model rebuilt wider (or with an added stage), computing the same.

Every tensor of the old model goes into the leading slice of its wider counterpart; the weights that would
carry the new channels into the old ones are zero, and the new channels start from the architecture's own
initialisation. Tensors the old model lacks (a stage an option adds) keep the architecture's initialisation,
which must start the stage as the identity (e.g. a residual whose last conv is zero). The grown model
therefore predicts exactly what the old one did and training can use the extra capacity from there (Net2Net's
aim, with zero instead of copied units). Whether a change keeps that property depends on the architecture (a
grouped correlation keeps it only if its group size stays): the result is checked on a probe pair and a change
that breaks it is refused.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stereo_studio.errors import ModelError

PROBE_SIZE = (64, 128)  # H x W of the check's random pair
TOLERANCE = 1e-3  # px: fp32 summation order differs between widths


def grow_model(model: nn.Module, overrides: dict[str, Any]) -> nn.Module:
    """`model` rebuilt with `overrides` applied to its config (widths that only grow), predicting the same."""
    from stereo_studio.models.registry import build_model, default_config

    config = dict(getattr(model, "config", None) or {})
    if not config.get("arch"):
        raise ModelError("only a model of the architecture registry can be grown")
    if config.get("pruned_shapes"):
        raise ModelError("a pruned model cannot be grown (its layers no longer follow its config's widths)")
    known = set(default_config(config["arch"])) | set(config)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ModelError(f"'{config['arch']}' has no config key {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(k for k in known if k not in ('arch', 'meta')))})")
    if "max_disp" in overrides and overrides["max_disp"] != config.get("max_disp"):
        raise ModelError("max_disp cannot change while growing a model (it is a range, not a width)")
    wide = build_model({k: v for k, v in {**config, **overrides}.items() if k != "meta"})
    old_state, wide_keys = model.state_dict(), set(wide.state_dict())
    with torch.no_grad():
        for prefix, module in wide.named_modules():
            dims = _out_in_dims(module)
            own = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
            for name, tensor in own:
                key = f"{prefix}.{name}" if prefix else name
                if key not in wide_keys or key not in old_state:  # a constant, or a stage the change adds
                    continue
                _embed(tensor, old_state[key], dims if name == "weight" else None, key)
    _check_same_predictions(model, wide)
    if "meta" in config:
        wide.config["meta"] = config["meta"]
    return wide.train(model.training)


def _out_in_dims(module: nn.Module) -> tuple[int, int] | None:
    """(output-channel dim, input-channel dim) of a layer's weight; None for per-channel vectors."""
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return 1, 0
    if isinstance(module, nn.modules.conv._ConvNd | nn.Linear):
        if getattr(module, "groups", 1) != 1:
            raise ModelError("grouped convolutions cannot be grown here")
        return 0, 1
    return None


def _embed(new: torch.Tensor, old: torch.Tensor, dims: tuple[int, int] | None, key: str) -> None:
    """Write `old` into the leading slice of `new`; zero what feeds new inputs into old outputs."""
    if new.ndim != old.ndim or any(n < o for n, o in zip(new.shape, old.shape, strict=True)):
        raise ModelError(f"'{key}' would shrink or change rank ({tuple(old.shape)} -> {tuple(new.shape)}): "
                         "growth only adds channels")
    if dims is not None:
        out_dim, in_dim = dims
        if any(new.shape[d] != old.shape[d] for d in range(new.ndim) if d not in dims):
            raise ModelError(f"'{key}' changes its kernel ({tuple(old.shape)} -> {tuple(new.shape)})")
        if new.shape[in_dim] > old.shape[in_dim]:
            cut = [slice(None)] * new.ndim
            cut[out_dim] = slice(0, old.shape[out_dim])
            cut[in_dim] = slice(old.shape[in_dim], None)
            new[tuple(cut)] = 0
    new[tuple(slice(0, s) for s in old.shape)] = old


def _check_same_predictions(old: nn.Module, wide: nn.Module) -> None:
    generator = torch.Generator().manual_seed(0)
    left, right = (torch.rand(1, 3, *PROBE_SIZE, generator=generator) for _ in range(2))
    modes = old.training, wide.training
    old.eval(), wide.eval()
    try:
        with torch.no_grad():
            gap = (old(left, right) - wide(left, right)).abs().max().item()
    finally:
        old.train(modes[0]), wide.train(modes[1])
    if not gap <= TOLERANCE:
        raise ModelError(f"this change alters what the model computes (up to {gap:.3g} px on a probe pair): "
                         "a correlation averages over its channels, so keep the channels per group (e.g. "
                         "double gwc_channels and groups together) and leave a plain correlation's width; "
                         "a stage an option adds must start as the identity")
