"""Dataset readers and `open_dataset`, on tiny dataset trees written by the tests in each layout."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from stereo_studio.data.datasets import open_dataset, split_dataset
from stereo_studio.data.pfm import write_pfm
from stereo_studio.errors import DataError

H, W = 12, 20


def _img(path: Path, value: int, grey: bool = False) -> np.ndarray:
    """Write an image whose channels differ (so a BGR/RGB swap is caught); return it as RGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = value, value // 2, 255 - value
    if grey:
        rgb[:] = value
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])
    return rgb


def _disp() -> np.ndarray:
    d = np.tile(np.linspace(1.0, 9.0, W, dtype=np.float32), (H, 1))
    d[0, :4] = 0  # unknown
    return d


def test_kitti_2015_and_2012(tmp_path):
    for layout, (l, r, dd) in {"k15": ("image_2", "image_3", "disp_occ_0"),
                               "k12": ("colored_0", "colored_1", "disp_occ")}.items():
        split = tmp_path / layout / "training"
        left = _img(split / l / "000000_10.png", 100)
        _img(split / r / "000000_10.png", 90)
        _img(split / l / "000000_11.png", 100)  # not a _10 frame: ignored
        _img(split / r / "000000_11.png", 90)
        _img(split / l / "000001_10.png", 50)
        _img(split / r / "000001_10.png", 40)
        (split / dd).mkdir()
        cv2.imwrite(str(split / dd / "000000_10.png"), np.round(_disp() * 256).astype(np.uint16))
        ds = open_dataset(str(tmp_path / layout))
        assert len(ds) == 2 and ds.dataset == ("kitti2015" if layout == "k15" else "kitti2012")
        s = ds[0]
        assert np.array_equal(s.left, left) and s.name == "000000_10"
        assert np.allclose(s.disparity[s.valid], _disp()[_disp() > 0], atol=1 / 256)
        assert not s.valid[0, :4].any() and s.valid[1:].all()
        assert not ds[1].has_gt  # no disparity file for that frame


def test_kitti_bad_disparity_names_file(tmp_path):
    split = tmp_path / "training"
    _img(split / "image_2" / "000000_10.png", 100)
    _img(split / "image_3" / "000000_10.png", 100)
    _img(split / "disp_occ_0" / "000000_10.png", 100)  # 8-bit colour, not 16-bit grey
    with pytest.raises(DataError, match=r"000000_10\.png"):
        open_dataset(str(tmp_path))[0]


def test_middlebury_scene_and_folder_of_scenes(tmp_path):
    for scene in ("Adiron", "Jadeplant"):
        folder = tmp_path / "trainingQ" / scene
        _img(folder / "im0.png", 100)
        _img(folder / "im1.png", 90)
        d = _disp()
        d[d == 0] = np.inf
        write_pfm(folder / ("disp0GT.pfm" if scene == "Adiron" else "disp0.pfm"), d)
        (folder / "calib.txt").write_text(
            "cam0=[700.5 0 10; 0 700.5 6; 0 0 1]\ncam1=[700.5 0 12; 0 700.5 6; 0 0 1]\n"
            "doffs=2.0\nbaseline=176.25\nwidth=20\nheight=12\nndisp=32\n"
        )
    mask = np.full((H, W), 255, np.uint8)
    mask[:, :3] = 128
    cv2.imwrite(str(tmp_path / "trainingQ" / "Adiron" / "mask0nocc.png"), mask)
    ds = open_dataset(str(tmp_path / "trainingQ"))
    assert ds.dataset == "middlebury" and len(ds) == 2
    s = ds[0]
    assert s.name == "Adiron" and s.meta["max_disp"] == 32
    assert s.meta["calib"]["focal_px"] == 700.5 and s.meta["calib"]["doffs"] == 2.0
    assert s.meta["calib"]["baseline_m"] == pytest.approx(0.17625)
    assert not s.valid[0, :4].any() and np.isfinite(s.disparity).all()
    assert s.meta["nonoccluded"][:, 3:].all() and not s.meta["nonoccluded"][:, :3].any()
    assert ds[1].has_gt  # disp0.pfm (Middlebury 2014 naming)
    one = open_dataset(str(tmp_path / "trainingQ" / "Jadeplant"))
    assert len(one) == 1 and one[0].name == "Jadeplant"


def test_middlebury_real_aloe(aloe_q):
    s = open_dataset(str(aloe_q))[0]
    assert s.size == (277, 320) and s.meta["max_disp"] == 64
    assert 0.96 < s.valid.mean() < 0.97
    assert s.meta["calib"]["focal_px"] == 935.0 and s.meta["calib"]["baseline_m"] == pytest.approx(0.16)
    # A coarse check that left/right are not swapped: the GT warps the right view onto the left.
    h, w = s.size
    mx = np.arange(w, dtype=np.float32)[None, :] - s.disparity
    my = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
    warped = cv2.remap(s.right, mx, my, cv2.INTER_LINEAR).astype(float)
    good = np.median(np.abs(warped - s.left).mean(axis=2)[s.valid])
    unwarped = np.median(np.abs(s.right.astype(float) - s.left).mean(axis=2)[s.valid])
    assert good < 0.3 * unwarped


def test_eth3d(tmp_path):
    scene = tmp_path / "two_view_training" / "delivery_area_1l"
    _img(scene / "im0.png", 70, grey=True)
    _img(scene / "im1.png", 60, grey=True)
    write_pfm(scene / "disp0GT.pfm", _disp())
    cv2.imwrite(str(scene / "mask0nocc.png"), np.full((H, W), 255, np.uint8))
    (scene / "calib.txt").write_text("cam0=[541.7 0 10; 0 541.7 6; 0 0 1]\ndoffs=0\nbaseline=59.9\n"
                                     "ndisp=24\n")
    ds = open_dataset(str(tmp_path / "two_view_training"))
    assert ds.dataset == "eth3d" and ds[0].meta["max_disp"] == 24 and ds[0].left.shape == (H, W, 3)


def _sceneflow_tree(root: Path, rels: tuple[str, ...]) -> None:
    for rel in rels:
        for i in (6, 7):
            _img(root / "frames_cleanpass" / rel / "left" / f"{i:04d}.png", 100 + i)
            _img(root / "frames_cleanpass" / rel / "right" / f"{i:04d}.png", 90 + i)
            (root / "disparity" / rel / "left").mkdir(parents=True, exist_ok=True)
            write_pfm(root / "disparity" / rel / "left" / f"{i:04d}.pfm", _disp())


def test_sceneflow(tmp_path):
    _sceneflow_tree(tmp_path, ("TRAIN/A/0000", "TRAIN/B/0001"))
    ds = open_dataset(str(tmp_path))
    assert ds.dataset == "sceneflow" and len(ds) == 4
    s = ds[3]
    assert s.name == "TRAIN/B/0001/0007" and s.left[0, 0, 0] == 107
    assert np.allclose(s.disparity[s.valid], _disp()[_disp() > 0])
    assert len(open_dataset(str(tmp_path / "frames_cleanpass"), limit=3)) == 3


def test_sceneflow_subsets_in_one_folder(tmp_path):
    _sceneflow_tree(tmp_path / "FlyingThings3D", ("TRAIN/A/0000",))
    _sceneflow_tree(tmp_path / "Monkaa", ("a_rain_of_stones_x2",))
    ds = open_dataset(str(tmp_path))
    assert ds.dataset == "sceneflow" and len(ds) == 4 and all(ds[i].has_gt for i in range(4))


@pytest.mark.parametrize("layout", ["dirs", "suffix", "im01"])
def test_pair_folders_have_no_gt(tmp_path, layout):
    if layout == "dirs":
        _img(tmp_path / "left" / "a.png", 10), _img(tmp_path / "right" / "a.png", 20)
        _img(tmp_path / "left" / "b.jpg", 10), _img(tmp_path / "right" / "b.jpg", 20)
        _img(tmp_path / "left" / "only_left.png", 10)
        expected = 2
    elif layout == "suffix":
        _img(tmp_path / "desk_L.png", 10), _img(tmp_path / "desk_R.png", 20)
        _img(tmp_path / "hall_left.png", 10), _img(tmp_path / "hall_right.png", 20)
        expected = 2
    else:
        _img(tmp_path / "s1" / "im0.png", 10), _img(tmp_path / "s1" / "im1.png", 20)
        expected = 1
    ds = open_dataset(str(tmp_path))
    assert ds.dataset == "pairs" and len(ds) == expected
    s = ds[0]
    assert not s.has_gt and s.left[0, 0, 0] == 10 and s.right[0, 0, 0] == 20


def test_unknown_and_missing(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="unknown dataset layout"):
        open_dataset(str(tmp_path))
    with pytest.raises(DataError, match="no_such_folder"):
        open_dataset(str(tmp_path / "no_such_folder"))


def test_missing_right_image_names_file(tmp_path):
    _img(tmp_path / "left" / "a.png", 10)
    _img(tmp_path / "right" / "a.png", 10)
    ds = open_dataset(str(tmp_path))
    (tmp_path / "right" / "a.png").unlink()
    with pytest.raises(DataError, match=r"a\.png"):
        ds[0]


def test_open_synthetic_and_split():
    ds = open_dataset("synthetic", limit=10, seed=2, size=(64, 96), max_disp=24)
    assert len(ds) == 10 and ds[0].size == (64, 96) and ds[0].meta["max_disp"] == 24
    assert np.array_equal(ds[3].left, open_dataset("synthetic", limit=10, seed=2, size=(64, 96),
                                                   max_disp=24)[3].left)
    train, val = split_dataset(ds, 0.3, seed=1)
    assert len(train) == 7 and len(val) == 3
    assert not set(train.indices) & set(val.indices)
    assert sorted(train.indices + val.indices) == list(range(10))
    assert split_dataset(ds, 0.3, seed=1)[1].indices == val.indices
    assert np.array_equal(val[0].left, ds[val.indices[0]].left)


def test_resize_scales_disparity(aloe_q):
    full = open_dataset(str(aloe_q))[0]
    half = open_dataset(str(aloe_q), size=(139, 160), max_disp=40)[0]
    assert half.size == (139, 160) and half.meta["max_disp"] == 40
    assert half.disparity[half.valid].max() == pytest.approx(full.disparity[full.valid].max() / 2, rel=0.02)
    assert half.meta["calib"]["focal_px"] == pytest.approx(935.0 / 2)


def test_write_dataset_roundtrip(tmp_path):
    from stereo_studio.data.datasets import write_dataset
    from stereo_studio.engine.jobs import run_with_progress

    ds = open_dataset("synthetic", limit=3, size=(32, 48), max_disp=12)
    folder = run_with_progress(write_dataset(ds, tmp_path / "cache"), quiet=True)
    back = open_dataset(str(folder))
    assert len(back) == 3
    a, b = ds[2], back[2]
    assert np.array_equal(a.left, b.left) and np.array_equal(a.right, b.right)
    assert np.array_equal(a.disparity, b.disparity) and b.valid.all() and b.meta["max_disp"] == 12
    assert np.array_equal(b.meta["nonoccluded"], ~a.meta["occlusion"])
