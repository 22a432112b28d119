"""Both architectures: any input size, any max_disp, gradients reach every parameter, feature outputs."""

from __future__ import annotations

import copy

import pytest
import torch

from stereo_studio.errors import ModelError
from stereo_studio.models.registry import architecture_names, build_model, default_config

ARCHS = ["student", "teacher"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_registered():
    assert set(ARCHS) <= set(architecture_names())


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("size", "max_disp"), [((37, 53), 64), ((24, 40), 32), ((45, 61), 100)])
def test_output_shape_any_size(arch, size, max_disp):
    torch.manual_seed(0)
    model = build_model(default_config(arch, max_disp=max_disp)).eval()
    assert model.config["max_disp"] == max_disp and model.config["arch"] == arch
    left, right = torch.rand(2, 3, *size), torch.rand(2, 3, *size)
    with torch.no_grad():
        disp = model(left, right)
    assert disp.shape == (2, 1, *size)
    assert disp.dtype == torch.float32 and torch.isfinite(disp).all()
    assert disp.min() >= 0 and disp.max() <= max_disp + 4


def test_student_full_size_shape():
    model = build_model(default_config("student")).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 240, 320), torch.rand(1, 3, 240, 320)).shape == (1, 1, 240, 320)


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_reach_every_parameter(arch):
    torch.manual_seed(0)
    model = build_model(default_config(arch, max_disp=32)).train()
    disp, feats = model(torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48), return_features=True)
    (disp.mean() + sum(f.float().mean() for f in feats.values())).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert dead == []


@pytest.mark.parametrize("arch", ARCHS)
def test_return_features_common_keys(arch):
    model = build_model(default_config(arch, max_disp=32)).eval()
    with torch.no_grad():
        plain = model(torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48))
        disp, feats = model(torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48), return_features=True)
    assert isinstance(plain, torch.Tensor) and disp.shape == plain.shape
    assert {"left_quarter", "logits", "disp_quarter"} <= set(feats)
    assert feats["logits"].shape[1] == model.disparities
    assert feats["logits"].shape[-2:] == feats["left_quarter"].shape[-2:] == (8, 12)


@pytest.mark.parametrize("arch", ARCHS)
def test_prefers_right_shift(arch):
    """Untrained nets still see the cost volume: shifting the right view changes the output."""
    torch.manual_seed(0)
    model = build_model(default_config(arch, max_disp=32)).eval()
    left = torch.rand(1, 3, 32, 64)
    with torch.no_grad():
        a = model(left, torch.roll(left, -4, dims=-1))
        b = model(left, torch.roll(left, -12, dims=-1))
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("arch", ARCHS)
def test_bad_config_is_model_error(arch):
    with pytest.raises(ModelError, match="max_disp"):
        build_model(default_config(arch, max_disp=2))
    with pytest.raises(ModelError, match="feature_channels"):
        build_model(default_config(arch, feature_channels=[8]))
    with pytest.raises(ModelError, match="does not fit"):
        build_model({**default_config(arch), "no_such_knob": 1})


def test_lean_student_drops_the_half_resolution_blocks(tmp_path):
    """half_block / refine_block False remove the 1/2-res residual blocks (fewer slow thin layers); the model
    still prunes, saves and loads, and configs written before these keys build the full student."""
    from stereo_studio.engine.pruning import macs_params, prune_model
    from stereo_studio.models.storage import load_net, save_model

    full = build_model(default_config("student", max_disp=32))
    lean = build_model(default_config("student", max_disp=32, half_block=False, refine_block=False))
    assert isinstance(lean.features.res2, torch.nn.Identity) and isinstance(lean.refine, torch.nn.Identity)
    assert macs_params(lean, (64, 96))["macs"] < macs_params(full, (64, 96))["macs"]
    x = torch.rand(1, 3, 64, 96)
    assert lean.eval()(x, x).shape == (1, 1, 64, 96)
    pruned = prune_model(lean, 0.5, criterion="l1", round_to=8).eval()
    save_model(pruned, tmp_path / "lean")
    again = load_net(str(tmp_path / "lean")).eval()
    assert again.config["half_block"] is False and again.config["refine_block"] is False
    torch.testing.assert_close(again(x, x), pruned(x, x))
    old = {k: v for k, v in full.config.items() if k not in ("half_block", "refine_block")}
    assert isinstance(build_model(old).features.res2, torch.nn.Module) and not isinstance(
        build_model(old).refine, torch.nn.Identity)


def test_convex_student_starts_as_the_bilinear_one_and_learns_its_mask(tmp_path):
    """upsample="convex": a trained bilinear student's weights load with only the mask conv new, and the
    network then gives the same disparity (the mask starts as bilinear interpolation); the mask gets
    gradients, keeps its 36 outputs when pruned, and the model saves and loads."""
    import torch.nn.functional as F

    from stereo_studio.engine.pruning import prune_model
    from stereo_studio.models.layers import bilinear_mask_logits, convex_upsample
    from stereo_studio.models.storage import load_net, save_model

    coarse = torch.rand(2, 1, 5, 7) * 20
    mask = bilinear_mask_logits(2).view(1, 36, 1, 1).expand(2, 36, 5, 7)
    torch.testing.assert_close(convex_upsample(coarse, mask, 2, replicate=True),
                               F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False),
                               atol=1e-3, rtol=0)
    torch.manual_seed(0)
    bilinear = build_model(default_config("student", max_disp=32)).eval()
    convex = build_model({**bilinear.config, "upsample": "convex"}).eval()
    keys = convex.load_state_dict(bilinear.state_dict(), strict=False)
    assert set(keys.missing_keys) == {"up_mask.weight", "up_mask.bias"} and not keys.unexpected_keys
    x, y = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(convex(x, y), bilinear(x, y), atol=1e-3, rtol=0)
    convex.train()
    convex(x, y).mean().backward()
    assert convex.up_mask.weight.grad is not None and convex.up_mask.weight.grad.abs().sum() > 0
    pruned = prune_model(convex.eval(), 0.5, criterion="l1", round_to=8).eval()
    assert pruned.up_mask.out_channels == 36 and pruned.up_mask.in_channels < 16
    save_model(pruned, tmp_path / "convex")
    again = load_net(str(tmp_path / "convex")).eval()
    assert again.config["upsample"] == "convex"
    torch.testing.assert_close(again(x, y), pruned(x, y))
    with pytest.raises(ModelError, match="upsample"):
        build_model(default_config("student", upsample="nearest"))


def test_warp_error_refinement_starts_where_the_student_was(tmp_path):
    """refine_warp: the refinement also takes |left - right warped by the disparity| of the 1/2-res features.
    Its conv starts at zero (same disparity as before), learns, and the warp path is invisible to pruning:
    the 1/2-res features prune exactly as without it."""
    from stereo_studio.engine.pruning import prune_model
    from stereo_studio.models.layers import warp_error
    from stereo_studio.models.storage import load_net, save_model

    feats = torch.rand(1, 4, 6, 12)
    shifted = torch.roll(feats, shifts=-2, dims=-1)  # the right view: content 2 px further left
    error = warp_error(feats, shifted, torch.full((1, 1, 6, 12), 2.0))
    assert float(error[..., 2:].abs().max()) < 1e-6 and error.shape == (1, 1, 6, 12)
    torch.manual_seed(0)
    plain = build_model(default_config("student", max_disp=32)).eval()
    warp = build_model({**plain.config, "refine_warp": True}).eval()
    keys = warp.load_state_dict(plain.state_dict(), strict=False)
    assert keys.missing_keys == ["refine_in.convs.2.weight"] and not keys.unexpected_keys
    x, y = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(warp(x, y), plain(x, y))
    trained = copy.deepcopy(warp).train()  # a train-mode forward moves BatchNorm statistics: on a copy
    trained(x, y).mean().backward()
    assert trained.refine_in.convs[2].weight.grad.abs().sum() > 0
    pruned_warp = prune_model(warp.eval(), 0.75, criterion="l1", round_to=8).eval()
    pruned_plain = prune_model(plain, 0.75, criterion="l1", round_to=8).eval()
    assert pruned_warp.features.stem[0].out_channels == pruned_plain.features.stem[0].out_channels < 16
    with torch.no_grad():
        torch.testing.assert_close(pruned_warp(x, y), pruned_plain(x, y))
    save_model(pruned_warp, tmp_path / "warp")
    assert load_net(str(tmp_path / "warp")).config["refine_warp"] is True



def test_windowed_regression_takes_the_stronger_mode(tmp_path):
    """regression_window R: the 1/4-res soft-argmin over the peak +- R only. On a two-mode distribution (a
    pixel beside a depth edge) it returns the stronger mode where the full expectation lands between the two;
    with R covering every index it is the full soft-argmin. Weightless: it saves, loads, reaches a pruned
    student."""
    import subprocess
    import sys
    from pathlib import Path

    from stereo_studio.engine.pruning import prune_model
    from stereo_studio.models.layers import soft_argmin, windowed_soft_argmin
    from stereo_studio.models.storage import load_net, save_model

    logits = torch.full((1, 16, 1, 2), -20.0)
    logits[0, 3, 0, :] = 4.0   # background, weaker
    logits[0, 12, 0, :] = 5.0  # foreground, stronger
    logits[0, 11, 0, 1] = 4.5  # a shoulder inside the window of the stronger mode
    full, window = soft_argmin(logits), windowed_soft_argmin(logits, 2)
    assert 7.0 < float(full[0, 0, 0, 0]) < 10.0  # between the two surfaces
    assert float(window[0, 0, 0, 0]) == pytest.approx(12.0, abs=1e-4)
    assert 11.0 < float(window[0, 0, 0, 1]) < 12.0
    torch.testing.assert_close(windowed_soft_argmin(logits, 15), full)
    with pytest.raises(ModelError, match="regression_window"):
        build_model(default_config("student", regression_window=-1))
    torch.manual_seed(0)
    plain = build_model(default_config("student", max_disp=32)).eval()
    assert plain.config["regression_window"] == 0
    windowed = build_model({**plain.config, "regression_window": 1}).eval()
    windowed.load_state_dict(plain.state_dict())  # no weights of its own
    x, y = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert not torch.allclose(windowed(x, y), plain(x, y))
    trained = copy.deepcopy(windowed).train()
    trained(x, y).mean().backward()
    assert trained.head.weight.grad.abs().sum() > 0
    save_model(prune_model(plain, 0.5, criterion="l1", round_to=8), tmp_path / "pruned")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(root / "models" / "with_options.py"), str(tmp_path / "pruned"),
                           str(tmp_path / "pruned-window"), "regression_window=2"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = load_net(str(tmp_path / "pruned-window"))
    assert loaded.config["regression_window"] == 2 and loaded.regression_window == 2
    source = load_net(str(tmp_path / "pruned"))
    torch.testing.assert_close(loaded.state_dict(), source.state_dict())
    source.regression_window = 2
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, y), source(x, y))


@pytest.mark.parametrize("arch", ["teacher", "student"])
def test_views_batched_in_inference_only(arch):
    """In inference both views go through the feature extractor as one batch, with the same result as one by
    one; in training, under autograd (pruning traces the graph so) or with BatchNorm in train mode, one by
    one (each view keeps its own batch statistics)."""
    torch.manual_seed(0)
    model = build_model(default_config(arch, max_disp=32)).eval()
    calls: list[int] = []
    model.features.register_forward_hook(lambda _m, inputs, _o: calls.append(inputs[0].shape[0]))
    left, right = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        batched = model(left, right)
    assert calls == [4]
    calls.clear()
    with torch.enable_grad():
        alone = model(left, right).detach()
    assert calls == [2, 2]
    assert torch.allclose(batched, alone, atol=1e-5)
    calls.clear()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.train()
    with torch.no_grad():
        model(left, right)
    assert calls == [2, 2]
