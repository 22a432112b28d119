"""benchmarks.held_out_pair: scikit-image's Motorcycle files become a MiddEval3 scene the readers open."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # benchmarks/ is a top-level folder of the repo, not part of the package
    sys.path.insert(0, str(REPO))

from benchmarks import held_out_pair  # noqa: E402
from stereo_studio.data.datasets import open_dataset  # noqa: E402
from stereo_studio.errors import DataError  # noqa: E402


def _fake_source(folder: Path, shape: tuple[int, int] = (40, 60)) -> np.ndarray:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    left = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    right = np.roll(left, -3, axis=1)
    cv2.imwrite(str(folder / "motorcycle_left.png"), left)
    cv2.imwrite(str(folder / "motorcycle_right.png"), right)
    disp = np.full(shape, 3.0, np.float32)
    disp[:5] = np.nan  # unknown in the source
    disp[5:8] = np.inf
    np.savez(folder / "motorcycle_disp.npz", disp)
    return left


def test_written_scene_reads_back_with_unknowns_invalid(tmp_path):
    left_bgr = _fake_source(tmp_path / "src")
    scene = held_out_pair.write_scene(tmp_path / "src", tmp_path / "out")
    sample = open_dataset(str(scene))[0]
    assert sample.left.shape == (40, 60, 3)
    np.testing.assert_array_equal(sample.left, left_bgr[..., ::-1])  # readers return RGB
    assert not sample.valid[:8].any() and sample.valid[8:].all()
    np.testing.assert_allclose(sample.disparity[8:], 3.0)
    assert sample.meta["max_disp"] == held_out_pair.NDISP


def test_mismatched_source_files_are_refused(tmp_path):
    _fake_source(tmp_path / "src")
    np.savez(tmp_path / "src" / "motorcycle_disp.npz", np.zeros((10, 10), np.float32))
    with pytest.raises(DataError, match="disagree in size"):
        held_out_pair.write_scene(tmp_path / "src", tmp_path / "out")


def test_without_scikit_image_there_is_no_scene(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(held_out_pair.importlib.util, "find_spec", lambda name: None)
    assert held_out_pair.bundled_files() is None
    assert held_out_pair.scene_folder(tmp_path) is None
    assert held_out_pair.main([str(tmp_path)]) == 1
    assert "not installed" in capsys.readouterr().err
    assert held_out_pair.main([]) == 2


@pytest.mark.skipif(held_out_pair.bundled_files() is None, reason="scikit-image's data not installed")
def test_real_scene_is_the_issue_pair_and_sgbm_scores_as_the_issue_says(tmp_path):
    from stereo_studio.engine.evaluate import evaluate
    from stereo_studio.engine.jobs import run_with_progress
    from stereo_studio.models.storage import load_matcher

    scene = held_out_pair.scene_folder(tmp_path)
    sample = open_dataset(str(scene))[0]
    assert sample.left.shape == (500, 741, 3) and 0.9 < sample.valid.mean() < 0.95
    assert sample.disparity[sample.valid].max() < held_out_pair.NDISP
    result = run_with_progress(evaluate(load_matcher("sgbm"), open_dataset(str(scene))), quiet=True)
    # issue 12's table for "a real 741x500 Middlebury pair kept outside the project": SGBM 1.61 / 9.5 / 8.6
    assert result["epe"] == pytest.approx(1.61, abs=0.01)
    assert result["bad2"] == pytest.approx(9.5, abs=0.1) and result["bad3"] == pytest.approx(8.6, abs=0.1)
