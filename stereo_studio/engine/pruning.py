"""Structured channel pruning with Torch-Pruning's DependencyGraph.

A `PruningGraph` traces a model once and lists its prunable groups (coupled channels: a convolution's output,
the BN after it, the convolutions that read it, residual partners...), each named after its root layer.
Protected layers keep their output width: those the architecture declares in `pruning_ignored_layers()` and
the network's last layer, found automatically. A *plan* is the number of channels each group keeps
(`plan_widths`); `estimate` turns a plan into params / MACs analytically (no forward pass, ~1 ms), and
`prune_model` returns a physically smaller deep copy whose `config["pruned_shapes"]` records the new shapes.
"""

from __future__ import annotations

import copy
import shutil
import warnings
import weakref
from collections.abc import Iterator, Mapping, Sequence
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
DEFAULT_EXAMPLE_SIZE = (64, 128)
MAX_RATIO = 0.9  # a group never loses more than this fraction of its channels


@dataclass
class LayerInfo:
    """One prunable group, named after its root layer. `members`: layers whose width follows it."""

    name: str
    module: nn.Module
    out_channels: int
    protected: bool
    members: list[str] = field(default_factory=list)


@dataclass
class _Group:
    info: LayerInfo
    handler: Any
    # (module, is_out, channels of that module in the group): how each member's width follows the group
    deps: list[tuple[nn.Module, bool, int]]
    full: Any = None  # the Torch-Pruning group over all channels (for importance), valid until pruning


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


def kept_channels(n: int, ratio: float, round_to: int | None = 8, max_ratio: float = MAX_RATIO) -> int:
    """Channels a group of `n` keeps when pruned at `ratio`, rounded down to a multiple of `round_to`.

    Never below `round_to` (unless the group is smaller) and never below (1 - max_ratio) * n.
    """
    if not 0.0 <= ratio < 1.0:
        raise StereoStudioError(f"pruning ratio must be in [0, 1), got {ratio}")
    ratio = min(ratio, max_ratio)
    keep = int(n * (1.0 - ratio) + 1e-9)
    if round_to and round_to > 1:
        keep -= keep % round_to
        keep = max(keep, min(n, round_to))
    return max(1, min(n, keep))


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
                f"Torch-Pruning could not trace {type(model).__name__}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            for h in hooks:
                h.remove()
        self.names = {m: n for n, m in model.named_modules()}
        declared = list(model.pruning_ignored_layers()) if hasattr(model, "pruning_ignored_layers") else []
        self.protected_modules: set[nn.Module] = {sub for m in declared for sub in m.modules()}
        if order:  # the last layer run produces the output: its width is the output's
            self.protected_modules.add(order[-1])
        self.groups: list[_Group] = []
        self.layers: list[LayerInfo] = []
        self._scores: dict[tuple, dict[str, np.ndarray]] = {}
        self._applied = False
        self._costs: dict[tuple[int, int], tuple[dict[nn.Module, float], dict[nn.Module, float]]] = {}
        self._collect_groups()

    def _collect_groups(self) -> None:
        seen: set[nn.Module] = set()
        for group in self.DG.get_all_groups(ignored_layers=[], root_module_types=ROOT_TYPES):
            root = group[0].dep.target.module
            if root in seen:
                continue
            deps: list[tuple[nn.Module, bool, int]] = []
            members: list[str] = []
            protected = False
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
                    protected = True  # the graph lost the channel mapping (reshape / grouped view): leave it
                if is_out and isinstance(module, ROOT_TYPES):
                    seen.add(module)
                    members.append(self.names.get(module, "?"))
                    protected = protected or module in self.protected_modules
            info = LayerInfo(
                name=self.names.get(root, "?"),
                module=root,
                out_channels=int(self.DG.get_out_channels(root)),
                protected=protected,
                members=members,
            )
            self.layers.append(info)
            self.groups.append(_Group(info=info, handler=group[0].dep.handler, deps=deps, full=group))

    # ---- importance -------------------------------------------------------------------------------------
    @property
    def prunable(self) -> list[LayerInfo]:
        return [g.info for g in self.groups if not g.info.protected]

    def scores(
        self, criterion: str = "l1", calib_batches: Sequence[Any] | None = None
    ) -> dict[str, np.ndarray]:
        """Per-channel importance of every group (protected ones too), cached per criterion."""
        from stereo_studio.engine.importance import group_scores

        # weights edited in place bump their tensors' version counters: stale scores are never returned
        version = tuple(p._version for p in self.model.parameters())
        key = (criterion, id(calib_batches) if criterion == "taylor" else None, version)
        if key not in self._scores:
            if len(self._scores) >= 8:
                self._scores.clear()
            self._scores[key] = group_scores(self, criterion, calib_batches)
        return self._scores[key]

    def root_name(self, name: str) -> str:
        """The group a layer name belongs to (a root or a coupled member); ModelError if protected/unknown."""
        for g in self.groups:
            if name == g.info.name or name in g.info.members:
                if g.info.protected:
                    raise ModelError(f"layer '{name}' is protected: its width is fixed by the architecture")
                return g.info.name
        if any(name == self.names.get(m) for m in self.protected_modules):
            raise ModelError(f"layer '{name}' is protected: its width is fixed by the architecture")
        known = ", ".join(i.name for i in self.prunable)
        raise ModelError(f"no prunable layer named '{name}' (prunable: {known})")

    # ---- planning ---------------------------------------------------------------------------------------
    def plan_widths(
        self,
        ratio: float | None = None,
        ratios: Mapping[str, float] | None = None,
        global_ranking: bool = False,
        round_to: int | None = 8,
        criterion: str = "l1",
        calib_batches: Sequence[Any] | None = None,
    ) -> dict[str, int]:
        """Channels kept per prunable group: one `ratio` for all, a per-layer `ratios` mapping (others keep
        `ratio`, or stay whole), or with `global_ranking` one threshold on normalised
        importance across layers."""
        if ratio is None and not ratios:
            raise StereoStudioError("give a pruning ratio or a per-layer ratio mapping")
        ratios = {self.root_name(name): float(r) for name, r in (ratios or {}).items()}
        widths: dict[str, int] = {}
        if global_ranking and ratio:
            widths = self._global_widths(ratio, round_to, criterion, calib_batches)
        for info in self.prunable:
            r = ratios.get(info.name, None if global_ranking else ratio)
            if r is not None:
                widths[info.name] = kept_channels(info.out_channels, float(r), round_to)
            widths.setdefault(info.name, info.out_channels)
        return widths

    def _global_widths(
        self, ratio: float, round_to: int | None, criterion: str, calib_batches: Sequence[Any] | None
    ) -> dict[str, int]:
        scores = self.scores(criterion, calib_batches)
        layers = self.prunable
        if not layers:
            return {}
        comparable = criterion in ("bn", "lamp")  # already on one scale across layers
        normed = {
            info.name: scores[info.name]
            if comparable
            else scores[info.name] / max(scores[info.name].mean(), 1e-12)
            for info in layers
        }
        everything = np.concatenate(list(normed.values()))
        n_remove = len(everything) - int(len(everything) * (1.0 - ratio) + 1e-9)
        widths: dict[str, int] = {}
        if n_remove <= 0:
            return {info.name: info.out_channels for info in layers}
        threshold = np.partition(everything, n_remove - 1)[n_remove - 1]
        for info in layers:
            n = info.out_channels
            removed = int(np.count_nonzero(normed[info.name] <= threshold))
            widths[info.name] = kept_channels(n, min(removed / n, MAX_RATIO), round_to)
        return widths

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
    """Every channel group of `model` (named after its root layer), protected ones flagged."""
    return list(pruning_graph(model, example_size).layers)


def plan_widths(
    model: nn.Module,
    ratio: float | None = None,
    ratios: Mapping[str, float] | None = None,
    global_ranking: bool = False,
    round_to: int | None = 8,
    criterion: str = "l1",
    calib_batches: Sequence[Any] | None = None,
) -> dict[str, int]:
    """Channels each prunable layer keeps under the given ratio(s); see `PruningGraph.plan_widths`."""
    return pruning_graph(model).plan_widths(ratio, ratios, global_ranking, round_to, criterion, calib_batches)


def estimate(
    model: nn.Module,
    ratio: float | None = None,
    ratios: Mapping[str, float] | None = None,
    size: tuple[int, int] = (240, 320),
    round_to: int | None = 8,
    global_ranking: bool = False,
    criterion: str = "l1",
) -> dict[str, float]:
    """Params and MACs of `model` pruned at `ratio`/`ratios`, without pruning (fast once cached)."""
    graph = pruning_graph(model)
    if ratio is None and not ratios:
        return graph.estimate({}, size)
    widths = graph.plan_widths(ratio, ratios, global_ranking, round_to, criterion)
    return graph.estimate(widths, size)


def prune_model(
    model: nn.Module,
    ratio: float | None = None,
    ratios: Mapping[str, float] | None = None,
    criterion: str = "l1",
    round_to: int | None = 8,
    global_ranking: bool = False,
    calib_batches: Sequence[Any] | None = None,
    size: tuple[int, int] = DEFAULT_EXAMPLE_SIZE,
) -> nn.Module:
    """A pruned deep copy of `model` (the original is untouched); `config["pruned_shapes"]` lists shapes."""
    pruned = copy.deepcopy(model)
    graph = PruningGraph(pruned, size)
    scores = graph.scores(criterion, calib_batches)
    widths = graph.plan_widths(ratio, ratios, global_ranking, round_to, criterion, calib_batches)
    before = {n: tuple(t.shape) for n, t in _tensors(pruned)}
    graph.apply(widths, scores)
    pruned.zero_grad(set_to_none=True)
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
        "global_ranking": global_ranking,
        "widths": {k: int(v) for k, v in widths.items()},
    }
    return pruned


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
    """Exact params and MACs of `model` at `size` (one counting forward pass)."""
    inputs = tuple(t.to(_model_device(model)) for t in example_inputs(size))
    with _EvalMode(model), torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(model, inputs)
    return {"params": int(params), "macs": int(macs)}


def load_net(spec: str | Path | nn.Module) -> nn.Module:
    """A torch model for a spec: a model already built, a bundled name or model folder, or an architecture
    name (untrained, default config). `sgbm` is refused: it is not a network."""
    if isinstance(spec, nn.Module):
        return spec
    from stereo_studio.models.registry import architecture_names, build_model, default_config
    from stereo_studio.models.storage import load_model, resolve_model

    text = str(spec).strip()
    if text.lower() == "sgbm":
        raise ModelError(
            "'sgbm' is OpenCV's semi-global matcher, not a network: it has no channels to prune or export"
        )
    if resolve_model(text) is None and text in architecture_names():
        return build_model(default_config(text)).eval()
    return load_model(text)


def prune_and_finetune(
    spec: str | Path,
    out: str | Path,
    ratio: float | None = None,
    ratios: Mapping[str, float] | None = None,
    criterion: str = "l1",
    round_to: int | None = 8,
    global_ranking: bool = False,
    finetune_steps: int = 0,
    teacher: str | None = None,
    data: str = "synthetic",
    size: tuple[int, int] = (240, 320),
    **train_overrides: Any,
) -> Job[Path]:
    """Load `spec`, prune it, save it to `out`, then optionally fine-tune it by distillation from `teacher`.

    Yields progress; returns the folder of the final model (the pruned one when `finetune_steps` is 0).
    """
    from stereo_studio.models.storage import save_model

    out = Path(out)
    yield Progress(0, None, f"loading {spec}", kind="log")
    model = load_net(spec)
    calib = None
    if criterion == "taylor":
        from stereo_studio.engine.importance import default_calib_batches

        calib = default_calib_batches(size=(min(size[0], 128), min(size[1], 160)))
    yield Progress(0, None, "pruning", kind="log")
    before = macs_params(model, size)
    pruned = prune_model(model, ratio, ratios, criterion, round_to, global_ranking, calib)
    after = macs_params(pruned, size)
    pruned_dir = out if finetune_steps <= 0 else out.parent / f"{out.name}-pruned"
    meta = {
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
        f"pruned: {before['params']} -> {after['params']} params",
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
    "LayerInfo",
    "PruningGraph",
    "estimate",
    "finetune_config",
    "kept_channels",
    "layer_widths",
    "load_net",
    "macs_params",
    "plan_widths",
    "prunable_layers",
    "prune_and_finetune",
    "prune_model",
    "pruning_graph",
]
