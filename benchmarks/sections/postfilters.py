"""Post-filters: each filter's cost (ms) and its effect on EPE / bad-3 on Middlebury Aloe for SGBM and the
bundled students; temporal smoothing on a noisy static sequence; the point cloud's median depth vs the
ground truth's (same calibration)."""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import table, threads

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data" / "middlebury"
SCENES = {"Aloe Q (320x277)": SHARED / "trainingQ" / "Aloe",
          "Aloe H (641x555)": SHARED / "trainingH" / "Aloe"}
CHAINS = ["", "speckle", "hole", "median", "guided", "hole,median", "median,guided",
          "speckle,hole,median,guided"]
TEMPORAL_FRAMES = 10
NOISE_SIGMA = 4.0  # grey levels of per-frame sensor noise in the temporal test


def _models(quick: bool, max_disp: float) -> list[tuple[str, Any]]:
    from stereo_studio.models.storage import bundled_model_names, load_matcher

    sgbm_range = max(16, math.ceil(max_disp / 16) * 16)
    out: list[tuple[str, Any]] = [
        (f"SGBM 3-way ({sgbm_range} disparities)", load_matcher("sgbm", sgbm_range))
    ]
    if max_disp <= 64:  # the students are trained for disparities below 64
        students = [n for n in bundled_model_names() if n.startswith("student")]
        for name in students[:1] if quick else students:
            out.append((name, load_matcher(name, precision="fp32")))
    return out


def _time_ms(fn, reps: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(samples))


def _filter_table(quick: bool) -> str:
    from stereo_studio.data.datasets import open_dataset
    from stereo_studio.live.postfilter import FilterChain
    from stereo_studio.metrics import disparity_metrics

    rows = []
    reps = 2 if quick else 7
    scenes = dict(list(SCENES.items())[:1]) if quick else SCENES
    for scene, folder in scenes.items():
        if not folder.exists():
            rows.append([scene, "data missing", "", "", "", "", ""])
            continue
        s = open_dataset(str(folder))[0]
        for label, matcher in _models(quick, float(s.meta.get("max_disp", 64))):
            disp = matcher.predict(s.left, s.right)
            base = disparity_metrics(disp, s.disparity, s.valid)
            for chain_spec in CHAINS[:4] if quick else CHAINS:
                chain = FilterChain(chain_spec)
                out = chain.apply(disp, s.left)
                m = disparity_metrics(out, s.disparity, s.valid)
                ms = (_time_ms(lambda c=chain, d=disp, left=s.left: c.apply(d, left), reps)
                      if chain_spec else 0.0)
                rows.append([
                    scene, label, chain_spec or "none", f"{m['epe']:.3f}", f"{m['bad3']:.2f}",
                    f"{m['epe'] - base['epe']:+.3f} / {m['bad3'] - base['bad3']:+.2f}",
                    f"{ms:.1f}" if chain_spec else "-",
                ])
    head = ["scene", "model", "post-filters", "EPE px", "bad-3 %", "change EPE / bad-3", "filter ms"]
    return table(head, rows)


def _temporal_table(quick: bool) -> str:
    """A static camera with sensor noise: the same Aloe Q pair with fresh Gaussian noise in each frame."""
    from stereo_studio.data.datasets import open_dataset
    from stereo_studio.live.postfilter import FilterChain
    from stereo_studio.metrics import disparity_metrics

    folder = SCENES["Aloe Q (320x277)"]
    if not folder.exists():
        return "_Aloe Q not found: temporal test skipped._"
    s = open_dataset(str(folder))[0]
    rng = np.random.default_rng(0)
    frames = 4 if quick else TEMPORAL_FRAMES  # as measure() says

    def noisy(img: np.ndarray) -> np.ndarray:
        return np.clip(img + rng.normal(0, NOISE_SIGMA, img.shape), 0, 255).astype(np.uint8)

    pairs = [(noisy(s.left), noisy(s.right)) for _ in range(frames)]
    rows = []
    for label, matcher in _models(quick, float(s.meta.get("max_disp", 64))):
        disps = [matcher.predict(left, right) for left, right in pairs]
        for spec in ("", "temporal"):
            chain = FilterChain(spec)
            outs, ms = [], []
            for (left, _), d in zip(pairs, disps, strict=True):
                t0 = time.perf_counter()
                outs.append(chain.apply(d, left))
                ms.append((time.perf_counter() - t0) * 1000.0)
            last = disparity_metrics(outs[-1], s.disparity, s.valid)
            flicker = float(np.mean([np.abs(b - a).mean() for a, b in itertools.pairwise(outs)]))
            rows.append([label, spec or "none", f"{last['epe']:.3f}", f"{last['bad3']:.2f}", f"{flicker:.3f}",
                         f"{np.median(ms[1:]):.2f}" if spec else "-"])
    head = ["model", "post-filter", f"EPE px (frame {frames})", "bad-3 %", "flicker px", "filter ms"]
    return table(head, rows)


def _cloud_table(quick: bool) -> str:
    from stereo_studio.data.datasets import open_dataset
    from stereo_studio.live.pointcloud import DepthCalibration, disparity_to_points

    folder = SCENES["Aloe Q (320x277)"]
    if not folder.exists():
        return "_Aloe Q not found: point-cloud check skipped._"
    s = open_dataset(str(folder))[0]
    calib = DepthCalibration.from_meta(s.meta["calib"])
    gt = float(np.nanmedian(calib.depth(np.where(s.valid, s.disparity, np.nan).astype(np.float32))))
    rows = []
    for label, matcher in _models(quick, float(s.meta.get("max_disp", 64))):
        points, _ = disparity_to_points(matcher.predict(s.left, s.right), calib, s.left)
        z = float(np.median(points[:, 2]))
        rows.append([label, len(points), f"{z:.0f}", f"{gt:.0f}", f"{100 * (z / gt - 1):+.1f} %",
                     "pass" if abs(z / gt - 1) < 0.10 else "miss"])
    return table(["model", "points", "median depth mm", "ground truth mm", "difference", "within 10 %"], rows)


def measure(quick: bool) -> str:
    with threads(1):
        filters = _filter_table(quick)
        temporal = _temporal_table(quick)
        cloud = _cloud_table(quick)
    n_frames = 4 if quick else TEMPORAL_FRAMES
    return "\n".join([
        "Every post-filter of `stereo_studio/live/postfilter.py` (applied in the order speckle, hole, "
        "median, guided, temporal) on each model's disparity of the Middlebury Aloe pair. `filter ms` is "
        "the median time of the whole chain over several runs, 1 OpenCV thread; the change columns are "
        "against the same model without filters (negative is better). SGBM is the project's wrapper "
        "(3-way, block 5, P1 600, P2 2400, uniqueness 5, speckle 100 / 2, holes filled from the left); "
        "the students run only on Q (their range is 64 px; H needs 106).",
        "",
        filters,
        "",
        f"Temporal smoothing needs video: a static camera is simulated with {n_frames} frames of "
        f"Aloe Q, each with fresh Gaussian noise (sigma {NOISE_SIGMA:g} grey levels) on both views. "
        "`flicker` is the mean absolute frame-to-frame change of the output (the static scene's true change "
        "is 0); EPE / bad-3 are of the last frame.",
        "",
        temporal,
        "",
        "Point clouds (`stereo-studio cloud`): the median depth of each model's cloud of Aloe Q against the "
        "ground truth's, with the same calib.txt (f 935 px, baseline 160 mm, doffs 0; approximate for the "
        "2006 sets, so only the comparison is meaningful).",
        "",
        cloud,
        "",
    ])
