"""A second real scene, held out from everything: Middlebury 2014 Motorcycle at 741x500 with ground truth.

scikit-image's wheel bundles it (`skimage/data/motorcycle_{left,right}.png`, `motorcycle_disp.npz`; Scharstein
et al., GCPR 2014); it is the size and scene of the "real 741x500 Middlebury pair kept outside the project" in
issue 12. The files are read where pip put them (skimage itself is never imported) and written as a MiddEval3
scene folder in a temporary directory, so `open_dataset` and `stereo-studio eval --data` read it like Aloe.
Report only: never trained on, never used to choose a run or a setting (models/README.md says so).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

NAME = "Motorcycle (741x500, held out)"
NDISP = 64  # a safe upper bound: the ground truth's largest disparity is 59.9 px, within the models' 64
_FILES = ("motorcycle_left.png", "motorcycle_right.png", "motorcycle_disp.npz")


def bundled_files() -> Path | None:
    """scikit-image's data folder when it holds the three Motorcycle files, else None (not installed)."""
    spec = importlib.util.find_spec("skimage")
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "data"
        if all((folder / f).is_file() for f in _FILES):
            return folder
    return None


def write_scene(source: Path, out_dir: Path) -> Path:
    """`source` (a folder with the three files) -> `out_dir`/Motorcycle as a MiddEval3 scene; returns it."""
    from stereo_studio.data.pfm import write_pfm
    from stereo_studio.errors import DataError

    left = cv2.imread(str(source / _FILES[0]), cv2.IMREAD_COLOR)
    right = cv2.imread(str(source / _FILES[1]), cv2.IMREAD_COLOR)
    if left is None or right is None:
        raise DataError(f"cannot read the Motorcycle views in {source}")
    with np.load(source / _FILES[2], allow_pickle=False) as npz:
        disp = np.asarray(npz[npz.files[0]], dtype=np.float32)
    if disp.shape != left.shape[:2] or left.shape != right.shape:
        raise DataError(f"Motorcycle files disagree in size: {left.shape}, {right.shape}, {disp.shape}")
    disp = np.where(np.isfinite(disp) & (disp > 0), disp, np.inf).astype(np.float32)
    valid = disp[np.isfinite(disp)]
    scene = out_dir / "Motorcycle"
    scene.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(scene / "im0.png"), left)
    cv2.imwrite(str(scene / "im1.png"), right)
    write_pfm(scene / "disp0GT.pfm", disp)
    h, w = disp.shape
    (scene / "calib.txt").write_text(
        f"width={w}\nheight={h}\nndisp={NDISP}\nvmin={int(valid.min())}\nvmax={int(np.ceil(valid.max()))}\n")
    return scene


def scene_folder(out_dir: Path) -> Path | None:
    """The held-out scene written under `out_dir`, or None when scikit-image's data is not installed."""
    source = bundled_files()
    return write_scene(source, out_dir) if source else None


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.held_out_pair OUT_DIR`: write the scene, print its folder (for `eval --data`)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m benchmarks.held_out_pair OUT_DIR", file=sys.stderr)
        return 2
    folder = scene_folder(Path(args[0]))
    if folder is None:
        print("scikit-image's data is not installed: pip install -c constraints.txt -e '.[bench]'",
              file=sys.stderr)
        return 1
    print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
