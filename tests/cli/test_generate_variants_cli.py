"""`stereo-studio generate --generator NAME` (issue 12): variants by name, listed in --help, bad names
refused."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from stereo_studio.cli import main
from stereo_studio.data.synthetic import GENERATORS, SyntheticStereo


def _left(folder: Path, index: int) -> np.ndarray:
    return cv2.imread(str(folder / f"{index:06d}" / "im0.png"))[:, :, ::-1]


@pytest.mark.parametrize("name", [None, "thin"])
def test_generate_writes_the_named_variant(capsys, tmp_path: Path, name: str | None) -> None:
    out = tmp_path / "g"
    argv = ["generate", "--out", str(out), "--pairs", "2", "--size", "48x96", "--max-disp", "16",
            "--seed", "3", "--json"]
    assert main(argv + (["--generator", name] if name else [])) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["generator"] == (name or "default") and summary["pairs"] == 2
    expected = SyntheticStereo(48, 96, 16, seed=3, length=2, generator=name)
    for i in range(2):
        assert np.array_equal(_left(out, i), expected[i].left)
    assert sorted(p.name for p in out.iterdir()) == ["000000", "000001"]  # the output format is unchanged


def test_unknown_generator_is_one_clear_line(capsys, tmp_path: Path) -> None:
    assert main(["generate", "--out", str(tmp_path / "g"), "--pairs", "1", "--generator", "nope"]) != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--generator: unknown generator 'nope'" in errors[0]
    assert all(name in errors[0] for name in GENERATORS)
    assert not (tmp_path / "g").exists()


def test_help_lists_the_variants(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--generator NAME" in text
    assert all(f"{name}:" in text for name in GENERATORS)


def test_generate_with_photographs(capsys, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(photos / "a.png"), rng.integers(0, 255, (100, 150, 3), dtype=np.uint8))
    base = ["generate", "--pairs", "1", "--size", "48x96", "--max-disp", "16"]
    assert main([*base, "--out", str(tmp_path / "g"), "--generator", "clutter-photo", "--photos", str(photos),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["generator"] == "clutter-photo" and summary["photos"] == str(photos.resolve())
    assert (tmp_path / "g" / "000000" / "im0.png").exists()
    # Without photographs, with a folder that holds none, or with a generator that paints none: one line.
    for extra, message in ((["--generator", "clutter-photo"], "give --photos DIR"),
                           (["--generator", "clutter-photo", "--photos", str(tmp_path / "none")],
                            "--photos: photo folder"),
                           (["--photos", str(photos)], "paints no photographs")):
        assert main([*base, "--out", str(tmp_path / "bad"), *extra]) != 0
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], errors
        assert not (tmp_path / "bad").exists()
