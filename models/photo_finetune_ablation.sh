#!/usr/bin/env bash
# Fine-tune ablation (stop 23): does continuing a trained model on `clutter-photo` pairs transfer better to a
# real pair than continuing it on as many new `clutter` pairs? From the shipped scratch student
# (models/checkpoints/student-scratch-fresh, 12,000 steps on clutter), 1,500 steps, batch 6 of 160x288, lr 3e-4
# cosine with 100 warm-up steps, ground truth only, 1 thread, training seeds 0 and 1, on 1,000 pairs of each
# generator (clutter-photo: seed 1, runs/gen-clutter-photo; clutter: seed 3, new to the model). Two runs at a
# time. Scores of the final step (fp32): synthetic validation (default generator, seed 0, 50 pairs at 256x512)
# and Aloe Q. Results: models/experiments/photo-finetune/results.jsonl. Resumable; rule: models/README.md.
# The same protocol then asks whether random scale augmentation (train --aug-scale 0.7,1.3) transfers better.
#   nohup bash models/photo_finetune_ablation.sh > runs/photo-finetune.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
ss=.venv/bin/stereo-studio
out=models/experiments/photo-finetune
mkdir -p "$out"
[[ -d runs/gen-clutter-photo ]] || .venv/bin/python models/generator_ablation.py clutter-photo
if [[ ! -d runs/gen-clutter-s3 ]]; then
    rm -rf runs/gen-clutter-s3.tmp
    $ss generate --generator clutter --out runs/gen-clutter-s3.tmp --pairs 1000 --size 256x512 --seed 3
    mv runs/gen-clutter-s3.tmp runs/gen-clutter-s3
fi
finetune() {  # NAME DATA SEED [TRAIN OPTION...]
    local run=runs/finetune-$1
    [[ -f $run/summary.json && -f $run/model/model.safetensors ]] && return
    local resume=(); [[ -f $run/checkpoints/last.pt ]] && resume=(--resume)
    OMP_WAIT_POLICY=PASSIVE nice -n 5 $ss train --init-from models/checkpoints/student-scratch-fresh/model \
        --data "$2" --steps 1500 --warmup 100 --batch-size 6 --crop 160x288 --lr 3e-4 --threads 1 \
        --precision fp32 --seed "$3" --val-pairs 4 --val-interval 500 --ckpt-interval 100 --out $run "${resume[@]}" "${@:4}"
}
score() {  # NAME
    grep -q "\"run\": \"$1\"" $out/results.jsonl 2>/dev/null && return
    local model=runs/finetune-$1/model synth aloe
    synth=$($ss eval --model $model --data synthetic --seed 0 --limit 50 --size 256x512 --precision fp32 --json | tail -1)
    aloe=$($ss eval --model $model --data ../shared/data/middlebury/trainingQ/Aloe --precision fp32 --json | tail -1)
    echo "{\"run\": \"$1\", \"synthetic\": $synth, \"aloe_q\": $aloe}" >> $out/results.jsonl
}
finetune photo-s0 runs/gen-clutter-photo 0 & finetune clutter-s0 runs/gen-clutter-s3 0 & wait
finetune photo-s1 runs/gen-clutter-photo 1 & finetune clutter-s1 runs/gen-clutter-s3 1 & wait
# Stop 23, second question: random scale augmentation (0.7-1.3x, log-uniform) on the control's pairs.
finetune scale-s0 runs/gen-clutter-s3 0 --aug-scale 0.7,1.3 & finetune scale-s1 runs/gen-clutter-s3 1 --aug-scale 0.7,1.3 & wait
for name in photo-s0 clutter-s0 photo-s1 clutter-s1 scale-s0 scale-s1; do score $name; done
.venv/bin/python - "$out/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
for r in rows:
    s, a = r["synthetic"], r["aloe_q"]
    print(f"{r['run']}: synthetic {s['epe']:.3f} / {s['bad2']:.1f} %  Aloe Q {a['epe']:.3f} / {a['bad2']:.1f} % / {a['bad3']:.1f} %")
for kind in ("photo", "clutter", "scale"):
    sel = [r for r in rows if r["run"].startswith(kind)]
    if sel:
        m = lambda k, key: sum(r[k][key] for r in sel) / len(sel)
        print(f"mean {kind}: synthetic {m('synthetic', 'epe'):.3f}, Aloe Q {m('aloe_q', 'epe'):.3f} / {m('aloe_q', 'bad2'):.1f} %")
PY
