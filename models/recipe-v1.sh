#!/usr/bin/env bash
# The exact recipe of the bundled v1 models (as shipped; v2: models/recipe.sh), with the project's own CLI. Run from the repository root:
#   bash models/recipe-v1.sh [STAGE...]     stages: data teacher scratch student pruned ship cards (default: all)
# Long stages checkpoint into runs/<name>/ and can be resumed by re-running the same command with --resume.
set -euo pipefail
cd "$(dirname "$0")/.."
ss=".venv/bin/stereo-studio"
export OMP_WAIT_POLICY=PASSIVE
stages=("${@:-data teacher scratch student pruned ship cards}")
stages=(${stages[*]})
want() { [[ " ${stages[*]} " == *" $1 "* ]]; }
common=(--batch-size 4 --crop 192x320 --lr 1e-3 --val-interval 250 --val-pairs 8 --ckpt-interval 100 --max-disp 64 --seed 0)

# 4000 procedural pairs, generator seed 1 (evaluation uses seed 0: held out by construction).
want data && $ss generate --out runs/synth-train --pairs 4000 --size 256x512 --seed 1
# Teacher: supervised on ground truth.
want teacher && $ss train --arch teacher --data runs/synth-train --steps 800 --batch-size 4 --crop 192x320 --lr 1e-3 \
    --val-interval 200 --val-pairs 8 --ckpt-interval 100 --threads 2 --max-disp 64 --seed 0 --out runs/teacher
# Student baseline from scratch, ground truth only; same step budget as the distilled student.
want scratch && $ss train --arch student --data runs/synth-train --steps 1500 --threads 1 "${common[@]}" --out runs/student-scratch
# Distilled student: teacher-output L1 plus ground truth.
want student && $ss distill --teacher runs/teacher/model --arch student --data runs/synth-train --steps 1500 \
    --w-teacher 1 --w-gt 1 --threads 1 "${common[@]}" --out runs/student
# Prune the distilled student at 0.5 (L1 criterion, widths multiple of 8), then fine-tune it with distillation.
if want pruned; then
    # the sweep that chose the ratio (see models/README.md)
    $ss sweep --model runs/student/model --ratios 0,0.25,0.5,0.625,0.75 --data synthetic --json > runs/sweep-student.jsonl
    $ss prune --model runs/student/model --ratio 0.5 --criterion l1 --out runs/student-pruned-raw
    $ss distill --teacher runs/teacher/model --init-from runs/student-pruned-raw --data runs/synth-train --steps 600 \
        --w-teacher 1 --w-gt 1 --threads 2 --lr 5e-4 --batch-size 4 --crop 192x320 --val-interval 200 --val-pairs 8 \
        --ckpt-interval 100 --seed 0 --out runs/student-pruned
fi
# Ship: model folders (config.json + model.safetensors) plus the run's config and summary as training.json.
if want ship; then
    for name in teacher student-scratch student student-pruned; do
        mkdir -p "models/$name"
        cp "runs/$name/model/config.json" "runs/$name/model/model.safetensors" "models/$name/"
        .venv/bin/python -c "import json,sys; r='runs/$name'; json.dump({'config': json.load(open(r+'/config.json')), 'summary': json.load(open(r+'/summary.json'))}, open('models/$name/training.json','w'), indent=1)"
    done
fi
want cards && .venv/bin/python -m benchmarks.model_cards
