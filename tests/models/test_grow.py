"""Function-preserving growth: the wide model (or one with an added identity stage) predicts what the old one
did, learns with its new channels, and a change that would alter the predictions is refused clearly."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from stereo_studio.engine.pruning import prune_model
from stereo_studio.errors import ModelError
from stereo_studio.models.grow import grow_model
from stereo_studio.models.registry import build_model, default_config
from stereo_studio.models.storage import save_model

TINY_TEACHER = {"max_disp": 16, "feature_channels": [8, 16], "feature_blocks": 1, "gwc_channels": 16,
                "groups": 4, "agg_channels": 8, "hourglass_channels": 8, "agg_layers": 2, "mask_channels": 16}
WIDER_TEACHER = {"feature_channels": [12, 24], "gwc_channels": 32, "groups": 8, "agg_channels": 16,
                 "hourglass_channels": 16, "mask_channels": 24}
TINY_STUDENT = {"max_disp": 16, "feature_channels": [8, 8], "corr_channels": 8, "ctx_channels": 8,
                "agg_channels": 16, "agg_blocks": 1, "low_res_channels": 16, "refine_channels": 8}


def _trained_like(arch: str, config: dict) -> torch.nn.Module:
    """A model whose BatchNorm statistics are not the defaults (two training-mode passes), in eval mode."""
    torch.manual_seed(0)
    model = build_model(default_config(arch, **config)).train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(2, 3, 32, 64), torch.rand(2, 3, 32, 64))
    return model.eval()


def _predict(model: torch.nn.Module, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    left, right = (torch.rand(1, 3, 48, 80, generator=generator) for _ in range(2))
    with torch.no_grad():
        return model.eval()(left, right)


@pytest.mark.parametrize(("arch", "config", "wider"), [
    ("teacher", TINY_TEACHER, WIDER_TEACHER),
    ("student", TINY_STUDENT, {"feature_channels": [16, 16], "ctx_channels": 16, "agg_channels": 24,
                               "low_res_channels": 32, "refine_channels": 16}),
])
def test_the_wide_model_predicts_what_the_old_one_did(arch, config, wider) -> None:
    old = _trained_like(arch, config)
    wide = grow_model(old, wider)
    assert sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in old.parameters())
    assert {k: wide.config[k] for k in wider} == wider
    torch.testing.assert_close(_predict(wide), _predict(old), rtol=0, atol=1e-4)


@pytest.mark.parametrize(("option", "output"),
                         [("refine_channels", "refine_out"), ("cascade_channels", "cascade_out")])
def test_a_teacher_given_a_stage_predicts_the_same_and_the_stage_learns(option, output) -> None:
    old = _trained_like("teacher", TINY_TEACHER)
    grown = grow_model(old, {option: 8})
    assert grown.config[option] == 8 and getattr(grown, output) is not None
    torch.testing.assert_close(_predict(grown), _predict(old), rtol=0, atol=1e-4)
    grown.train()
    grown(torch.rand(2, 3, 32, 64), torch.rand(2, 3, 32, 64)).mean().backward()
    assert getattr(grown, output).weight.grad.abs().sum() > 0  # the zero conv learns, then the rest


def test_a_trained_cascade_stage_changes_the_output_and_prunes() -> None:
    grown = grow_model(_trained_like("teacher", TINY_TEACHER), {"cascade_channels": 8})
    before = _predict(grown)
    with torch.no_grad():
        grown.cascade_out.weight.normal_(0, 0.1)  # as after training
    moved = _predict(grown)
    assert (moved - before).abs().max() > 1e-3
    pruned = prune_model(copy.deepcopy(grown).eval(), 0.5)
    assert _predict(pruned).shape == moved.shape


def test_the_new_channels_learn() -> None:
    """The zeroed weights from new channels into old ones get gradients: training can open them."""
    wide = grow_model(_trained_like("teacher", TINY_TEACHER), WIDER_TEACHER).train()
    left, right = torch.rand(2, 3, 32, 64), torch.rand(2, 3, 32, 64)
    wide(left, right).mean().backward()
    grad = wide.agg[0][0].weight.grad  # first 3D layer: inputs 4.. are the new correlation groups
    assert grad[: TINY_TEACHER["agg_channels"], TINY_TEACHER["groups"]:].abs().sum() > 0


@pytest.mark.parametrize(("change", "message"), [
    ({"gwc_channels": 32}, "alters what the model computes"),  # 8 channels per group instead of 4
    ({"agg_layers": 3}, "alters what the model computes"),  # a new 3D layer, not an identity at the start
    ({"agg_channels": 4}, "shrink"),
    ({"max_disp": 32}, "max_disp cannot change"),
    ({"agg_width": 32}, "no config key agg_width"),
])
def test_changes_that_would_alter_the_model_are_refused(change, message) -> None:
    with pytest.raises(ModelError, match=message):
        grow_model(_trained_like("teacher", TINY_TEACHER), change)


def test_a_pruned_model_is_refused() -> None:
    model = _trained_like("teacher", TINY_TEACHER)
    model.config = {**model.config, "pruned_shapes": {"agg.0.0.weight": [4, 4, 3, 3, 3]}}
    with pytest.raises(ModelError, match="pruned model cannot be grown"):
        grow_model(model, {"agg_channels": 16})


def test_cli_training_from_a_model_with_wider_widths(tmp_path) -> None:
    from stereo_studio.cli import main

    save_model(_trained_like("teacher", TINY_TEACHER), tmp_path / "small")
    small = str(tmp_path / "small")
    assert main(["train", "--init-from", small, "--model-config", json.dumps(WIDER_TEACHER), "--steps", "1",
                 "--batch-size", "1", "--crop", "32x64", "--synthetic-size", "40x80", "--val-pairs", "1",
                 "--precision", "fp32", "--threads", "1", "--out", str(tmp_path / "run")]) == 0
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert {k: saved[k] for k in WIDER_TEACHER} == WIDER_TEACHER
    assert main(["train", "--init-from", small, "--model-config", '{"gwc_channels": 32}',
                 "--steps", "1", "--out", str(tmp_path / "bad")]) != 0
