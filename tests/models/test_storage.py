"""Saving and loading models: exact round trips, pruned widths, refusals with clear errors, matcher specs."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch_pruning as tp

from stereo_studio.errors import ModelError
from stereo_studio.models import storage
from stereo_studio.models.matchers import NetMatcher, SGBMMatcher
from stereo_studio.models.registry import build_model, default_config
from stereo_studio.models.storage import (
    bundled_model_names,
    load_matcher,
    load_model,
    resolve_model,
    save_model,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _trained_like(arch: str, **overrides) -> torch.nn.Module:
    """A model whose BN statistics and weights are not the defaults (so a round trip proves something)."""
    torch.manual_seed(0)
    model = build_model(default_config(arch, **overrides)).train()
    with torch.no_grad():
        model(torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48))
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


def _pair(seed: int = 1, size=(37, 53)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, *size, generator=g), torch.rand(1, 3, *size, generator=g)


@pytest.mark.parametrize("arch", ["student", "teacher"])
def test_round_trip_exact(tmp_path, arch):
    model = _trained_like(arch, max_disp=32)
    folder = save_model(model, tmp_path / "m", meta={"steps": 3})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["arch"] == arch and config["max_disp"] == 32 and config["meta"] == {"steps": 3}
    assert "pruned_shapes" not in config
    for spec in (folder, folder / "config.json", folder / "model.safetensors", str(folder)):
        loaded = load_model(spec)
        assert not loaded.training and loaded.meta == {"steps": 3}
        left, right = _pair()
        with torch.no_grad():
            assert torch.equal(model(left, right), loaded(left, right))


def _pruned_student() -> torch.nn.Module:
    model = _trained_like("student", max_disp=32)
    example = (torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tp.pruner.MagnitudePruner(
            model, example, importance=tp.importance.MagnitudeImportance(p=2), pruning_ratio=0.5,
            ignored_layers=model.pruning_ignored_layers(),
        ).step()
    return model.eval()


def test_pruned_round_trip_in_fresh_process(tmp_path):
    model = _pruned_student()
    folder = save_model(model, tmp_path / "pruned")
    shapes = json.loads((folder / "config.json").read_text())["pruned_shapes"]
    assert shapes["agg_in.0.weight"][0] < default_config("student")["agg_channels"]
    left, right = _pair()
    with torch.no_grad():
        expected = model(left, right)
    torch.save({"left": left, "right": right, "expected": expected}, tmp_path / "io.pt")
    code = (
        "import sys, torch\n"
        "from stereo_studio.models.storage import load_model\n"
        "io = torch.load(sys.argv[2], weights_only=True)\n"
        "m = load_model(sys.argv[1])\n"
        "with torch.no_grad(): out = m(io['left'], io['right'])\n"
        "assert torch.equal(out, io['expected']), (out - io['expected']).abs().max()\n"
        "print('ok', sum(p.numel() for p in m.parameters()))\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(folder), str(tmp_path / "io.pt")], cwd=REPO,
                         capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": ""})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["ok", str(sum(p.numel() for p in model.parameters()))]


def test_resave_loaded_pruned_model(tmp_path):
    folder = save_model(_pruned_student(), tmp_path / "a")
    again = save_model(load_model(folder), tmp_path / "b")
    a = json.loads((folder / "config.json").read_text())
    b = json.loads((again / "config.json").read_text())
    assert a["pruned_shapes"] == b["pruned_shapes"]


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    model = _trained_like("student", max_disp=32)
    save_model(model, tmp_path)
    save_model(model, tmp_path)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


@pytest.fixture
def saved(tmp_path) -> Path:
    return save_model(_trained_like("student", max_disp=32), tmp_path / "m")


def test_refuses_truncated_weights(saved):
    data = (saved / "model.safetensors").read_bytes()
    (saved / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"model\.safetensors"):
        load_model(saved)


def test_refuses_garbage_weights(saved):
    (saved / "model.safetensors").write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(ModelError, match="corrupt"):
        load_model(saved)


def test_refuses_bad_json(saved):
    (saved / "config.json").write_text('{"arch": "student", ')
    with pytest.raises(ModelError, match=r"bad JSON in .*config\.json"):
        load_model(saved)


def test_refuses_unknown_arch(saved):
    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps({**config, "arch": "psmnet"}))
    with pytest.raises(ModelError, match="unknown architecture 'psmnet'"):
        load_model(saved)


def test_refuses_mismatched_shapes(saved):
    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps({**config, "agg_channels": 32}))
    with pytest.raises(ModelError, match=r"shape mismatches \(agg_in\.0\.weight: file \(48, 24, 3, 3\)"):
        load_model(saved)


def test_refuses_missing_and_unexpected_keys(saved):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(saved / "model.safetensors"))
    tensors["extra.weight"] = tensors.pop("head.weight")
    save_file(tensors, str(saved / "model.safetensors"))
    with pytest.raises(ModelError, match=r"1 missing \(head\.weight\), 1 unexpected \(extra\.weight\)"):
        load_model(saved)


def test_refuses_missing_folder(tmp_path):
    with pytest.raises(ModelError, match="no model at"):
        load_model(tmp_path / "nothing")


@pytest.fixture
def bundled(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "models"
    save_model(_trained_like("student", max_disp=32), root / "student")
    (root / "empty").mkdir()
    monkeypatch.setenv("STEREO_STUDIO_MODELS", str(root))
    return root


def test_bundled_names_and_resolution(bundled):
    assert bundled_model_names() == ["student"]
    assert resolve_model("student") == bundled / "student"
    assert resolve_model(str(bundled / "student" / "config.json")) == bundled / "student"
    assert resolve_model("teacher") is None


def test_default_models_dir_is_package_data(monkeypatch):
    monkeypatch.delenv("STEREO_STUDIO_MODELS", raising=False)
    assert storage.models_dir() == REPO / "stereo_studio" / "models" / "bundled"


def test_bundled_models_are_package_data(monkeypatch):
    """The weights are inside the package and pyproject declares them, so a wheel carries them."""
    import fnmatch
    import tomllib
    from importlib.resources import files

    monkeypatch.delenv("STEREO_STUDIO_MODELS", raising=False)
    bundled = files("stereo_studio.models") / "bundled"
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = declared["stereo_studio.models"]
    for name in storage.BUNDLED_MODELS:
        for file in ("config.json", "model.safetensors", "card.md", "training.json"):
            assert (bundled / name / file).is_file(), f"{name}/{file} is not in the package"
            assert any(fnmatch.fnmatch(f"bundled/{name}/{file}", p) for p in patterns), f"{name}/{file}"
    assert bundled_model_names() == sorted(storage.BUNDLED_MODELS)
    assert load_matcher("student-pruned").name == "student-pruned"


def test_bundled_name_with_missing_files_is_an_error_not_untrained(tmp_path, monkeypatch):
    root = tmp_path / "models"
    monkeypatch.setenv("STEREO_STUDIO_MODELS", str(root))
    with pytest.raises(ModelError, match=r"bundled model 'student' is missing.*config\.json.*arch:student"):
        load_matcher("student")
    with pytest.raises(ModelError, match=r"bundled model 'student-pruned' is missing"):
        load_model("student-pruned")
    (tmp_path / "student").mkdir()  # a folder of that name elsewhere is not the bundled model
    monkeypatch.chdir(tmp_path)
    assert resolve_model("student") is None
    save_model(_trained_like("student", max_disp=32), root / "student")
    (root / "student" / "model.safetensors").unlink()
    with pytest.raises(ModelError, match=r"bundled model 'student' is missing.*student/model\.safetensors"):
        load_matcher("student")
    from stereo_studio.models.storage import load_net

    with pytest.raises(ModelError, match="bundled model 'teacher' is missing"):
        load_net("teacher")
    assert load_net("arch:teacher").config["arch"] == "teacher"


def test_untrained_architectures_are_asked_for_explicitly(tmp_path, monkeypatch):
    monkeypatch.setenv("STEREO_STUDIO_MODELS", str(tmp_path / "none"))
    net = load_matcher("arch:student", max_disp=32)
    assert isinstance(net, NetMatcher) and net.name == "student-untrained" and net.max_disp == 32
    assert storage.load_network("arch:teacher").meta == {"untrained": True}
    with pytest.raises(ModelError, match=r"unknown architecture 'psmnet'.*arch:student"):
        load_matcher("arch:psmnet")


def test_config_widths_are_checked_against_the_weights_before_building(saved):
    """A config asking for a 60000-wide layer fails naming the files, without allocating ~130 GB: run in a
    process whose address space is capped at 6 GB, where building that layer would fail differently."""
    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps({**config, "agg_channels": 60000}))
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))\n"
        "from stereo_studio.errors import ModelError\n"
        "from stereo_studio.models.storage import load_model\n"
        "try:\n"
        "    load_model(sys.argv[1])\n"
        "except ModelError as exc:\n"
        "    print(exc)\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(saved)], cwd=REPO, capture_output=True, text=True,
                         timeout=120, env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": ""})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "model.safetensors do not fit" in run.stdout and "config.json" in run.stdout, run.stdout
    assert "agg_in.0.weight: file (48, 24, 3, 3) vs model (60000, 24, 3, 3)" in run.stdout


def test_refuses_negative_widths_naming_the_file(saved):
    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps({**config, "corr_channels": -24}))
    with pytest.raises(ModelError, match=r"config\.json.*corr_channels.*-24"):
        load_model(saved)


def test_load_matcher_specs(bundled, tmp_path):
    sgbm = load_matcher("sgbm", max_disp=40)
    assert isinstance(sgbm, SGBMMatcher) and sgbm.max_disp == 40 and sgbm.num_disparities == 48
    net = load_matcher("student")  # bundled wins over the architecture of the same name
    assert isinstance(net, NetMatcher) and net.name == "student" and net.max_disp == 32
    assert load_matcher("student", max_disp=32).max_disp == 32
    by_path = load_matcher(str(bundled / "student"))
    assert by_path.name == "student" and by_path.config["max_disp"] == 32
    untrained = load_matcher("arch:teacher", max_disp=48)
    assert untrained.name == "teacher-untrained" and untrained.model.config["max_disp"] == 48
    with pytest.raises(ModelError, match="bundled model 'teacher' is missing"):
        load_matcher("teacher", max_disp=48)  # a bundled name never means untrained weights
    with pytest.raises(ModelError, match="trained with max_disp 32; --max-disp 128 conflicts"):
        load_matcher("student", max_disp=128)
    expected = r"unknown model 'psmnet'.*model \(student\).*arch:student, arch:teacher"
    with pytest.raises(ModelError, match=expected):
        load_matcher("psmnet")


def test_matcher_predicts_same_as_model(bundled):
    matcher = load_matcher("student", precision="fp32")
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    right = np.roll(left, -3, axis=1)
    disp = matcher.predict(left, right)
    assert disp.shape == (37, 53) and disp.dtype == np.float32
    to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    with torch.no_grad():
        expected = matcher.model(to_t(left), to_t(right))[0, 0].numpy()
    np.testing.assert_allclose(disp, expected, atol=1e-3)  # BN folded into convs: same up to rounding
