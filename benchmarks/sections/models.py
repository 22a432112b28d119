"""Bundled models: every target of the "bundled models" issue measured in one run, with pass / miss.

Accuracy on held-out synthetic pairs (generator seed 0; training used seed 1), on the real Middlebury pairs in
../shared/data and on the held-out Motorcycle scene (`held_out_pair`), latency ratios at 240x320, the
same-resolution race against SGBM, end-to-end live-preview FPS, and the accuracy-vs-latency trade-off plot
(written next to BENCHMARKS.md).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks import held_out_pair
from benchmarks.common import bench_rounds, median_of, num, table, threads

BUNDLED = ("teacher", "student", "student-scratch", "student-pruned")
REPO = Path(__file__).resolve().parents[2]
REAL_PAIRS = {
    "Aloe Q (320x277)": REPO.parent / "shared" / "data" / "middlebury" / "trainingQ" / "Aloe",
    "Aloe H (641x555)": REPO.parent / "shared" / "data" / "middlebury" / "trainingH" / "Aloe",
}
SIZE = (240, 320)
RACE_SIZE = (500, 741)  # "faster than SGBM at the same resolution", max disparity 64
PLOT = REPO / "benchmarks" / "tradeoff.png"
# Timings in one long process drift with what ran before them (stop 27: student-pruned 9.8 ms after the gui
# and live sections, 5.1 ms alone): each model is timed in fresh processes, interleaved, median over rounds.
ROUNDS = 5


def _timed(names: list[str], size: tuple[int, int], runs: int, rounds: int, max_disp: int,
           quick: bool = False) -> dict[str, dict[str, Any]]:
    """`bench` results of the bundled models and SGBM (with `max_disp`) at `size`: the first round's
    description with latency, p90 and fraction of peak the medians over rounds, plus the rounds' spread.
    A quick run measures now even while a training job runs (marked contended) instead of waiting."""
    extra = ["--while-training"] if quick else []
    jobs = {n: (n, (["--max-disp", str(max_disp)] if n == "sgbm" else []) + extra) for n in names}
    out = {}
    for n, results in bench_rounds(jobs, size, runs, rounds).items():
        row = dict(results[0])
        for key in ("latency_ms", "p90_ms", "fraction_of_peak"):
            row[key] = median_of(results, key)
        per_round = [x["latency_ms"] for x in results]
        row.update(rounds=len(results), round_min_ms=min(per_round), round_max_ms=max(per_round),
                   contended=any(x.get("contended") for x in results))
        out[n] = row
    return out


def _real_pairs(tmp: Path, quick: bool) -> dict[str, Path]:
    """The real scenes present: Aloe Q and H from ../shared/data (a quick run skips H), and Motorcycle
    (held out: never trained on or chosen by) written under `tmp` when scikit-image's data is installed."""
    pairs = {label: folder for label, folder in REAL_PAIRS.items()
             if folder.exists() and not (quick and "H" in label)}
    held_out = held_out_pair.scene_folder(tmp)
    if held_out is not None:
        pairs[held_out_pair.NAME] = held_out
    return pairs


def _accuracy(matcher: Any, data: str, limit: int | None) -> dict[str, Any]:
    from stereo_studio.data.datasets import open_dataset
    from stereo_studio.engine.evaluate import evaluate
    from stereo_studio.engine.jobs import run_with_progress

    dataset = open_dataset(data, limit=limit, seed=0) if data == "synthetic" else open_dataset(data)
    return run_with_progress(evaluate(matcher, dataset, limit=limit), quiet=True)


def _targets(acc: dict, speed: dict, race: dict, live_fps: float | None) -> list[list[str]]:
    """Issue 12's "done when" (Aloe Q and synthetic validation), then the earlier speed targets."""
    rows: list[list[str]] = []

    def add(name: str, value: str, ok: bool | None) -> None:
        rows.append([name, value, "n/a" if ok is None else ("**pass**" if ok else "**miss**")])

    def vs(a: dict, b: dict, keys: tuple[str, ...]) -> str:
        return " / ".join(f"{a[k]:.2f}" + (" %" if k != "epe" else "") for k in keys) + " vs " + " / ".join(
            f"{b[k]:.2f}" + (" %" if k != "epe" else "") for k in keys)

    q = acc.get("Aloe Q (320x277)", {})
    te, pr, sg = q.get("teacher"), q.get("student-pruned"), q.get("sgbm")
    if te and sg:
        add("Aloe Q: teacher beats SGBM in EPE and bad-2", vs(te, sg, ("epe", "bad2")),
            te["epe"] < sg["epe"] and te["bad2"] < sg["bad2"])
    if pr and sg:
        add("Aloe Q: student-pruned beats SGBM in EPE and bad-3", vs(pr, sg, ("epe", "bad3")),
            pr["epe"] < sg["epe"] and pr["bad3"] < sg["bad3"])
        add("Aloe Q (moonshot): student-pruned beats SGBM in bad-2 too", vs(pr, sg, ("bad2",)),
            pr["bad2"] < sg["bad2"])
    if race.get("student-pruned") and race.get("sgbm"):
        r = race["sgbm"]["latency_ms"] / race["student-pruned"]["latency_ms"]
        add(f"student-pruned faster than SGBM at {RACE_SIZE[1]}x{RACE_SIZE[0]}, same threads (moonshot 2x)",
            f"{r:.2f}x", r > 1)
    for data in ("Aloe Q (320x277)", "held-out synthetic"):
        res = acc.get(data, {})
        st, sc, pr = (res.get(k) for k in ("student", "student-scratch", "student-pruned"))
        if st and sc:
            r = st["epe"] / sc["epe"]
            add(f"{data}: distillation pays, student EPE <= 0.85x scratch", f"{r:.2f}x", r <= 0.85)
        if st and pr:
            r = pr["epe"] / st["epe"]
            add(f"{data}: student-pruned EPE <= 1.05x student", f"{r:.2f}x", r <= 1.05)
    p, t = speed.get("student-pruned"), speed.get("teacher")
    if p and t:
        mac_ratio = t["macs"] / p["macs"]
        speed_ratio = t["latency_ms"] / p["latency_ms"]
        add("teacher / student-pruned MACs >= 10x", f"{mac_ratio:.1f}x", mac_ratio >= 10)
        add("teacher / student-pruned latency >= 8x", f"{speed_ratio:.1f}x", speed_ratio >= 8)
    if race.get("teacher") and race.get("student-pruned"):
        r = race["teacher"]["latency_ms"] / race["student-pruned"]["latency_ms"]
        add(f"(for reference, not the goal's size) the same ratio at {RACE_SIZE[1]}x{RACE_SIZE[0]}",
            f"{r:.1f}x", None)
    if p:
        fps = 1000.0 / p["latency_ms"]
        add("student-pruned model-only FPS at 240x320 >= 100", f"{fps:.0f} FPS", fps >= 100)
    if live_fps is not None:
        add("end-to-end preview of a 640x240 SBS video >= 30 FPS", f"{live_fps:.1f} FPS", live_fps >= 30)
    for data, res in acc.items():
        if data == "Aloe Q (320x277)":
            continue
        pr, sg = res.get("student-pruned"), res.get("sgbm")
        if pr and sg:
            add(f"{data}: student-pruned beats SGBM (EPE, bad-3)", vs(pr, sg, ("epe", "bad3")),
                pr["epe"] < sg["epe"] and pr["bad3"] < sg["bad3"])
    return rows


def trade_off_plot(points: dict[str, tuple[float, float]], path: Path,
                   settings: str = "fp32, 2 threads") -> Path:
    """Latency (x) vs EPE (y), one labelled point per model, as a PNG (pyqtgraph, offscreen)."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg
    import pyqtgraph.exporters

    app = pg.mkQApp()
    pg.setConfigOptions(antialias=True, background="w", foreground="k")
    plot = pg.PlotWidget()
    plot.resize(900, 560)
    font = pg.QtGui.QFont()
    font.setPointSize(11)
    for side in ("bottom", "left"):
        plot.getAxis(side).setTickFont(font)
    plot.setLabel("bottom", f"latency at 240x320, {settings} (ms)")
    plot.setLabel("left", "EPE, held-out synthetic pairs (px)")
    plot.setTitle("Accuracy vs latency: lower left is better")
    plot.showGrid(x=True, y=True, alpha=0.3)
    colours = {"teacher": "#d62728", "student": "#1f77b4", "student-scratch": "#7f7f7f",
               "student-pruned": "#2ca02c", "sgbm": "#ff7f0e"}
    xs, ys = [p[0] for p in points.values()], [p[1] for p in points.values()]
    placed: list[tuple[float, float, float, float]] = []  # label boxes in data units (x0, x1, y0, y1)
    char_w, line_h = max(xs) * 1.65 * 7.5 / 900, (max(ys) - min(ys) + 0.1) * 1.4 * 22 / 560
    for name, (ms, epe) in sorted(points.items(), key=lambda kv: -kv[1][1]):  # top first: a clash goes below
        brush = pg.mkBrush(colours.get(name, "#9467bd"))
        plot.addItem(pg.ScatterPlotItem([ms], [epe], size=14, brush=brush, pen=pg.mkPen("k")))
        text = f"{name}  ({ms:.0f} ms, {epe:.2f} px)"
        above = (ms, ms + len(text) * char_w, epe, epe + line_h)
        below = (ms, ms + len(text) * char_w, epe - line_h, epe)
        clash = any(a[0] < above[1] and above[0] < a[1] and a[2] < above[3] and above[2] < a[3]
                    for a in placed)
        box, anchor = (below, (0, -0.1)) if clash else (above, (0, 1.1))  # below a neighbour's label
        placed.append(box)
        label = pg.TextItem(text, color="k", anchor=anchor)
        label.setFont(font)
        label.setPos(ms, epe)
        plot.addItem(label)
    plot.setXRange(0, max(xs) * 1.65, padding=0)
    plot.setYRange(min(ys) - 0.15 * (max(ys) - min(ys) + 0.1), max(ys) + 0.25 * (max(ys) - min(ys) + 0.1),
                   padding=0)
    app.processEvents()
    pg.exporters.ImageExporter(plot.getPlotItem()).export(str(path))
    plot.close()
    plot.deleteLater()
    app.processEvents()
    return path


def measure(quick: bool) -> str:
    from stereo_studio.models.storage import load_matcher, resolve_model

    present = [n for n in BUNDLED if resolve_model(n) is not None]
    missing = [n for n in BUNDLED if n not in present]
    out: list[str] = []
    if missing:
        out.append(f"Not yet trained / shipped: {', '.join(missing)} (their targets are not measured).")
    if not present:
        return "\n\n".join(out)
    matchers = {n: load_matcher(n) for n in present}
    max_disp = max(m.max_disp for m in matchers.values())
    matchers["sgbm"] = load_matcher("sgbm", max_disp=max_disp)
    runs = 5 if quick else 30
    rounds = 1 if quick else ROUNDS
    limit = 2 if quick else 20
    from stereo_studio import runtime

    # this machine's defaults (the measured inference settings), SGBM with the same threads
    n_threads = runtime.inference_settings().threads
    precisions = sorted({m.precision for n, m in matchers.items() if n != "sgbm"})
    settings = f"{'/'.join(precisions)}, {n_threads} thread{'s' if n_threads != 1 else ''}"
    wait = runtime.effective_wait_policy()

    speed = _timed([*present, "sgbm"], SIZE, runs, rounds, max_disp, quick)
    # the teacher too, for the latency ratio at a size where the small network is less overhead-bound
    race_names = [n for n in ("teacher", "student-pruned") if n in present] or [present[-1]]
    race_names.append("sgbm")
    race = _timed(race_names, RACE_SIZE, max(3, runs // 3), rounds, 64, quick)
    with threads(n_threads):
        acc: dict[str, dict[str, Any]] = {"held-out synthetic": {}}
        for n, m in matchers.items():
            acc["held-out synthetic"][n] = _accuracy(m, "synthetic", limit)
        with tempfile.TemporaryDirectory() as tmp:
            for label, folder in _real_pairs(Path(tmp), quick).items():
                acc[label] = {}
                for n, m in matchers.items():
                    sgbm_for_pair = load_matcher("sgbm") if n == "sgbm" else m  # SGBM: the pair's ndisp
                    acc[label][n] = _accuracy(sgbm_for_pair, str(folder), None)
        live_fps = None
        fastest = "student-pruned" if "student-pruned" in present else None
        if fastest and not quick:
            from benchmarks.sections.live import make_sbs_video, run_pipeline

            with tempfile.TemporaryDirectory() as tmp:
                video = make_sbs_video(Path(tmp) / "sbs.avi", frames=150, distinct=10)
                live_fps = float(run_pipeline(video, matchers[fastest], realtime=False, frames=None)["fps"])

    def spread(r: dict[str, Any]) -> str:
        return f"{r['round_min_ms']:.2f}-{r['round_max_ms']:.2f}" + (" (contended)" if r["contended"] else "")

    rows = []
    for n, r in speed.items():
        rows.append([n, f"{r['params']:,}", num(r["macs"] and r["macs"] / 1e9, ".3f"), num(r["latency_ms"]),
                     num(r["p90_ms"]), spread(r), num(1000 / r["latency_ms"], ".0f"),
                     num(r["latency_ms"] / speed["sgbm"]["latency_ms"], ".2f"),
                     num(r.get("fraction_of_peak") and 100 * r["fraction_of_peak"], ".0f")])
    timing = (f"each model in its own fresh `stereo-studio bench` process, {rounds} interleaved round(s) of "
              f"{{runs}} warm runs, median over rounds of each process's median (and p90)")
    out.append(f"### Cost at {SIZE[0]}x{SIZE[1]} (max disparity {max_disp}, this machine's defaults: "
               f"{settings}, wait policy {wait}; SGBM with the same threads; {timing.format(runs=runs)})\n\n"
               + table(["model", "params", "GMAC", "median ms", "p90 ms", "process medians, min-max", "FPS",
                        "latency / SGBM", "% of fp32 peak"], rows))
    race_rows = [[n, num(r["latency_ms"]), num(r["p90_ms"]), spread(r)] for n, r in race.items()]
    out.append(f"### Same-resolution race at {RACE_SIZE[0]}x{RACE_SIZE[1]} "
               f"({timing.format(runs=max(3, runs // 3))})\n\n"
               + table(["model", "median ms", "p90 ms", "process medians, min-max"], race_rows))
    for data, res in acc.items():
        out.append(f"### Accuracy on {data}\n\n" + table(
            ["model", "EPE px", "bad-1 %", "bad-2 %", "bad-3 %", "D1 %", "pairs", "ms / pair"],
            [[n, num(r["epe"], ".3f"), num(r["bad1"]), num(r["bad2"]), num(r["bad3"]), num(r["d1"]),
              r["pairs"], num(r["ms_per_pair"])] for n, r in res.items()]))
    sgbm_params = matchers["sgbm"].params() if hasattr(matchers["sgbm"], "params") else {}
    out.append(f"SGBM parameters: {sgbm_params}; on the real pairs it searches the pair's `ndisp`.")
    if live_fps is not None:
        out.append("End-to-end live preview (decode a 640x240 side-by-side MJPG video, split, rectify, infer "
                   f"with `{fastest}`, colour-map), every frame in order: **{live_fps:.1f} FPS**.")
    verdicts = _targets(acc, speed, race, live_fps)
    out.append("### Targets\n\n" + table(["target", "measured", "verdict"], verdicts))
    synth = acc["held-out synthetic"]
    points = {n: (speed[n]["latency_ms"], synth[n]["epe"]) for n in speed if n in synth}
    try:
        trade_off_plot(points, PLOT, settings)
        out.append(f"![accuracy vs latency]({PLOT.relative_to(REPO).as_posix()})")
    except Exception as exc:  # the plot is a convenience; the tables above carry the numbers
        out.append(f"(trade-off plot not drawn: {exc})")
    return "\n\n".join(out)
