"""models/recipe.sh: valid shell, and the bundled models come from the runs its `ship` stage names."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "models" / "recipe.sh"
BUNDLED = ROOT / "stereo_studio" / "models" / "bundled"


def _ship_map() -> dict[str, str]:
    """The `run_of` map of the recipe's ship stage: bundled name -> run folder name."""
    match = re.search(r"declare -A run_of=\((.*?)\)\n", RECIPE.read_text(), re.S)
    assert match, "models/recipe.sh has no `declare -A run_of=(...)` in its ship stage"
    return dict(re.findall(r"\[([\w-]+)\]=([\w-]+)", match.group(1)))


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_recipe_is_valid_shell() -> None:
    result = subprocess.run(["bash", "-n", str(RECIPE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_bundled_model_comes_from_the_run_the_recipe_ships() -> None:
    ship = _ship_map()
    assert set(ship) == {"teacher", "student", "student-scratch", "student-pruned"}
    for name, run in ship.items():
        meta = json.loads((BUNDLED / name / "config.json").read_text())["meta"]
        assert meta["run"] == f"models/checkpoints/{run}", name


def test_the_bundled_pruned_student_is_the_bundled_student_pruned() -> None:
    """The pruned run was initialised from the shipped student's run (its prune stage's source), directly or
    through fine-tunes of such a run (`finetune_pruned OUT INIT`, INIT a run's model or a copy of it given
    options by models/with_options.py)."""
    ship = _ship_map()
    text = RECIPE.read_text()
    calls = re.findall(r"^\s+prune_student ([\w-]+) ([\w-]+) ([\w-]+)(?: \S+)?(?: \\|$)", text, re.M)
    sources = {out: src for src, out, _teacher in calls}
    copies = dict(re.findall(r"with_options\.py \$ck/([\w-]+)/model (runs/[\w-]+)", text))
    copies = {copy: run for run, copy in copies.items()}
    finetunes = {}
    for out, init in re.findall(r"^\s+finetune_pruned ([\w-]+) (\S+)$", text, re.M):
        match = re.fullmatch(r"\$ck/([\w-]+)/model", init)
        finetunes[out] = match.group(1) if match else copies[init]
    run = ship["student-pruned"]
    while run in finetunes:
        run = finetunes[run]
    assert sources.get(run) == ship["student"], (ship["student-pruned"], run)


def test_every_card_names_recipe_stages_that_exist() -> None:
    """A card's `bash models/recipe.sh STAGE...` runs stages the recipe has."""
    stages = set(re.findall(r"want ([\w-]+)", RECIPE.read_text()))
    for card in sorted(BUNDLED.glob("*/card.md")):
        match = re.search(r"`bash models/recipe\.sh ([\w -]+)`", card.read_text())
        assert match, f"{card} names no recipe command"
        missing = set(match.group(1).split()) - stages
        assert not missing, f"{card.parent.name}: no such recipe stage {sorted(missing)}"


def test_every_run_folder_of_the_recipe_maps_to_a_stage_that_exists() -> None:
    """Cards name the stage that trains a run folder (`benchmarks.model_cards._stage`): every `--out $ck/RUN`
    of the recipe must map to one of its stages, so a card never names a stage the recipe lacks."""
    from benchmarks.model_cards import _stage

    text = RECIPE.read_text()
    stages = set(re.findall(r"want ([\w-]+)", text))
    runs = set(re.findall(r"--out \$ck/([\w-]+)", text)) - {"$out"}
    runs |= {out for _src, out in re.findall(r"^\s+prune_student ([\w-]+) ([\w-]+)", text, re.M)}
    runs |= set(re.findall(r"^[^#\n]*distill_from_down ([\w-]+) [\w-]+", text, re.M))
    assert runs, "no run folders found in the recipe"
    missing = {run: _stage(run) for run in runs if _stage(run) not in stages}
    assert not missing, f"run folders whose stage the recipe lacks: {missing}"
