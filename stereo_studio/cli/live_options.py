"""Options shared by `eval`, `preview` and `cloud`: `--sgbm` (SGBM's parameters) and `--post-filter`.

`--sgbm 'block=7,p1=600,p2=2400,mode=hh'` is one option rather than nine `--sgbm-*` flags: the same text is
what the GUI stores in its settings and what `SGBMParams.parse` reads, so a tuned setting is copied between
the window and the command line as one string. Unset keys keep the defaults (today's SGBM).
"""

from __future__ import annotations

import argparse
from typing import Any


def add_sgbm_option(p: argparse.ArgumentParser) -> None:
    from stereo_studio.models.matchers import SGBM_SPEC_HELP

    p.add_argument("--sgbm", default=None, metavar="KEY=VALUE,...",
                   help=f"parameters of the sgbm model: {SGBM_SPEC_HELP}")


def add_post_filter_option(p: argparse.ArgumentParser, video: bool = True) -> None:
    from stereo_studio.live.postfilter import filter_names

    names = [n for n in filter_names() if video or n != "temporal"]
    p.add_argument("--post-filter", default=None, metavar="NAMES",
                   help=f"comma-separated disparity post-filters for every model, applied in the order "
                   f"{', '.join(names)} (e.g. hole,median; see stereo_studio/live/postfilter.py)")


def sgbm_params(args: argparse.Namespace) -> Any:
    """The `--sgbm` parameters (None when not given); ModelError for a bad setting."""
    from stereo_studio.models.matchers import SGBMParams

    text = getattr(args, "sgbm", None)
    return None if text is None else SGBMParams.parse(text)


def configure_sgbm_matchers(matchers: list[Any], params: Any) -> None:
    """Give `--sgbm` to the SGBM matchers; ModelError when --sgbm is given but no model is sgbm."""
    if params is None:
        return
    from stereo_studio.errors import ModelError
    from stereo_studio.models.matchers import SGBMMatcher, configure_sgbm

    targets = [m for m in matchers if isinstance(m, SGBMMatcher)]
    if not targets:
        raise ModelError("--sgbm sets the parameters of the sgbm model, but no --model is sgbm")
    for m in targets:
        configure_sgbm(m, params)


def post_filters(args: argparse.Namespace, video: bool = True) -> tuple[str, ...]:
    """The `--post-filter` names (validated, in application order); temporal refused where there is no
    video (independent pairs)."""
    from stereo_studio.live.postfilter import PostFilterError, parse_filters

    names = parse_filters(getattr(args, "post_filter", None))
    if not video and "temporal" in names:
        raise PostFilterError("the temporal post-filter smooths over video frames: it does not apply to "
                              "independent pairs (use it with preview)")
    return names
