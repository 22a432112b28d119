"""A trained student given architecture options that start as the identity:
`python models/with_options.py MODEL_DIR DEST_DIR OPTION=VALUE...` (`upsample=convex`, `refine_warp=true`;
`regression_window=R`, an option without weights that changes the predictions on purpose).

Grows `MODEL_DIR` with the options (`stereo_studio.models.grow`: its weights kept, the options' new layers
starting so that the network computes what it did: the convex upsampling as bilinear, the warping error's conv
at zero; checked on a probe pair) and saves the result to `DEST_DIR` with the source's meta plus
`"options_from": MODEL_DIR`.
Unpruned students only (a pruned one is pruned afterwards), except for options without weights
(`WEIGHTLESS`), which any student takes on, pruned or not, as they are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from stereo_studio.errors import ModelError
from stereo_studio.models.grow import grow_model
from stereo_studio.models.storage import load_model, pruned_shapes, save_model

WEIGHTLESS = ("regression_window",)  # StudentNet options without layers: set on the built model as they are


def main(model_dir: Path, dest: Path, options: dict[str, object]) -> None:
    source = load_model(model_dir)
    if options and set(options) <= set(WEIGHTLESS) and source.config.get("arch") == "student":
        from stereo_studio.models.student import StudentNet

        try:  # the constructor checks the values (on default widths: cheap)
            StudentNet(**options)
        except (ModelError, TypeError, ValueError) as exc:
            raise SystemExit(f"{model_dir} with {options}: {exc}") from exc
        for key, value in options.items():
            setattr(source, key, value)
            source.config[key] = value
        save_model(source, dest, {**source.meta, "options_from": str(model_dir), "options": options})
        print(f"{model_dir} with {options} (no new weights) saved to {dest}")
        return
    if source.config.get("arch") != "student" or pruned_shapes(source):
        raise SystemExit(f"{model_dir}: an unpruned student is needed")
    try:  # the options' new layers start as the identity; grow_model checks the predictions on a probe pair
        grown = grow_model(source, options).eval()
    except ModelError as exc:
        raise SystemExit(f"{model_dir} with {options}: {exc}") from exc
    new = sorted(set(grown.state_dict()) - set(source.state_dict()))
    save_model(grown, dest, {**source.meta, "options_from": str(model_dir), "options": options})
    print(f"{model_dir} with {options} (new: {new}) saved to {dest}")


def parse(option: str) -> tuple[str, object]:
    """KEY=VALUE, VALUE read as JSON when it parses (true, 3) and as a string otherwise (convex)."""
    key, sep, value = option.partition("=")
    if not sep:
        raise SystemExit(f"options are KEY=VALUE, got {option!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]), dict(parse(o) for o in sys.argv[3:]))
