"""Structured channel pruning with Torch-Pruning's DependencyGraph.

A `PruningGraph` traces a model once and lists its prunable groups (coupled channels: a convolution's output,
the BN after it, the convolutions that read it, residual partners...), each named after its root layer.
Protected layers keep their output width: those the architecture declares in `pruning_ignored_layers()`, the
network's last layer (found automatically), and groups whose channel mapping the graph got wrong (checked
with a probe forward pass: see `_check_mapping`). Each `LayerInfo` says why in `reason`.

What a ratio means:
- the global `ratio` is the **fraction of the model's MACs to remove** (at `PLAN_SIZE`; the fraction barely
  depends on the size). The MACs are allocated across the free layers by one global ranking of channel
  importance (`allocation="global"`, the default: each layer's scores normalised by its mean unless the
  criterion is comparable across layers), or by one channel fraction for every layer (`"uniform"`);
- a per-layer ratio (`ratios={"layer": r}`, e.g. a sensitivity plan) is the **fraction of that layer's
  channels** to remove;
- widths are rounded to the NEAREST allowed width (multiples of `round_to`, or the full width; ties keep the
  larger width); a layer never loses all its channels. After rounding, the global allocation moves whole
  `round_to` chunks between layers until the achieved MAC reduction is as close to the asked one as it gets.
A `PruningPlan` reports, per layer, "removes k of n (asked r -> r' after rounding)" and the overall achieved
MAC reduction; `estimate` turns widths into params / MACs analytically (no forward pass, ~1 ms), and
`prune_model` returns a physically smaller deep copy whose `config["pruned_shapes"]` records the new shapes.
`recalibrate_bn` re-estimates BatchNorm statistics of a pruned model on a few pairs (well under a second on
the student).
"""

from __future__ import annotations

import copy
import math
import shutil
import warnings
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from stereo_studio.engine.jobs import Job, Progress
from stereo_studio.errors import ModelError, StereoStudioError

# Harmless on our graphs (torch-pruning.md; the tests check the pruned models run with the right shapes).
warnings.filterwarnings("ignore", message="Maximum recursive depth reached!")

ROOT_TYPES = (nn.modules.conv._ConvNd, nn.Linear)
_WIDTH_TYPES = (*ROOT_TYPES, nn.modules.batchnorm._BatchNorm)
DEFAULT_EXAMPLE_SIZE = (64, 128)
PLAN_SIZE = DEFAULT_EXAMPLE_SIZE  # plans compute MAC fractions at this size (the plan does not depend on it)
MAX_RATIO = 0.9  # a group never loses more than this fraction of its channels
ALLOCATIONS = ("global", "uniform")

REASON_ARCHITECTURE = "architecture: its width is fixed (pruning_ignored_layers)"
REASON_OUTPUT = "the network's output layer"
REASON_MAPPING = "the dependency graph cannot follow its channels"
REASON_SPARED = "spared: critical in the sensitivity analysis"


@dataclass
class LayerInfo:
    """One prunable group, named after its root layer. `members`: layers whose width follows it.
    `reason` says why a protected group is protected."""

    name: str
    module: nn.Module
    out_channels: int
    protected: bool
    members: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass
class _Group:
    info: LayerInfo
    handler: Any
    # (module, is_out, channels of that module in the group): how each member's width follows the group
    deps: list[tuple[nn.Module, bool, int]]
    full: Any = None  # the Torch-Pruning group over all channels (for importance), valid until pruning


@dataclass
class LayerPlan:
    """What a plan does to one group: keeps `kept` of `channels`; `asked` is the fraction of its channels the
    allocation asked for before rounding to an allowed width."""

    name: str
    channels: int
    kept: int
    asked: float = 0.0
    protected: bool = False
    reason: str = ""

    @property
    def removed(self) -> int:
        return self.channels - self.kept

    @property
    def actual(self) -> float:
        return self.removed / self.channels if self.channels else 0.0

    def describe(self) -> str:
        """E.g. "removes 8 of 16 (ratio 0.30 -> 0.50 after rounding)" or "protected (...)"."""
        if self.protected:
            return f"protected ({self.reason})" if self.reason else "protected"
        if self.removed == 0 and self.asked <= 0:
            return f"keeps all {self.channels}"
        text = f"removes {self.removed} of {self.channels}"
        if abs(self.asked - self.actual) > 0.005:
            return f"{text} (ratio {self.asked:.2f} -> {self.actual:.2f} after rounding)"
        return f"{text} (ratio {self.actual:.2f})"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "channels": self.channels,
            "kept": self.kept,
            "removed": self.removed,
            "asked": round(self.asked, 4),
            "actual": round(self.actual, 4),
            "protected": self.protected,
            "reason": self.reason,
            "describe": self.describe(),
        }


@dataclass
class PruningPlan:
    """Kept widths of every group and what they cost. `ratio`: the asked fraction of MACs removed (None for a
    per-layer plan); `macs_removed`: the achieved fraction (at `size`)."""

    ratio: float | None
    ratios: dict[str, float]
    layers: list[LayerPlan]
    macs_before: float
    macs_after: float
    params_before: float
    params_after: float
    size: tuple[int, int]
    criterion: str = "l1"
    round_to: int | None = 8
    allocation: str = "global"
    spared: list[str] = field(default_factory=list)

    @property
    def widths(self) -> dict[str, int]:
        """Channels kept per unprotected group (the input of `estimate` / `apply`)."""
        return {lp.name: lp.kept for lp in self.layers if not lp.protected}

    @property
    def macs_removed(self) -> float:
        return 1.0 - self.macs_after / self.macs_before if self.macs_before else 0.0

    def layer(self, name: str) -> LayerPlan:
        return next(lp for lp in self.layers if lp.name == name)

    def summary(self) -> str:
        """One line: asked vs achieved MAC reduction."""
        asked = f"asked {self.ratio:.0%} of the MACs, " if self.ratio is not None else ""
        return (
            f"{asked}removes {self.macs_removed:.1%} ({self.macs_before / 1e9:.3f} -> "
            f"{self.macs_after / 1e9:.3f} GMAC at {self.size[0]}x{self.size[1]}), "
            f"{sum(lp.removed for lp in self.layers)} of "
            f"{sum(lp.channels for lp in self.layers if not lp.protected)} prunable channels"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio,
            "ratios": dict(self.ratios),
            "macs_removed": round(self.macs_removed, 4),
            "macs_before": int(self.macs_before),
            "macs_after": int(self.macs_after),
            "params_before": int(self.params_before),
            "params_after": int(self.params_after),
            "size": list(self.size),
            "criterion": self.criterion,
            "round_to": self.round_to,
            "allocation": self.allocation,
            "spared": list(self.spared),
            "summary": self.summary(),
            "layers": [lp.to_json() for lp in self.layers],
        }


def example_inputs(size: tuple[int, int], batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic random (left, right) pair in [0, 1] for tracing and counting."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    return torch.rand(batch, 3, h, w, generator=g), torch.rand(batch, 3, h, w, generator=g)


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class _EvalMode:
    """Context: model in eval mode (no BN statistic updates while tracing), previous mode restored after."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.was_training = model, model.training

    def __enter__(self) -> nn.Module:
        self.model.eval()
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)


def allowed_widths(n: int, round_to: int | None = 8, max_ratio: float = MAX_RATIO) -> list[int]:
    """Widths a group of `n` channels may be pruned to, ascending: multiples of `round_to` (and `n` itself),
    never below (1 - max_ratio) * n nor below `round_to`; a group not wider than `round_to` stays whole."""
    floor = max(1, math.ceil(n * (1.0 - max_ratio) - 1e-9))
    if round_to and round_to > 1:
        if n <= round_to:
            return [n]
        widths = {k * round_to for k in range(1, n // round_to + 1)} | {n}
        return sorted(w for w in widths if w >= min(floor, round_to) or w == n)
    return list(range(floor, n + 1))


def nearest_width(n: int, keep: float, round_to: int | None = 8, max_ratio: float = MAX_RATIO) -> int:
    """The allowed width nearest to `keep` channels (ties keep the larger width)."""
    return min(allowed_widths(n, round_to, max_ratio), key=lambda w: (abs(w - keep), -w))


def kept_channels(n: int, ratio: float, round_to: int | None = 8, max_ratio: float = MAX_RATIO) -> int:
    """Channels a group of `n` keeps when asked to lose the fraction `ratio` of them: the nearest allowed
    width (see `allowed_widths`) to n * (1 - ratio); ties keep the larger width."""
    if not 0.0 <= ratio < 1.0:
        raise StereoStudioError(f"pruning ratio must be in [0, 1), got {ratio}")
    return nearest_width(n, n * (1.0 - min(ratio, max_ratio)), round_to, max_ratio)


def _channels(module: nn.Module, out: bool) -> int | None:
    """Output (or input) channel count of a layer, None for layers without one."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.num_features
    if out:
        return getattr(module, "out_channels", None) or getattr(module, "out_features", None)
    return getattr(module, "in_channels", None) or getattr(module, "in_features", None)


class PruningGraph:
    """The dependency graph of one model: prunable groups, their importance, analytic cost of a plan."""

    def __init__(self, model: nn.Module, example_size: tuple[int, int] = DEFAULT_EXAMPLE_SIZE) -> None:
        self.model = model
        self.example_size = tuple(example_size)
        device = _model_device(model)
        inputs = tuple(t.to(device) for t in example_inputs(self.example_size))
        order: list[nn.Module] = []
        hooks = [
            m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
            for m in model.modules()
            if isinstance(m, ROOT_TYPES)
        ]
        try:
            with _EvalMode(model):
                self.DG = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
        except Exception as exc:  # Torch-Pruning raises bare errors on graphs it cannot follow
            raise ModelError(
                f"Torch-Pruning could not trace {_describe(model)}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            for h in hooks:
                h.remove()
        self.names = {m: n for n, m in model.named_modules()}
        declared = list(model.pruning_ignored_layers()) if hasattr(model, "pruning_ignored_layers") else []
        self.declared_modules: set[nn.Module] = {sub for m in declared for sub in m.modules()}
        self.protected_modules: set[nn.Module] = set(self.declared_modules)
        self.output_module = order[-1] if order else None
        if self.output_module is not None:  # the last layer run produces the output: its width is fixed
            self.protected_modules.add(self.output_module)
        self.groups: list[_Group] = []
        self.layers: list[LayerInfo] = []
        self._scores: dict[tuple, dict[str, np.ndarray]] = {}
        self.score_fallbacks: dict[str, dict[str, str]] = {}  # criterion -> {layer: criterion used}
        self._applied = False
        self._costs: dict[tuple[int, int], tuple[dict[nn.Module, float], dict[nn.Module, float]]] = {}
        self._collect_groups()
        self._check_mappings()

    def _collect_groups(self) -> None:
        seen: set[nn.Module] = set()
        for group in self.DG.get_all_groups(ignored_layers=[], root_module_types=ROOT_TYPES):
            root = group[0].dep.target.module
            if root in seen:
                continue
            n = int(self.DG.get_out_channels(root))
            deps: list[tuple[nn.Module, bool, int]] = []
            members: list[str] = []
            reason = ""
            for dep, idxs in group:
                module = dep.target.module
                if not isinstance(module, nn.Module):
                    continue
                is_out = self.DG.is_out_channel_pruning_fn(dep.handler)
                is_in = self.DG.is_in_channel_pruning_fn(dep.handler)
                if not (is_out or is_in):
                    continue
                deps.append((module, is_out, len(idxs)))
                dim = _channels(module, is_out)
                if dim is not None and idxs and (min(idxs) < 0 or max(idxs) >= dim):
                    reason = reason or REASON_MAPPING  # the graph lost the channel mapping (reshape / view)
                if is_out and dim is not None and dim != n and isinstance(module, _WIDTH_TYPES):
                    # coupled outputs must have the same width: a different one means a computed op (e.g. a
                    # correlation summing over channels) was taken for an element-wise one
                    other = self.names.get(module, "?")
                    reason = reason or f"{REASON_MAPPING} (coupled to {other}, {dim} channels)"
                if is_out and isinstance(module, ROOT_TYPES):
                    seen.add(module)
                    members.append(self.names.get(module, "?"))
                    if module in self.declared_modules:
                        reason = reason or REASON_ARCHITECTURE
                    elif module is self.output_module:
                        reason = reason or REASON_OUTPUT
            info = LayerInfo(
                name=self.names.get(root, "?"),
                module=root,
                out_channels=n,
                protected=bool(reason),
                members=members,
                reason=reason,
            )
            self.layers.append(info)
            self.groups.append(_Group(info=info, handler=group[0].dep.handler, deps=deps, full=group))

    # ---- mapping check --------------------------------------------------------------------------------
    def _check_mappings(self) -> None:
        """Protect groups whose channel mapping into a wider consumer (a concatenation) is wrong.

        Torch-Pruning 1.6 maps the channels of `cat([correlation volume, context])` wrongly (measured on the
        student: pruning `ctx_proj.0` removed the first disparity channels of the volume from `agg_in`). So
        for every group that feeds a layer reading more channels than the group has, a probe forward adds
        +-D to two of the group's channels and checks that the consumer input channels the graph would remove
        are among the ones that changed."""
        for g in self.groups:
            if g.info.protected:
                continue
            n = g.info.out_channels
            wide = [m for m, is_out, _ in g.deps if not is_out and (_channels(m, False) or n) != n]
            if wide and not self._probe_agrees(g, wide):
                g.info.protected = True
                g.info.reason = REASON_MAPPING + " (a concatenation the graph maps wrongly)"

    def _probe_agrees(self, g: _Group, consumers: list[nn.Module]) -> bool:
        n = g.info.out_channels
        probes = sorted({0, n - 1})
        delta = 1e3
        captured: dict[nn.Module, torch.Tensor] = {}

        def perturb(_mod: nn.Module, _inp: Any, out: torch.Tensor) -> torch.Tensor:
            if out.dim() < 2 or out.shape[0] != 1 + 2 * len(probes) or out.shape[1] != n:
                return out
            out = out.clone()
            for j, k in enumerate(probes):
                out[1 + 2 * j, k] += delta
                out[2 + 2 * j, k] -= delta
            return out

        def capture(mod: nn.Module, inp: tuple) -> None:
            if mod not in captured and inp and isinstance(inp[0], torch.Tensor):
                captured[mod] = inp[0].detach()

        hooks = [g.info.module.register_forward_hook(perturb)]
        hooks += [m.register_forward_pre_hook(capture) for m in consumers]
        try:
            left, right = example_inputs((32, 64))
            batch = 1 + 2 * len(probes)
            device = _model_device(self.model)
            with _EvalMode(self.model), torch.no_grad():
                self.model(*(t.expand(batch, -1, -1, -1).to(device) for t in (left, right)))
        except Exception:  # a model the probe cannot run: keep the graph's word
            return True
        finally:
            for h in hooks:
                h.remove()
        for module in consumers:
            x = captured.get(module)
            if x is None or x.dim() < 2:
                continue
            for j, k in enumerate(probes):
                group = self.DG.get_pruning_group(g.info.module, g.handler, [k])
                mapped = [
                    list(idxs)
                    for dep, idxs in group
                    if dep.target.module is module and self.DG.is_in_channel_pruning_fn(dep.handler)
                ]
                if not mapped:
                    continue
                diff = torch.maximum(
                    (x[1 + 2 * j] - x[0]).abs().flatten(1).amax(1),
                    (x[2 + 2 * j] - x[0]).abs().flatten(1).amax(1),
                )
                changed = set(torch.nonzero(diff > 1e-3 * (1.0 + float(x[0].abs().max()))).flatten().tolist())
                if changed and not set(mapped[0]) <= changed:
                    return False
        return True

    # ---- importance -------------------------------------------------------------------------------------
    @property
    def prunable(self) -> list[LayerInfo]:
        return [g.info for g in self.groups if not g.info.protected]

    def scores(
        self, criterion: str = "l1", calib_batches: Sequence[Any] | None = None
    ) -> dict[str, np.ndarray]:
        """Per-channel importance of every group (protected ones too), cached per criterion."""
        from stereo_studio.engine.importance import get_criterion, group_scores

        # weights edited in place bump their tensors' version counters: stale scores are never returned
        version = tuple(p._version for p in self.model.parameters())
        needs_data = get_criterion(criterion).needs_gradients
        key = (criterion, id(calib_batches) if needs_data else None, version)
        if key not in self._scores:
            if len(self._scores) >= 8:
                self._scores.clear()
            self._scores[key] = group_scores(self, criterion, calib_batches)
        return self._scores[key]

    def normalized_scores(
        self, criterion: str = "l1", calib_batches: Sequence[Any] | None = None
    ) -> dict[str, np.ndarray]:
        """Scores of the unprotected groups on one scale across layers: as they are for criteria comparable
        across layers (bn, lamp), else divided by the layer's mean (what the global ranking compares)."""
        from stereo_studio.engine.importance import get_criterion

        scores = self.scores(criterion, calib_batches)
        comparable = get_criterion(criterion).comparable
        out = {}
        for info in self.prunable:
            s = np.asarray(scores[info.name], dtype=np.float64)
            out[info.name] = s if comparable else s / max(float(s.mean()), 1e-12)
        return out

    def root_name(self, name: str) -> str:
        """The group a layer name belongs to (a root or a coupled member); ModelError if protected/unknown."""
        for g in self.groups:
            if name == g.info.name or name in g.info.members:
                if g.info.protected:
                    raise ModelError(f"layer '{name}' is protected: {g.info.reason or 'its width is fixed'}")
                return g.info.name
        if any(name == self.names.get(m) for m in self.protected_modules):
            raise ModelError(f"layer '{name}' is protected: its width is fixed by the architecture")
        known = ", ".join(i.name for i in self.prunable)
        raise ModelError(f"no prunable layer named '{name}' (prunable: {known})")

    # ---- planning ---------------------------------------------------------------------------------------
    def plan(
        self,
        ratio: float | None = None,
        ratios: Mapping[str, float] | None = None,
        allocation: str = "global",
        round_to: int | None = 8,
        criterion: str = "l1",
        calib_batches: Sequence[Any] | None = None,
        spare: Iterable[str] = (),
    ) -> PruningPlan:
        """The widths of every group for a MAC target `ratio` and/or per-layer channel `ratios` (see the
        module docstring). Layers in `ratios` take their own ratio; layers named in `spare` (e.g. the
        critical layers of a sensitivity analysis) and protected ones keep their width; the others share
        what remains of the MAC target."""
        if allocation not in ALLOCATIONS:
            known = ", ".join(ALLOCATIONS)
            raise StereoStudioError(f"unknown allocation '{allocation}' (choose from {known})")
        if ratio is not None and not 0.0 <= float(ratio) < 1.0:
            raise StereoStudioError(f"pruning ratio must be in [0, 1), got {ratio}")
        fixed = {self.root_name(name): float(r) for name, r in (ratios or {}).items()}
        for name, r in fixed.items():
            if not 0.0 <= r < 1.0:
                raise StereoStudioError(f"pruning ratio of '{name}' must be in [0, 1), got {r}")
        spared = set()
        for name in spare:
            try:
                spared.add(self.root_name(name))
            except ModelError:
                continue  # protected anyway, or not a layer of this (maybe already pruned) model
        layers: dict[str, LayerPlan] = {}
        for info in self.layers:
            n = info.out_channels
            if info.protected:
                layers[info.name] = LayerPlan(info.name, n, n, 0.0, True, info.reason)
            elif info.name in fixed:
                layers[info.name] = LayerPlan(info.name, n, kept_channels(n, fixed[info.name], round_to),
                                              fixed[info.name])
            elif info.name in spared:
                layers[info.name] = LayerPlan(info.name, n, n, 0.0, True, REASON_SPARED)
            else:
                layers[info.name] = LayerPlan(info.name, n, n, 0.0)
        free = [i for i in self.prunable if i.name not in fixed and i.name not in spared]
        if ratio and free:
            fixed_widths = {k: lp.kept for k, lp in layers.items() if k in fixed}
            if allocation == "uniform":
                widths, asked = self._uniform(float(ratio), free, fixed_widths, round_to)
            else:
                widths, asked = self._global(
                    float(ratio), free, fixed_widths, round_to, criterion, calib_batches
                )
            for name, w in widths.items():
                layers[name].kept, layers[name].asked = int(w), float(asked[name])
        plan = PruningPlan(
            ratio=float(ratio) if ratio is not None else None,
            ratios=dict(fixed),
            layers=list(layers.values()),
            macs_before=0.0,
            macs_after=0.0,
            params_before=0.0,
            params_after=0.0,
            size=PLAN_SIZE,
            criterion=criterion,
            round_to=round_to,
            allocation=allocation,
            spared=sorted(spared),
        )
        before, after = self.estimate({}, PLAN_SIZE), self.estimate(plan.widths, PLAN_SIZE)
        plan.macs_before, plan.params_before = before["macs"], before["params"]
        plan.macs_after, plan.params_after = after["macs"], after["params"]
        return plan

    def plan_widths(
        self,
        ratio: float | None = None,
        ratios: Mapping[str, float] | None = None,
        allocation: str = "global",
        round_to: int | None = 8,
        criterion: str = "l1",
        calib_batches: Sequence[Any] | None = None,
        spare: Iterable[str] = (),
    ) -> dict[str, int]:
        """Channels kept per prunable group (see `plan`)."""
        if ratio is None and not ratios:
            raise StereoStudioError("give a pruning ratio or a per-layer ratio mapping")
        return self.plan(ratio, ratios, allocation, round_to, criterion, calib_batches, spare).widths

    def _macs(self, widths: Mapping[str, int]) -> float:
        return float(self.estimate(widths, PLAN_SIZE)["macs"])

    def _uniform(
        self, ratio: float, free: list[LayerInfo], fixed: dict[str, int], round_to: int | None
    ) -> tuple[dict[str, int], dict[str, float]]:
        """One channel fraction for every free layer: the one whose rounded widths come closest to the MAC
        target (a scan in steps of 0.01; estimates are analytic)."""
        target = self._macs({}) * (1.0 - ratio)
        best: tuple[float, float, dict[str, int]] | None = None
        for step in range(int(MAX_RATIO * 100) + 1):
            rho = step / 100.0
            widths = {i.name: kept_channels(i.out_channels, rho, round_to) for i in free}
            err = abs(self._macs({**fixed, **widths}) - target)
            if best is None or err < best[0] - 1e-6:
                best = (err, rho, widths)
        assert best is not None
        return best[2], {i.name: best[1] for i in free}

    def _global(
        self,
        ratio: float,
        free: list[LayerInfo],
        fixed: dict[str, int],
        round_to: int | None,
        criterion: str,
        calib_batches: Sequence[Any] | None,
    ) -> tuple[dict[str, int], dict[str, float]]:
        """Global ranking: remove channels least important first (normalised scores) until the linearised
        MAC savings reach the target; round each layer to its nearest allowed width; then move whole chunks
        (the least / most important first) while that brings the exact MACs closer to the target."""
        normed = self.normalized_scores(criterion, calib_batches)
        ranked = {i.name: np.sort(normed[i.name]) for i in free}  # ascending: the first go first
        base = self._macs({})
        target = base * (1.0 - ratio)
        current = self._macs(fixed)
        need = current - target
        n_of = {i.name: i.out_channels for i in free}
        if need <= 0:
            return dict(n_of), {k: 0.0 for k in n_of}
        per_channel = {
            name: max(current - self._macs({**fixed, name: n - 1}), 1e-9) for name, n in n_of.items()
        }
        cap = {name: n - allowed_widths(n, round_to)[0] for name, n in n_of.items()}
        order = sorted((float(s), name) for name in n_of for s in ranked[name])
        count = dict.fromkeys(n_of, 0)
        saved = 0.0
        threshold = -math.inf  # the score of the last channel the ranking took
        for score, name in order:
            if saved >= need:
                break
            if count[name] < cap[name] and cap[name] > 0:
                count[name] += 1
                saved += per_channel[name]
                threshold = score
        asked = {name: count[name] / n for name, n in n_of.items()}
        widths = {name: nearest_width(n, n - count[name], round_to) for name, n in n_of.items()}

        def error(w: Mapping[str, int]) -> float:
            return self._macs({**fixed, **w}) - target

        err = error(widths)
        for _ in range(4 * sum(len(allowed_widths(n, round_to)) for n in n_of.values())):
            moves = []
            for name, n in n_of.items():
                steps = allowed_widths(n, round_to)
                pos = steps.index(widths[name])
                if err > 0 and pos > 0:  # too many MACs left: drop the next chunk of the least important
                    new = steps[pos - 1]
                    chunk = ranked[name][n - widths[name]: n - new]
                    moves.append((float(chunk.mean()), name, new))
                elif err < 0 and pos + 1 < len(steps):  # removed too much: give back the most important
                    new = steps[pos + 1]
                    chunk = ranked[name][n - new: n - widths[name]]
                    if float(chunk.max()) > threshold:  # never give back channels the ranking chose
                        moves.append((-float(chunk.mean()), name, new))
            moved = False
            for _, name, new in sorted(moves):
                trial = {**widths, name: new}
                e = error(trial)
                if abs(e) < abs(err) - 1e-6:
                    widths, err, moved = trial, e, True
                    break
            if not moved:
                break
        return widths, asked

    def removed_channels(
        self, widths: Mapping[str, int], scores: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Indices of the channels each group drops to reach `widths`: the least important ones."""
        out: dict[str, np.ndarray] = {}
        for info in self.prunable:
            n_drop = info.out_channels - int(widths.get(info.name, info.out_channels))
            if n_drop > 0:
                out[info.name] = np.sort(np.argsort(scores[info.name], kind="stable")[:n_drop])
        return out

    # ---- analytic cost ----------------------------------------------------------------------------------
    def _base_costs(self, size: tuple[int, int]) -> tuple[dict[nn.Module, float], dict[nn.Module, float]]:
        """Per-layer MACs (one layer-wise counting pass of Torch-Pruning's counter, cached) and params."""
        size = (int(size[0]), int(size[1]))
        if size not in self._costs:
            inputs = tuple(t.to(_model_device(self.model)) for t in example_inputs(size))
            with _EvalMode(self.model), torch.no_grad():
                _, _, layer_macs, _ = tp.utils.count_ops_and_params(self.model, inputs, layer_wise=True)
            leaves = [m for m in self.model.modules() if not list(m.children())]
            macs = {m: float(layer_macs.get(m) or 0.0) for m in leaves}
            params = {
                m: float(sum(p.numel() for p in m.parameters(recurse=False))) for m in self.model.modules()
            }
            self._costs[size] = (macs, params)
        return self._costs[size]

    def estimate(self, widths: Mapping[str, int], size: tuple[int, int]) -> dict[str, float]:
        """Params and MACs (at `size`, batch 1) the model would have after pruning to `widths`."""
        macs0, params0 = self._base_costs(size)
        out_frac: dict[nn.Module, float] = {}
        in_removed: dict[nn.Module, float] = {}
        for g in self.groups:
            n = g.info.out_channels
            keep = int(widths.get(g.info.name, n))
            if keep >= n:
                continue
            drop = (n - keep) / n
            for module, is_out, count in g.deps:
                if is_out:
                    out_frac[module] = out_frac.get(module, 1.0) * (1.0 - drop)
                else:
                    in_removed[module] = in_removed.get(module, 0.0) + count * drop
        total_macs = 0.0
        total_params = 0.0
        for module, p in params0.items():
            factor = self._factor(module, out_frac, in_removed)
            total_params += p * factor
            if module in macs0:
                total_macs += macs0[module] * factor
        for module, m in macs0.items():
            if module not in params0:
                total_macs += m
        return {"params": round(total_params), "macs": round(total_macs)}

    @staticmethod
    def _factor(
        module: nn.Module, out_frac: dict[nn.Module, float], in_removed: dict[nn.Module, float]
    ) -> float:
        fo = out_frac.get(module, 1.0)
        if module not in in_removed:
            return fo
        cin = getattr(module, "in_channels", None) or getattr(module, "in_features", None)
        if not cin:
            return fo
        groups = getattr(module, "groups", 1)
        if groups > 1 and groups == cin:  # depthwise: one input channel per output channel
            return fo
        return fo * max(0.0, 1.0 - in_removed[module] / cin)

    # ---- pruning ----------------------------------------------------------------------------------------
    def apply(self, widths: Mapping[str, int], scores: Mapping[str, np.ndarray]) -> None:
        """Prune `self.model` in place to `widths`, dropping the least important channels of each group."""
        if self._applied:
            raise StereoStudioError("this pruning graph was already applied; build a new one for the result")
        removed = self.removed_channels(widths, scores)
        self._applied = True
        for g in self.groups:
            g.full = None  # channel indices change from here on
            idxs = removed.get(g.info.name)
            if g.info.protected or idxs is None or len(idxs) == 0:
                continue
            group = self.DG.get_pruning_group(g.info.module, g.handler, [int(i) for i in idxs])
            group.prune()


def coupled_parameters(
    graph: PruningGraph, name: str, channels: Sequence[int]
) -> list[tuple[torch.Tensor, int, torch.Tensor, torch.Tensor]]:
    """Every parameter slice pruning `channels` of group `name` would remove, as (parameter, dim, indices
    along dim, position of each index's group channel in `channels`): output filters and biases of its
    convolutions, scales and shifts of its BatchNorms, input slices of the layers that read it."""
    g = next(g for g in graph.groups if g.info.name == name)
    group = graph.DG.get_pruning_group(g.info.module, g.handler, [int(c) for c in channels])
    where = {int(c): i for i, c in enumerate(channels)}
    out = []
    for i, (dep, idxs) in enumerate(group):
        module = dep.target.module
        if not isinstance(module, nn.Module) or not idxs:
            continue
        roots = group[i].root_idxs
        if any(r is None for r in roots):
            continue
        is_out = graph.DG.is_out_channel_pruning_fn(dep.handler)
        if not (is_out or graph.DG.is_in_channel_pruning_fn(dep.handler)):
            continue
        transposed = bool(getattr(module, "transposed", False))
        pos = torch.tensor([where[int(r)] for r in roots])
        if not is_out and getattr(module, "groups", 1) > 1:
            continue  # grouped readers: their input slices are not one row per channel
        for param in module.parameters(recurse=False):
            if param.dim() == 1 and not is_out:
                continue  # a bias / BN parameter follows the output channels only
            dim = 0 if param.dim() == 1 else (int(transposed) if is_out else int(not transposed))
            out.append((param, dim, torch.tensor([int(j) for j in idxs], device=param.device), pos))
    return out


# ---- module-level API ------------------------------------------------------------------------------------

_GRAPHS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, PruningGraph]] = weakref.WeakKeyDictionary()


def _signature(model: nn.Module) -> tuple:
    return tuple((n, tuple(p.shape)) for n, p in model.named_parameters())


def pruning_graph(model: nn.Module, example_size: tuple[int, int] = DEFAULT_EXAMPLE_SIZE) -> PruningGraph:
    """The (cached) `PruningGraph` of `model`; rebuilt when the model's shapes changed."""
    sig = _signature(model)
    cached = _GRAPHS.get(model)
    if cached is not None and cached[0] == sig:
        return cached[1]
    graph = PruningGraph(model, example_size)
    _GRAPHS[model] = (sig, graph)
    return graph


def prunable_layers(
    model: nn.Module, example_size: tuple[int, int] = DEFAULT_EXAMPLE_SIZE
) -> list[LayerInfo]:
    """Every channel group of `model` (named after its root layer), protected ones flagged with a reason."""
    return list(pruning_graph(model, example_size).layers)


def plan(
    model: nn.Module,
    ratio: float | None = None,
    ratios: Mapping[str, float] | None = None,
    allocation: str = "global",
    round_to: int | None = 8,
    criterion: str = "l1",
    calib_batches: Sequence[Any] | None = None,
    spare: Iterable[str] = (),
) -> PruningPlan:
    """The `PruningPlan` of `model` for a MAC target `ratio` and/or per-layer ratios (`PruningGraph.plan`)."""
    return pruning_graph(model).plan(ratio, ratios, allocation, round_to, criterion, calib_batches, spare)


def plan_widths(
    model: nn.Module,
    ratio: float | None = None,
    ratios: Mapping[str, float] | None = None,
    allocation: str = "global",
    round_to: int | None = 8,
    criterion: str = "l1",
    calib_batches: Sequence[Any] | None = None,
    spare: Iterable[str] = (),
) -> dict[str, int]:
    """Channels each prunable layer keeps under the given ratio(s); see `PruningGraph.plan`."""
    graph = pruning_graph(model)
    return graph.plan_widths(ratio, ratios, allocation, round_to, criterion, calib_batches, spare)


def estimate(
    model: nn.Module,
    ratio: float | None = None,
    ratios: Mapping[str, float] | None = None,
    size: tuple[int, int] = (240, 320),
    round_to: int | None = 8,
    allocation: str = "global",
    criterion: str = "l1",
    spare: Iterable[str] = (),
) -> dict[str, float]:
    """Params and MACs of `model` pruned at `ratio`/`ratios`, without pruning (fast once cached)."""
    graph = pruning_graph(model)
    if ratio is None and not ratios:
        return graph.estimate({}, size)
    widths = graph.plan_widths(ratio, ratios, allocation, round_to, criterion, spare=spare)
    return graph.estimate(widths, size)


def prune_model(
    model: nn.Module,
    ratio: float | None = None,
    ratios: Mapping[str, float] | None = None,
    criterion: str = "l1",
    round_to: int | None = 8,
    allocation: str = "global",
    calib_batches: Sequence[Any] | None = None,
    size: tuple[int, int] = DEFAULT_EXAMPLE_SIZE,
    spare: Iterable[str] = (),
) -> nn.Module:
    """A pruned deep copy of `model` (the original is untouched); `config["pruned_shapes"]` lists shapes and
    `meta["pruning"]` the plan (per-layer "removes k of n", achieved MAC reduction)."""
    pruned = copy.deepcopy(model)
    graph = PruningGraph(pruned, size)
    scores = graph.scores(criterion, calib_batches)
    the_plan = graph.plan(ratio, ratios, allocation, round_to, criterion, calib_batches, spare)
    widths = the_plan.widths
    before = {n: tuple(t.shape) for n, t in _tensors(pruned)}
    graph.apply(widths, scores)
    pruned.zero_grad(set_to_none=True)
    _check_custom_pruned(pruned, size)
    shapes = dict(getattr(model, "config", {}).get("pruned_shapes", {}))
    shapes.update({n: list(t.shape) for n, t in _tensors(pruned) if tuple(t.shape) != before.get(n)})
    config = dict(getattr(pruned, "config", {}) or {})
    config["pruned_shapes"] = shapes
    pruned.config = config
    pruned.meta = dict(getattr(model, "meta", {}) or {})
    pruned.meta["pruning"] = {
        "ratio": ratio,
        "ratios": dict(ratios or {}),
        "criterion": criterion,
        "round_to": round_to,
        "allocation": allocation,
        "spared": the_plan.spared,
        "macs_removed": round(the_plan.macs_removed, 4),
        "summary": the_plan.summary(),
        "layers": {lp.name: lp.describe() for lp in the_plan.layers},
        "widths": {k: int(v) for k, v in widths.items()},
    }
    return pruned


def _describe(model: nn.Module) -> str:
    """The class name, and for your own architecture the model.py it comes from (error messages)."""
    from stereo_studio.models.custom_arch import describe

    return describe(model)


def _check_custom_pruned(pruned: nn.Module, size: tuple[int, int]) -> None:
    """A pruned custom architecture must still run and return N x 1 x H x W (else one message naming its
    model.py: Torch-Pruning could not follow part of its graph)."""
    from stereo_studio.models.custom_arch import check_pruned, is_custom_model

    if is_custom_model(pruned):
        check_pruned(pruned, size)


def _tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    yield from model.state_dict(keep_vars=True).items()


def layer_widths(model: nn.Module) -> dict[str, int]:
    """Output width of every convolution / linear layer (to report widths after pruning)."""
    return {
        n: int(getattr(m, "out_channels", None) or m.out_features)
        for n, m in model.named_modules()
        if isinstance(m, ROOT_TYPES)
    }


def macs_params(model: nn.Module, size: tuple[int, int]) -> dict[str, int]:
    """Exact params and MACs of `model` at `size`: the one counter, `engine.bench.count_params_macs`."""
    from stereo_studio.engine.bench import count_params_macs

    params, macs = count_params_macs(model, size)
    return {"params": int(params), "macs": int(macs)}


RECALIBRATION_MAX_SIZE = (384, 512)  # pairs are cropped to at most this (and to their common size)


def _pair_tensors(item: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(left, right) N x 3 x H x W tensors of a StereoSample, a `sample_to_tensors` dict or a tuple."""
    if isinstance(item, dict):
        return item["left"], item["right"]
    if isinstance(item, tuple | list):
        return item[0], item[1]
    from stereo_studio.data.batches import sample_to_tensors

    tensors = sample_to_tensors(item)
    return tensors["left"], tensors["right"]


def recalibrate_bn(model: nn.Module, pairs: Iterable[Any], inplace: bool = False) -> nn.Module:
    """Re-estimate every BatchNorm's running statistics on `pairs` (StereoSamples, tensor dicts or
    (left, right, ...) tuples; no labels needed). The pairs are cropped to their common size (at most
    `RECALIBRATION_MAX_SIZE`, top-left) and run as ONE batch with the BatchNorms in train mode (momentum
    None, statistics reset) and everything else in eval mode: each BatchNorm's new statistics are then those
    of all the pairs' pixels together, normalised upstream exactly as they will be at inference. (Averaging
    per-pair statistics instead misses the spread between pairs: measured on the bundled student, 8
    synthetic pairs one by one raised the unpruned EPE 2.11 -> 2.75 px; as one batch 2.17, 16 pairs 2.13.)
    Returns the recalibrated model (a deep copy unless `inplace`), in eval mode."""
    tensors = [_pair_tensors(p) for p in pairs]
    if not tensors:
        raise StereoStudioError("BatchNorm recalibration needs at least one stereo pair")
    lefts, rights = [t[0] for t in tensors], [t[1] for t in tensors]
    h = min(min(t.shape[-2] for t in lefts), RECALIBRATION_MAX_SIZE[0])
    w = min(min(t.shape[-1] for t in lefts), RECALIBRATION_MAX_SIZE[1])
    net = model if inplace else copy.deepcopy(model)
    device = _model_device(net)
    left = torch.cat([t[..., :h, :w] for t in lefts]).to(device)
    right = torch.cat([t[..., :h, :w] for t in rights]).to(device)
    norms = [
        m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    momenta = [m.momentum for m in norms]
    net.eval()
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        with torch.no_grad():
            net(left, right)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        net.eval()
    return net


def prune_and_finetune(
    spec: str | Path,
    out: str | Path,
    ratio: float | None = None,
    ratios: Mapping[str, float] | None = None,
    criterion: str = "l1",
    round_to: int | None = 8,
    allocation: str = "global",
    finetune_steps: int = 0,
    teacher: str | None = None,
    data: str = "synthetic",
    size: tuple[int, int] = (240, 320),
    spare: Iterable[str] = (),
    recalibrate: int = 0,
    **train_overrides: Any,
) -> Job[Path]:
    """Load `spec`, prune it, optionally re-estimate its BatchNorm statistics on `recalibrate` pairs of
    `data`, save it to `out`, then optionally fine-tune it by distillation from `teacher`.

    Yields progress; returns the folder of the final model (the pruned one when `finetune_steps` is 0).
    """
    from stereo_studio.models.storage import save_model

    out = Path(out)
    from stereo_studio.models.storage import load_net

    yield Progress(0, None, f"loading {spec}", kind="log")
    model = load_net(spec)
    calib = None
    if criterion == "taylor":
        from stereo_studio.engine.importance import default_calib_batches

        calib = default_calib_batches(size=(min(size[0], 128), min(size[1], 160)))
    yield Progress(0, None, "pruning", kind="log")
    before = macs_params(model, size)
    pruned = prune_model(model, ratio, ratios, criterion, round_to, allocation, calib, spare=spare)
    if recalibrate > 0:
        from stereo_studio.engine.sweep import calibration_samples

        yield Progress(0, None, f"re-estimating BatchNorm statistics on {recalibrate} pairs", kind="log")
        max_disp = int(getattr(model, "config", {}).get("max_disp", 64))
        pairs = calibration_samples(data, recalibrate, size, max_disp)
        meta = pruned.meta
        pruned = recalibrate_bn(pruned, pairs, inplace=True)
        pruned.meta = {**meta, "bn_recalibrated": {"pairs": len(pairs), "data": str(data)}}
    after = macs_params(pruned, size)
    pruned_dir = out if finetune_steps <= 0 else out.parent / f"{out.name}-pruned"
    meta = {
        **{k: v for k, v in pruned.meta.items() if k != "pruning"},
        "source": str(spec),
        "params_before": before["params"],
        "params_after": after["params"],
        "macs_before": before["macs"],
        "macs_after": after["macs"],
        "size": list(size),
        "pruning": pruned.meta["pruning"],
    }
    save_model(pruned, pruned_dir, meta)
    yield Progress(
        1,
        None,
        f"pruned: {before['params']} -> {after['params']} params; {pruned.meta['pruning']['summary']}",
        kind="checkpoint",
        metrics={"params": after["params"], "macs": after["macs"]},
        payload=str(pruned_dir),
    )
    if finetune_steps <= 0:
        return pruned_dir
    from stereo_studio.engine.training import TrainConfig, train

    config = finetune_config(TrainConfig, pruned_dir, teacher, data, finetune_steps, train_overrides)
    run_dir = out.parent / f"{out.name}-run"
    result = yield from train(config, run_dir)
    shutil.copytree(Path(result), out, dirs_exist_ok=True)
    yield Progress(1, None, f"fine-tuned model saved to {out}", kind="done", payload=str(out))
    return out


# A short recovery fine-tune: lower learning rate than training from scratch, small crops, one validation.
FINETUNE_DEFAULTS: dict[str, Any] = {
    "lr": 5e-4,
    "batch_size": 2,
    "crop": (128, 256),
    "warmup_steps": 0,
    "val_pairs": 4,
}


def finetune_config(
    config_cls: Any, init_from: Path, teacher: str | None, data: str, steps: int, overrides: dict[str, Any]
) -> Any:
    """A `TrainConfig` for a distillation fine-tune of the model in `init_from` (fields the class has)."""
    import dataclasses

    wanted: dict[str, Any] = {
        **FINETUNE_DEFAULTS,
        "arch": None,
        "init_from": str(init_from),
        "teacher": teacher,
        "data": [data],
        "steps": int(steps),
        "val_interval": int(steps),
        "ckpt_interval": int(steps),
        "log_interval": max(1, min(10, int(steps))),
        **overrides,
    }
    known = {f.name for f in dataclasses.fields(config_cls)}
    missing = [k for k in ("init_from", "steps", "teacher") if k not in known]
    if missing:
        raise StereoStudioError(f"the training config has no field(s) {missing}; cannot fine-tune")
    return config_cls(**{k: v for k, v in wanted.items() if k in known})


__all__ = [
    "ALLOCATIONS",
    "LayerInfo",
    "LayerPlan",
    "PruningGraph",
    "PruningPlan",
    "allowed_widths",
    "coupled_parameters",
    "estimate",
    "finetune_config",
    "kept_channels",
    "layer_widths",
    "macs_params",
    "nearest_width",
    "plan",
    "plan_widths",
    "prunable_layers",
    "prune_and_finetune",
    "prune_model",
    "pruning_graph",
    "recalibrate_bn",
]
