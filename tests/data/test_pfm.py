"""PFM read/write."""

from __future__ import annotations

import numpy as np
import pytest

from stereo_studio.data.pfm import read_pfm, write_pfm
from stereo_studio.errors import DataError


def test_roundtrip_grey_and_colour(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.normal(size=(5, 7)).astype(np.float32)
    grey[0, 0] = np.inf
    write_pfm(tmp_path / "g.pfm", grey)
    assert np.array_equal(read_pfm(tmp_path / "g.pfm"), grey)
    colour = rng.normal(size=(4, 3, 3)).astype(np.float32)
    write_pfm(tmp_path / "c.pfm", colour)
    out = read_pfm(tmp_path / "c.pfm")
    assert out.shape == (4, 3, 3) and out.dtype == np.float32 and np.array_equal(out, colour)


def test_big_endian_and_bottom_to_top(tmp_path):
    # Rows are stored bottom to top; a positive scale means big-endian.
    top_to_bottom = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    body = np.flipud(top_to_bottom).astype(">f4").tobytes()
    (tmp_path / "be.pfm").write_bytes(b"Pf\n3 2\n1.0\n" + body)
    assert np.array_equal(read_pfm(tmp_path / "be.pfm"), top_to_bottom)


@pytest.mark.parametrize(
    "content", [b"", b"P6\n3 2\n255\n", b"Pf\n3 x\n-1\n", b"Pf\n3 2\n-1.0\n" + b"\0" * 8]
)
def test_malformed_names_the_file(tmp_path, content):
    path = tmp_path / "bad.pfm"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"bad\.pfm"):
        read_pfm(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.pfm"):
        read_pfm(tmp_path / "nope.pfm")


def test_reads_middlebury_gt(aloe_q):
    d = read_pfm(aloe_q / "disp0GT.pfm")
    assert d.shape == (277, 320)
    finite = d[np.isfinite(d)]
    assert 10 < finite.min() < 12 and 52 < finite.max() < 54
