"""Options shared by the commands that take a model: `--trust-code` (run a custom model folder's model.py)
and `--onnx-config` (conventions of an ONNX model, on top of its `net.onnx.json`).

Both take effect when the command line is parsed, for this process only: a custom model's code never runs
without `--trust-code` on the command that loads it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


class _TrustCode(argparse.Action):
    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from stereo_studio.models.custom_arch import allow_custom_code

        setattr(namespace, self.dest, True)
        allow_custom_code()


class _OnnxConfig(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from stereo_studio.errors import StereoStudioError
        from stereo_studio.models.onnx_net import set_onnx_overrides

        text = str(values).strip()
        try:
            path = Path(text).expanduser()
            source = path.read_text() if text.endswith(".json") and path.is_file() else text
            data = json.loads(source)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            set_onnx_overrides(data)
        except (OSError, ValueError, StereoStudioError) as exc:
            parser.error(f"{option_string} {text}: {exc}")
        setattr(namespace, self.dest, data)


def add_model_options(p: argparse.ArgumentParser, onnx: bool = True) -> None:
    """Add `--trust-code` (and, with `onnx`, `--onnx-config`) to a sub-command's parser."""
    p.add_argument("--trust-code", action=_TrustCode,
                   help="allow a custom model folder's model.py to run (it is Python code: only for code "
                   "you trust)")
    if onnx:
        p.add_argument("--onnx-config", action=_OnnxConfig, default=None, metavar="JSON",
                       help='conventions of an ONNX model, over its net.onnx.json: a JSON object or .json '
                       'file, e.g. \'{"range": 255, "channels": "BGR", "pad_multiple": 32}\'')
