"""SGBM parameters: defaults, parsing, validation with clear errors, live changes."""

from __future__ import annotations

import numpy as np
import pytest

from stereo_studio.errors import ModelError
from stereo_studio.models.matchers import SGBMMatcher, SGBMParams, configure_sgbm


def test_defaults_are_todays_sgbm_and_p1_p2_follow_the_block() -> None:
    p = SGBMParams()
    assert (p.block_size, p.resolved_p1, p.resolved_p2, p.mode) == (5, 600, 2400, "3way")
    assert SGBMMatcher(max_disp=50).params() == SGBMMatcher(max_disp=50, params=p).params()
    assert SGBMParams(block_size=3).resolved_p1 == 8 * 3 * 9


def test_parse_and_round_trip() -> None:
    p = SGBMParams.parse("block=7, P1=500, p2=3000, uniqueness=10, speckle-window=0, speckle_range=4, "
                         "disp12=-1, mode=SGBM_3WAY, ndisp=96, fill=0")
    assert p == SGBMParams(7, 500, 3000, 10, 0, 4, -1, "3way", 96, False)
    assert SGBMParams.from_dict(p.to_dict()) == p and SGBMParams.parse("") == SGBMParams()
    assert SGBMParams.parse("mode=hh", base=p).mode == "hh" and SGBMParams.parse("mode=hh", base=p).p1 == 500


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("block=4", "odd"),
        ("p1=900,p2=900", "P2 > P1"),
        ("mode=fast", "unknown SGBM mode"),
        ("blocks=5", "unknown SGBM parameter 'blocks'"),
        ("block", "KEY=VALUE"),
        ("ndisp=20", "multiple of 16"),
        ("uniqueness=101", "0-100"),
        ("speckle-window=-1", ">= 0"),
        ("disp12=-2", ">= -1"),
        ("block=5.5", "integer"),
        ("fill=maybe", "0 or 1"),
    ],
)
def test_bad_settings_have_clear_errors(text: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        SGBMParams.parse(text)


def test_set_params_changes_the_next_prediction() -> None:
    rng = np.random.default_rng(0)
    grey = np.kron(rng.integers(0, 256, (16, 30), dtype=np.uint8), np.ones((4, 4), np.uint8))
    left = np.repeat(grey[:, :-8][..., None], 3, axis=2)  # disparity 8 everywhere
    right = np.repeat(grey[:, 8:][..., None], 3, axis=2)
    m = SGBMMatcher(max_disp=16)
    before = m.predict(left, right)
    configure_sgbm(m, SGBMParams(block_size=3, fill_holes=False, num_disparities=32))
    after = m.predict(left, right)
    assert m.num_disparities == 32 and m.max_disp == 32 and m.params()["P1"] == 216
    assert (after == 0).sum() > (before == 0).sum()  # holes are left unfilled now
    assert np.median(after[after > 0]) == pytest.approx(8.0, abs=0.5)
    with pytest.raises(ModelError, match="sgbm model only"):
        configure_sgbm(object(), SGBMParams())
