#!/usr/bin/env bash
# The exact recipe of the v2 models, with the project's own CLI. Run from the repository root:
#   bash models/recipe.sh [STAGE...]
#   stages: data teacher data-clutter teacher-clutter data-clutter-s2 teacher-fresh scratch student-rescaled
#           student-fresh scratch-fresh pruned-fresh ship cards (default: all, in this order; teacher-clutter:
#           the v2 teacher fine-tuned on `clutter` data; teacher-fresh: that one continued on twice the unique
#           pairs, shipped as `teacher`; student-rescaled: the prune-ready student at a reg scaled to the
#           budget, distilled from teacher-clutter; student-fresh: it continued on both sets, distilled from
#           teacher-fresh, shipped as `student`; scratch-fresh: the scratch student continued the same way,
#           shipped as `student-scratch`; pruned-fresh: student-fresh pruned and recovered, shipped as
#           `student-pruned`)
#           pruned-rescaled (student-rescaled pruned and recovered: shipped in stops 20-21)
#           data-photo teacher-photo (stop 23: `clutter-photo` pairs and the teacher continued on them;
#           never ran: its rule failed, models/README.md)
#           teacher-scale (stop 23: teacher-fresh continued with random scale augmentation)
#           teacher-avg (stop 24: teacher-fresh continued on clutter + clutter-photo, scale augmentation and a
#           moving average of the weights; its rule failed)
#           teacher-photo-avg (stop 24: the same without scale; shipped as `teacher`)
#           teacher-scale-avg (stop 24: teacher-photo-avg with a narrower scale range, 0.85-1.15x)
#           teacher-cool (stop 25: teacher-avg continued 800 steps without scale augmentation)
#           student-scale scratch-scale pruned-scale (stop 25: the students continued with photographs, scale
#           augmentation and weight averaging)
#           teacher-up teacher-down (stop 25: teacher-fresh with pairs only enlarged / only shrunk)
#           teacher-resample (stop 25, a diagnostic: teacher-fresh with every crop resampled at 0.98-1.02x)
#           student-down scratch-more pruned-down (stop 26: the students from teacher-down, the scratch one
#           given the same steps; shipped) pruned-down-ema (stop 26: a longer, averaged recovery)
#           student-down-mix (stop 26: student-down continued with half of its crops shrunk 0.77-1x)
#           pruned-mix scratch-mix (stop 26: its pruned network, and the scratch student on the same crops)
#           pruned-mix-long pruned-mix-625 (stop 27: student-down-mix pruned at 0.75 / 0.625 of the MACs and
#           recovered 6,000 steps on resampled crops)
#           student-convex student-mix-more (stop 27: student-down-mix with a learned last upsampling, and
#           the control without) scratch-convex scratch-mix-more pruned-convex pruned-mix-more (their twins)
#           student-warp (stop 27: student-down-mix with the warping error in its refinement)
#           student-edge pruned-direct-edge scratch-edge pruned-edge (stop 28: the losses counting pixels near
#           depth edges 4x: student-mix-more, pruned-mix-long, scratch-mix-more and their pruned one with it)
#           pruned-direct-edge8 (stop 28: the dose, pixels near edges counted 9x in pruned-direct-edge)
#           student-lean (finished, not shipped: the prune-ready student on the lean-small architecture)
#           pruned-lean (student-lean pruned and recovered like pruned-rescaled)
#           student, pruned (the first v2 student and its pruned one, from the v2 teacher; superseded)
#           prune-ready   (issue 11's experiment: prune-ready distillation against the bundled student)
#           student-plain (experiment: the distilled student without prune-ready training)
#           teacher-wide (stop 31: teacher-down widened 2.6x in parameters and trained on; not shipped)
#           teacher-refine (stop 31: teacher-down given a residual refinement at 1/2 res and trained on; not shipped)
#           teacher-wide-long (stop 32: teacher-wide trained 3,000 steps more, with 4,000 new `clutter` pairs)
#           teacher-cascade (stop 32: teacher-down given a cascade stage at 1/2 res, trained like teacher-refine)
#           student-wide scratch-wide pruned-wide (stop 33: the shipped trio's students given 3,000 more steps,
#           the distilled one from the shipped wide teacher, and its pruned network recovered from that teacher)
#           cache-ta pruned-ta pruned-ta-only (stop 34: student-wide's pruned network recovered from student-wide
#           itself, with and without the ground truth)
#           pruned-window pruned-window-control (stop 34: the shipped pruned student fine-tuned with and without a
#           soft-argmin restricted to each pixel's peak; cache-wide first)
#           student-window scratch-window pruned-window-trio (stop 34, finished later: the students with that
#           regression, then the distilled one pruned; cache-wide first)
# Every long run keeps its run folder under models/checkpoints/<name>/ (config, metrics, the latest checkpoint
# with optimiser, schedule, data position and RNG), committed to the repository, so that a later work session,
# on another machine too, continues it with the same command: a stage resumes when its checkpoint is there and
# skips when its model is finished. The bundled models come from this recipe (the v1 ones came from
# models/recipe-v1.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ss=".venv/bin/stereo-studio"
export OMP_WAIT_POLICY=${TRAIN_OMP_WAIT_POLICY:-PASSIVE}
stages=("${@:-data teacher data-clutter teacher-clutter data-clutter-s2 teacher-fresh scratch student-rescaled
            student-fresh scratch-fresh pruned-fresh ship cards}")
stages=(${stages[*]})
want() { [[ " ${stages[*]} " == *" $1 "* ]]; }
ck=models/checkpoints
resume_flag() { [[ -f "$1/checkpoints/last.pt" ]] && echo --resume || true; }
done_run() { [[ -f "$1/model/model.safetensors" && -f "$1/summary.json" ]]; }
val_q=../shared/data/middlebury/trainingQ/Aloe  # a validation curve only: never trained on, never picked by

# Training pairs, generator seed 1 (evaluation uses seed 0: held out by construction). The teacher's data use
# the default generator (its run began before the generator ablation); the students' use `clutter`, the
# ablation's winner (models/README.md).
# generate NAME DIR [SEED]: 4,000 pairs of generator NAME (seed 1 unless given) into DIR, written to DIR.tmp
# and renamed when complete (an interrupted generation starts again instead of leaving a short dataset).
generate() {
    [[ -d $2 ]] && return
    rm -rf "$2.tmp"
    $ss generate --generator "$1" --out "$2.tmp" --pairs 4000 --size 256x512 --seed "${3:-1}" "${@:4}"
    mv "$2.tmp" "$2"
}
gen_default() { generate default runs/synth-train; }
gen_clutter() { generate clutter runs/synth-clutter; }
gen_clutter_s2() { generate clutter runs/synth-clutter-s2 2; }  # seed 2: new pairs (evaluation uses seed 0)
gen_clutter_s4() { generate clutter runs/synth-clutter-s4 4; }  # seed 4 (stop 32): 4,000 more new pairs
# `clutter-photo` (stop 23): half the surfaces painted with crops of real photographs (models/fetch_photos.sh
# takes a fixed set from Debian's opencv-doc package into runs/photos), generator seed 3.
gen_photo() { bash models/fetch_photos.sh runs/photos; generate clutter-photo runs/synth-clutter-photo 3 \
              --photos runs/photos; }
want data && gen_default
# Teacher: supervised on ground truth, 12,000 steps (hours, not minutes).
if want teacher && ! done_run $ck/teacher; then
    gen_default
    $ss train --arch teacher --data runs/synth-train \
        --val-data $val_q --val-pairs 1 --val-interval 500 --steps 12000 \
        --batch-size 6 --crop 160x288 --lr 1e-3 --ckpt-interval 100 --threads 2 --precision fp32 --max-disp 64 \
        --seed 0 --out $ck/teacher $(resume_flag $ck/teacher)
fi
want data-clutter && gen_clutter
# Teacher fine-tuned on `clutter` data, the generator ablation's winner (models/README.md), shipped as
# `teacher`: the v2 teacher was trained on the default generator and its Aloe Q curve was flat from step
# 8,000; 3,000 more steps from it at lr 3e-4 cosine (100 warm-up steps), same crops and batch.
if want teacher-clutter && ! done_run $ck/teacher-clutter; then
    gen_clutter
    done_run $ck/teacher || { echo "the teacher is not finished: bash models/recipe.sh teacher" >&2; exit 1; }
    $ss train --init-from $ck/teacher/model --data runs/synth-clutter \
        --val-data $val_q --val-pairs 1 --val-interval 500 --steps 3000 --warmup 100 \
        --batch-size 6 --crop 160x288 --lr 3e-4 --ckpt-interval 100 --threads 2 --precision fp32 \
        --seed 0 --out $ck/teacher-clutter $(resume_flag $ck/teacher-clutter)
fi
want data-clutter-s2 && gen_clutter_s2
# Experiment (stop 21): the shipped teacher, 3,000 more steps on twice the unique `clutter` pairs (the 4,000
# it saw 4.5 times, plus 4,000 new ones of generator seed 2), lr 2e-4 cosine (100 warm-up steps), otherwise
# the teacher-clutter settings. Ships as `teacher` only if better on held-out synthetic (models/README.md).
if want teacher-fresh && ! done_run $ck/teacher-fresh; then
    gen_clutter; gen_clutter_s2
    done_run $ck/teacher-clutter || { echo "run: bash models/recipe.sh teacher-clutter" >&2; exit 1; }
    $ss train --init-from $ck/teacher-clutter/model --data runs/synth-clutter,runs/synth-clutter-s2 \
        --val-data $val_q --val-pairs 1 --val-interval 500 --steps 3000 --warmup 100 \
        --batch-size 6 --crop 160x288 --lr 2e-4 --ckpt-interval 100 --threads 2 --precision fp32 \
        --seed 0 --out $ck/teacher-fresh $(resume_flag $ck/teacher-fresh)
fi
want data-photo && gen_photo
# Experiment (stop 23): the shipped teacher (teacher-fresh), 3,000 more steps on 4,000 `clutter-photo` pairs,
# lr 2e-4 cosine (100 warm-up steps), otherwise the teacher-fresh settings. Runs only if the generator
# ablation adopts `clutter-photo`, ships as `teacher` only by the rule in models/README.md.
if want teacher-photo && ! done_run $ck/teacher-photo; then
    gen_photo
    done_run $ck/teacher-fresh || { echo "run: bash models/recipe.sh teacher-fresh" >&2; exit 1; }
    $ss train --init-from $ck/teacher-fresh/model --data runs/synth-clutter-photo \
        --val-data $val_q --val-pairs 1 --val-interval 500 --steps 3000 --warmup 100 \
        --batch-size 6 --crop 160x288 --lr 2e-4 --ckpt-interval 100 --threads 2 --precision fp32 \
        --seed 0 --out $ck/teacher-photo $(resume_flag $ck/teacher-photo)
fi
# Experiment (stop 23): teacher-fresh, 3,000 more steps on both `clutter` sets with random scale augmentation
# (0.7-1.3x), lr 2e-4 cosine (100 warm-up steps), otherwise the teacher-fresh settings. Runs only if the scale
# fine-tune ablation adopts it; ships as `teacher` only by the rule in models/README.md.
if want teacher-scale && ! done_run $ck/teacher-scale; then
    gen_clutter; gen_clutter_s2
    done_run $ck/teacher-fresh || { echo "run: bash models/recipe.sh teacher-fresh" >&2; exit 1; }
    $ss train --init-from $ck/teacher-fresh/model --data runs/synth-clutter,runs/synth-clutter-s2 \
        --val-data $val_q --val-pairs 1 --val-interval 500 --steps 3000 --warmup 100 --aug-scale 0.7,1.3 \
        --batch-size 6 --crop 160x288 --lr 2e-4 --ckpt-interval 100 --threads 2 --precision fp32 \
        --seed 0 --out $ck/teacher-scale $(resume_flag $ck/teacher-scale)
fi
# Stop 24: teacher-fresh continued on both `clutter` sets plus the `clutter-photo` pairs with a moving average
# of the weights (decay 0.999: the average is what the run saves), lr 2e-4 cosine (100 warm-up steps), otherwise
# the teacher-fresh settings. teacher_from_fresh RUN STEPS [MORE TRAIN FLAGS...]
teacher_from_fresh() {
    gen_clutter; gen_clutter_s2; gen_photo
    done_run $ck/teacher-fresh || { echo "run: bash models/recipe.sh teacher-fresh" >&2; exit 1; }
    $ss train --init-from $ck/teacher-fresh/model \
        --data runs/synth-clutter,runs/synth-clutter-s2,runs/synth-clutter-photo \
        --val-data $val_q --val-pairs 1 --val-interval 500 --steps "$2" --warmup 100 "${@:3}" \
        --ema 0.999 --batch-size 6 --crop 160x288 --lr 2e-4 --ckpt-interval 100 --threads 2 --precision fp32 \
        --seed 0 --out $ck/$1 $(resume_flag $ck/$1)
}
# Each ships as `teacher` only by its rule in models/README.md (sections "Weight averaging, photographs and scale
# together on the teacher", "Photographs and weight averaging, without scale", "A narrower scale range").
# 3,000 steps with random scale augmentation (0.7-1.3x): its rule failed.
want teacher-avg && ! done_run $ck/teacher-avg && teacher_from_fresh teacher-avg 3000 --aug-scale 0.7,1.3
# 2,000 steps without scale augmentation: shipped as `teacher` (stop 24).
want teacher-photo-avg && ! done_run $ck/teacher-photo-avg && teacher_from_fresh teacher-photo-avg 2000
# 2,000 steps with a narrower scale range (0.85-1.15x).
want teacher-scale-avg && ! done_run $ck/teacher-scale-avg && teacher_from_fresh teacher-scale-avg 2000 \
    --aug-scale 0.85,1.15
# Stop 25: teacher-avg (its average) cooled down at the generator's own scale: 800 steps on the same three sets
# without scale augmentation, lr 1e-4 cosine (50 warm-up steps), a ~100-step moving average. Ships as `teacher`
# only by its rule in models/README.md ("Scale augmentation, then a native-scale cool-down").
if want teacher-cool && ! done_run $ck/teacher-cool; then
    gen_clutter; gen_clutter_s2; gen_photo
    done_run $ck/teacher-avg || { echo "run: bash models/recipe.sh teacher-avg" >&2; exit 1; }
    $ss train --init-from $ck/teacher-avg/model \
        --data runs/synth-clutter,runs/synth-clutter-s2,runs/synth-clutter-photo \
        --val-data $val_q --val-pairs 1 --val-interval 200 --steps 800 --warmup 50 \
        --ema 0.99 --batch-size 6 --crop 160x288 --lr 1e-4 --ckpt-interval 100 --threads 2 --precision fp32 \
        --seed 0 --out $ck/teacher-cool $(resume_flag $ck/teacher-cool)
fi
# Stop 25: which side of the scale range carries the real-pair gain: 2,000 steps with pairs enlarged only
# (1.0-1.3x) or shrunk only (0.77-1.0x), otherwise the teacher-photo-avg settings.
want teacher-up && ! done_run $ck/teacher-up && teacher_from_fresh teacher-up 2000 --aug-scale 1.0,1.3
want teacher-down && ! done_run $ck/teacher-down && teacher_from_fresh teacher-down 2000 --aug-scale 0.77,1.0
# Stop 31: teacher_from_down RUN STEPS CONFIG: teacher-down grown by the JSON CONFIG (stereo_studio/models/grow.py: it starts
# out predicting exactly what teacher-down predicts), then STEPS more steps with teacher-down's settings at lr 3e-4
# (the new channels or stage start from scratch). Each ships as `teacher` only by its rule in models/README.md.
teacher_from_down() {
    gen_clutter; gen_clutter_s2; gen_photo
    done_run $ck/teacher-down || { echo "run: bash models/recipe.sh teacher-down" >&2; exit 1; }
    $ss train --init-from $ck/teacher-down/model --model-config "$3" \
        --data runs/synth-clutter,runs/synth-clutter-s2,runs/synth-clutter-photo \
        --val-data $val_q --val-pairs 1 --val-interval 500 --steps "$2" --warmup 100 --aug-scale 0.77,1.0 \
        --ema 0.999 --batch-size 6 --crop 160x288 --lr 3e-4 --ckpt-interval 100 --threads 2 --precision fp32 \
        --seed 0 --out $ck/$1 $(resume_flag $ck/$1)
}
# A teacher with room to teach: the shipped teachers all had 0.30 M parameters, 1.2x the student's. Widened to
# 1/2- and 1/4-res features of 48 / 96 channels, a 16-group correlation of 128 channels (8 per group, as before),
# 3D aggregation of 32 channels with a 64-channel hourglass and a 96-channel upsampling mask (0.79 M parameters),
# 2,500 steps ("A wider teacher"): its rule failed (level with teacher-down on held-out pairs), not shipped.
wide_teacher='{"feature_channels": [48, 96], "gwc_channels": 128, "groups": 16, "agg_channels": 32,
               "hourglass_channels": 64, "mask_channels": 96}'
want teacher-wide && ! done_run $ck/teacher-wide && teacher_from_down teacher-wide 2500 "$wide_teacher"
# The wide teacher had 82 min; its Aloe Q curve was still falling (1.331 -> 1.303 -> 1.286) and its training loss
# too, while its held-out synthetic EPE stayed level: 3,000 more steps from its final (averaged) weights, with
# 4,000 new `clutter` pairs (seed 4) beside the three sets it saw, lr 2e-4 ("The wide teacher, longer").
if want teacher-wide-long && ! done_run $ck/teacher-wide-long; then
    gen_clutter; gen_clutter_s2; gen_clutter_s4; gen_photo
    done_run $ck/teacher-wide || { echo "run: bash models/recipe.sh teacher-wide" >&2; exit 1; }
    $ss train --init-from $ck/teacher-wide/model \
        --data runs/synth-clutter,runs/synth-clutter-s2,runs/synth-clutter-s4,runs/synth-clutter-photo \
        --val-data $val_q --val-pairs 1 --val-interval 500 --steps 3000 --warmup 100 --aug-scale 0.77,1.0 \
        --ema 0.999 --batch-size 6 --crop 160x288 --lr 2e-4 --ckpt-interval 100 --threads 2 --precision fp32 \
        --seed 0 --out $ck/teacher-wide-long $(resume_flag $ck/teacher-wide-long)
fi
# Where the teachers' error arises (models/quarter_res_floor.py: in the 1/4-res estimate, not the x4 upsampling)
# suggested a finer stage rather than width: a residual refinement at 1/2 res (refine_channels 16: the 1/2-res
# left features, the disparity and the warping error of the 1/2-res features; its last conv starts at zero),
# 2,000 steps ("A teacher refined at 1/2 resolution"): its rule failed (level with teacher-down), not shipped.
want teacher-refine && ! done_run $ck/teacher-refine && \
    teacher_from_down teacher-refine 2000 '{"refine_channels": 16}'
# The refinement saw one warping error; a cascade stage sees a cost volume: the group-wise correlation of the
# 1/2-res features at 7 hypotheses, +-3 px around the disparity, aggregated with the left features into logits
# over the offsets (their conv starts at zero: teacher-down's predictions at step 0), 2,000 steps like
# teacher-refine ("A cascade stage at 1/2 resolution").
want teacher-cascade && ! done_run $ck/teacher-cascade && \
    teacher_from_down teacher-cascade 2000 '{"cascade_channels": 32}'
# Diagnostic (stop 25, never shipped): every crop resampled at nearly the generator's scale (0.98-1.02x).
want teacher-resample && ! done_run $ck/teacher-resample && teacher_from_fresh teacher-resample 2000 \
    --aug-scale 0.98,1.02
# The students' common budget: 7,000 steps x batch 6 of 160x288 crops, lr 1e-3 cosine, fp32, 2 threads.
student=(--arch student --steps 7000 --batch-size 6 --crop 160x288 --lr 1e-3 --threads 2 --precision fp32
         --max-disp 64 --seed 0 --val-data $val_q --val-pairs 1 --val-interval 500 --ckpt-interval 100)
# Student baseline from scratch, ground truth only.
if want scratch && ! done_run $ck/student-scratch; then
    gen_clutter
    $ss train --data runs/synth-clutter "${student[@]}" --out $ck/student-scratch \
        $(resume_flag $ck/student-scratch)
fi
# Distilled student: the teacher's disparity (L1, computed once per pair: --teacher-cache) plus ground truth,
# trained prune-ready (slimmable: every step also trains the network pruned at 0.75 of the MACs, the cut that
# the latency goals need: about the v1 pruned student's size).
if want student && ! done_run $ck/student; then
    gen_clutter
    done_run $ck/teacher || { echo "the teacher is not finished: bash models/recipe.sh teacher" >&2; exit 1; }
    $ss distill --teacher $ck/teacher/model --data runs/synth-clutter --teacher-cache runs/teacher-cache \
        --w-teacher 1 --w-gt 1 --prune-ready --sparsity-method slimmable --sparsity-reg 1 --target-ratio 0.75 \
        "${student[@]}" --out $ck/student $(resume_flag $ck/student)
fi
# Experiment (not shipped): the same distilled student without prune-ready training, to measure distillation
# itself against student-scratch (the prune-ready one trains at a quarter of its width from step ~2,500).
if want student-plain && ! done_run $ck/student-plain; then
    gen_clutter
    done_run $ck/teacher || { echo "the teacher is not finished: bash models/recipe.sh teacher" >&2; exit 1; }
    $ss distill --teacher $ck/teacher/model --data runs/synth-clutter --teacher-cache runs/teacher-cache \
        --w-teacher 1 --w-gt 1 "${student[@]}" --out $ck/student-plain $(resume_flag $ck/student-plain)
fi
# Shipped student (`student`): distilled from the shipped teacher (the clutter fine-tune), prune-ready with
# the slimmable method at a reg scaled to this budget (the proximal shrink is lr x reg per step: reg 1 zeroed
# the channels to go by step ~2,500 of 7,000; 0.2 is issue 11's 1,500-step dose spread over 7,000 steps).
if want student-rescaled && ! done_run $ck/student-rescaled; then
    gen_clutter
    done_run $ck/teacher-clutter || { echo "run: bash models/recipe.sh teacher-clutter" >&2; exit 1; }
    $ss distill --teacher $ck/teacher-clutter/model --data runs/synth-clutter --teacher-cache runs/teacher-cache \
        --w-teacher 1 --w-gt 1 --prune-ready --sparsity-method slimmable --sparsity-reg 0.2 --target-ratio 0.75 \
        "${student[@]}" --out $ck/student-rescaled $(resume_flag $ck/student-rescaled)
fi
# Experiment (stop 20-21, finished, not shipped: Aloe Q 1.91): the same prune-ready distillation on a
# student designed for the latency goals: `lean-small` of the student ablation (no 1/2-res residual blocks,
# one aggregation block, no 1/8-res branch: 0.60 GMAC before pruning; models/README.md, "Student design for
# this CPU").
if want student-lean && ! done_run $ck/student-lean; then
    gen_clutter
    done_run $ck/teacher-clutter || { echo "run: bash models/recipe.sh teacher-clutter" >&2; exit 1; }
    $ss distill --teacher $ck/teacher-clutter/model --data runs/synth-clutter --teacher-cache runs/teacher-cache \
        --w-teacher 1 --w-gt 1 --prune-ready --sparsity-method slimmable --sparsity-reg 0.2 --target-ratio 0.75 \
        --model-config '{"half_block": false, "refine_block": false, "agg_blocks": 1, "low_res_channels": 0}' \
        "${student[@]}" --out $ck/student-lean $(resume_flag $ck/student-lean)
fi
# Experiment (stop 22): the students continued on twice the unique `clutter` pairs, the student distilled from
# the new teacher (teacher-fresh, cached on both sets), the scratch one on ground truth only, at the same
# budget: 5,000 more steps each from the 7,000-step runs, lr 3e-4 cosine (100 warm-up steps), otherwise the
# students' settings (the distilled one stays prune-ready). Rules fixed before the result: models/README.md.
more=(--data runs/synth-clutter,runs/synth-clutter-s2 --steps 5000 --warmup 100 --batch-size 6 --crop 160x288
      --lr 3e-4 --threads 2 --precision fp32 --seed 0 --val-data $val_q --val-pairs 1 --val-interval 500
      --ckpt-interval 100)
if want student-fresh && ! done_run $ck/student-fresh; then
    gen_clutter; gen_clutter_s2
    for run in student-rescaled teacher-fresh; do
        done_run $ck/$run || { echo "$run is not finished (its recipe stage first)" >&2; exit 1; }
    done
    $ss distill --teacher $ck/teacher-fresh/model --init-from $ck/student-rescaled/model \
        --teacher-cache runs/teacher-cache --w-teacher 1 --w-gt 1 --prune-ready --sparsity-method slimmable \
        --sparsity-reg 0.2 --target-ratio 0.75 "${more[@]}" --out $ck/student-fresh $(resume_flag $ck/student-fresh)
fi
if want scratch-fresh && ! done_run $ck/student-scratch-fresh; then
    gen_clutter; gen_clutter_s2
    done_run $ck/student-scratch || { echo "run: bash models/recipe.sh scratch" >&2; exit 1; }
    $ss train --init-from $ck/student-scratch/model "${more[@]}" --out $ck/student-scratch-fresh \
        $(resume_flag $ck/student-scratch-fresh)
fi
# Pruned student: the sweep that chooses the ratio (models/README.md), pruning at PRUNE_RATIO (fraction of the
# MACs, global L1 ranking, widths multiple of 8; default: the prune-ready target), then a distillation that
# recovers it. prune_student SOURCE OUT TEACHER [DATA [MORE DISTILL FLAGS...]] (run folders under $ck; data: the
# clutter set).
ratio=${PRUNE_RATIO:-0.75}
prune_student() {
    local src=$1 out=$2 teacher=$3 data=${4:-runs/synth-clutter} raw=runs/$2-raw
    done_run $ck/$src || { echo "$src is not finished (its recipe stage first)" >&2; exit 1; }
    if [[ ! -f $ck/sweep-$src.jsonl ]]; then
        $ss sweep --model $ck/$src/model --ratios 0,0.25,0.5,0.625,0.75,0.85 --data synthetic --json \
            > $ck/sweep-$src.jsonl.tmp
        mv $ck/sweep-$src.jsonl.tmp $ck/sweep-$src.jsonl
    fi
    local cut=(--ratio "$ratio")
    [[ -n ${plan:-} ]] && cut=(--ratios "$plan")  # plan=FILE.json: per-layer ratios (a sensitivity plan)
    [[ -f $raw/model.safetensors ]] || \
        $ss prune --model $ck/$src/model "${cut[@]}" --criterion l1 --out $raw
    $ss distill --teacher $ck/$teacher/model --init-from $raw --data $data \
        --teacher-cache runs/teacher-cache --w-teacher 1 --w-gt 1 --steps 2000 --batch-size 6 --crop 160x288 \
        --lr 2e-4 --threads 2 --precision fp32 --seed 0 --val-data $val_q --val-pairs 1 --val-interval 500 \
        --ckpt-interval 100 "${@:5}" --out $ck/$out $(resume_flag $ck/$out)
}
if want pruned && ! done_run $ck/student-pruned; then
    prune_student student student-pruned teacher
fi
# The same from student-rescaled, recovered with the shipped (clutter) teacher.
if want pruned-rescaled && ! done_run $ck/student-rescaled-pruned; then
    gen_clutter
    prune_student student-rescaled student-rescaled-pruned teacher-clutter
fi
# Experiment (stop 21, not shipped): student-lean pruned and recovered the same way.
if want pruned-lean && ! done_run $ck/student-lean-pruned; then
    gen_clutter
    prune_student student-lean student-lean-pruned teacher-clutter
fi
# Experiment (stop 22): student-fresh pruned the same way, recovered with teacher-fresh on both sets.
if want pruned-fresh && ! done_run $ck/student-fresh-pruned; then
    gen_clutter; gen_clutter_s2
    prune_student student-fresh student-fresh-pruned teacher-fresh runs/synth-clutter,runs/synth-clutter-s2
fi
# Stop 25: the three students continued on both `clutter` sets plus the `clutter-photo` pairs with random scale
# augmentation (0.7-1.3x) and a moving average of the weights (0.999), 3,000 steps at lr 3e-4 cosine (100 warm-up
# steps), otherwise the students' settings: the distilled one from the shipped teacher (teacher-photo-avg, cached
# on the three sets) and still prune-ready, the scratch one on ground truth only, then the distilled one pruned at
# the ratio its sweep supports and recovered the same way. They ship together or not at all, by the rule in
# models/README.md ("The students with photographs and scale augmentation").
scaled=(--data runs/synth-clutter,runs/synth-clutter-s2,runs/synth-clutter-photo --aug-scale 0.7,1.3 --ema 0.999
        --steps 3000 --warmup 100 --batch-size 6 --crop 160x288 --lr 3e-4 --threads 2 --precision fp32 --seed 0
        --val-data $val_q --val-pairs 1 --val-interval 500 --ckpt-interval 100)
if want student-scale && ! done_run $ck/student-scale; then
    gen_clutter; gen_clutter_s2; gen_photo
    for run in student-fresh teacher-photo-avg; do
        done_run $ck/$run || { echo "$run is not finished (its recipe stage first)" >&2; exit 1; }
    done
    $ss distill --teacher $ck/teacher-photo-avg/model --init-from $ck/student-fresh/model \
        --teacher-cache runs/teacher-cache --w-teacher 1 --w-gt 1 --prune-ready --sparsity-method slimmable \
        --sparsity-reg 0.2 --target-ratio 0.75 "${scaled[@]}" \
        --out $ck/student-scale $(resume_flag $ck/student-scale)
fi
if want scratch-scale && ! done_run $ck/student-scratch-scale; then
    gen_clutter; gen_clutter_s2; gen_photo
    done_run $ck/student-scratch-fresh || { echo "run: bash models/recipe.sh scratch-fresh" >&2; exit 1; }
    $ss train --init-from $ck/student-scratch-fresh/model "${scaled[@]}" \
        --out $ck/student-scratch-scale $(resume_flag $ck/student-scratch-scale)
fi
if want pruned-scale && ! done_run $ck/student-scale-pruned; then
    gen_clutter; gen_clutter_s2; gen_photo
    prune_student student-scale student-scale-pruned teacher-photo-avg \
        runs/synth-clutter,runs/synth-clutter-s2,runs/synth-clutter-photo --aug-scale 0.7,1.3 --ema 0.999
fi
# Stop 26: the students from teacher-down (chosen as the issue asks: models/README.md, "Choosing the teacher as
# the issue asks"): student-fresh distilled 3,000 more steps from it with student-fresh's continuation settings,
# the scratch student given the same 3,000 steps on ground truth, and the distilled one pruned and recovered.
down=(--data runs/synth-clutter,runs/synth-clutter-s2 --steps 3000 --warmup 100 --batch-size 6 --crop 160x288
      --lr 3e-4 --threads 2 --precision fp32 --seed 0 --val-data $val_q --val-pairs 1 --val-interval 500
      --ckpt-interval 100)
# distill_from_down RUN FROM [MORE DISTILL FLAGS...]: the run FROM distilled 3,000 more steps from teacher-down.
distill_from_down() {
    gen_clutter; gen_clutter_s2
    for run in "$2" teacher-down; do
        done_run $ck/$run || { echo "$run is not finished (its recipe stage first)" >&2; exit 1; }
    done
    $ss distill --teacher $ck/teacher-down/model --init-from $ck/$2/model \
        --teacher-cache runs/teacher-cache --w-teacher 1 --w-gt 1 --prune-ready --sparsity-method slimmable \
        --sparsity-reg 0.2 --target-ratio 0.75 "${down[@]}" "${@:3}" --out $ck/$1 $(resume_flag $ck/$1)
}
want student-down && ! done_run $ck/student-down && distill_from_down student-down student-fresh
if want scratch-more && ! done_run $ck/student-scratch-more; then
    gen_clutter; gen_clutter_s2
    done_run $ck/student-scratch-fresh || { echo "run: bash models/recipe.sh scratch-fresh" >&2; exit 1; }
    $ss train --init-from $ck/student-scratch-fresh/model "${down[@]}" --out $ck/student-scratch-more \
        $(resume_flag $ck/student-scratch-more)
fi
if want pruned-down && ! done_run $ck/student-down-pruned; then
    gen_clutter; gen_clutter_s2
    prune_student student-down student-down-pruned teacher-down runs/synth-clutter,runs/synth-clutter-s2
fi
# Stop 26: the same prune, recovered twice as long (4,000 steps) with a moving average of the weights (0.999):
# its recovery curve above was best after 500 steps and drifted after. Ships as `student-pruned` by the rule in
# models/README.md ("A longer, averaged recovery of the pruned student").
if want pruned-down-ema && ! done_run $ck/student-down-pruned-ema; then
    gen_clutter; gen_clutter_s2
    prune_student student-down student-down-pruned-ema teacher-down runs/synth-clutter,runs/synth-clutter-s2 \
        --steps 4000 --ema 0.999
fi
# Experiment (stop 26): student-down 3,000 more steps with half of its crops shrunk 0.77-1x (the resampling that
# made teacher-down), otherwise student-down's settings and teacher. Recorded for the next stop
# (models/README.md, "Resampled crops for the distilled student").
want student-down-mix && ! done_run $ck/student-down-mix && \
    distill_from_down student-down-mix student-down --aug-scale 0.77,1.0 --aug-scale-prob 0.5
# Stop 26, to ship in a later stop by the rule in models/README.md ("Resampled crops for the distilled student"):
# student-down-mix pruned and recovered like pruned-down-ema, and the scratch student given the same crops.
if want pruned-mix && ! done_run $ck/student-down-mix-pruned; then
    gen_clutter; gen_clutter_s2
    prune_student student-down-mix student-down-mix-pruned teacher-down runs/synth-clutter,runs/synth-clutter-s2 \
        --steps 4000 --ema 0.999
fi
if want scratch-mix && ! done_run $ck/student-scratch-mix; then
    gen_clutter; gen_clutter_s2
    done_run $ck/student-scratch-more || { echo "run: bash models/recipe.sh scratch-more" >&2; exit 1; }
    $ss train --init-from $ck/student-scratch-more/model "${down[@]}" --aug-scale 0.77,1.0 --aug-scale-prob 0.5 \
        --out $ck/student-scratch-mix $(resume_flag $ck/student-scratch-mix)
fi
# Stop 27: student-down-mix pruned again and recovered 6,000 steps on the student's resampled crops (half shrunk
# 0.77-1x) with a moving average, at the sweep's ratio (0.75 of the MACs) and at 0.625; the rule in models/README.md
# ("The pruned student recovered on resampled crops, at two ratios").
mixrec=(--threads 1 --steps 6000 --ema 0.999 --aug-scale 0.77,1.0 --aug-scale-prob 0.5)
if want pruned-mix-long && ! done_run $ck/student-down-mix-pruned-long; then
    gen_clutter; gen_clutter_s2
    prune_student student-down-mix student-down-mix-pruned-long teacher-down runs/synth-clutter,runs/synth-clutter-s2 \
        "${mixrec[@]}"
fi
if want pruned-mix-625 && ! done_run $ck/student-down-mix-pruned-625; then
    gen_clutter; gen_clutter_s2
    ratio=0.625 prune_student student-down-mix student-down-mix-pruned-625 teacher-down \
        runs/synth-clutter,runs/synth-clutter-s2 "${mixrec[@]}"
fi
# Stop 27: the student's last x2 learned (convex upsampling, starting as bilinear: models/with_options.py) against a
# control given the same 3,000 more steps without it; then the scratch twin and the pruned network of the one
# the rule in models/README.md ("Where the errors are, and a learned upsampling for the student") adopts.
more_mix=(--aug-scale 0.77,1.0 --aug-scale-prob 0.5 --ema 0.999 --threads 1)
convex_init() {  # convex_init RUN: runs/RUN-convex-init, RUN's model with convex upsampling (deterministic)
    [[ -f runs/$1-convex-init/model.safetensors ]] || \
        .venv/bin/python models/with_options.py $ck/$1/model runs/$1-convex-init upsample=convex
}
# distill_more RUN INIT [FLAGS...]: INIT (a model folder) distilled 3,000 more steps from teacher-down like
# student-down-mix (FLAGS: more distill flags); distill_teacher=RUN distils from another teacher.
distill_more() {
    gen_clutter; gen_clutter_s2
    $ss distill --teacher $ck/${distill_teacher:-teacher-down}/model --init-from "$2" \
        --teacher-cache runs/teacher-cache --w-teacher 1 --w-gt 1 --prune-ready --sparsity-method slimmable \
        --sparsity-reg 0.2 --target-ratio 0.75 "${down[@]}" "${more_mix[@]}" "${@:3}" --out $ck/$1 \
        $(resume_flag $ck/$1)
}
# scratch_more RUN INIT [FLAGS...]: INIT trained 3,000 more steps on ground truth with the same crops and
# average (FLAGS: more train flags).
scratch_more() {
    gen_clutter; gen_clutter_s2
    $ss train --init-from "$2" "${down[@]}" "${more_mix[@]}" "${@:3}" --out $ck/$1 $(resume_flag $ck/$1)
}
if want student-convex && ! done_run $ck/student-convex; then
    convex_init student-down-mix
    distill_more student-convex runs/student-down-mix-convex-init
fi
want student-mix-more && ! done_run $ck/student-mix-more && distill_more student-mix-more $ck/student-down-mix/model
if want scratch-convex && ! done_run $ck/student-scratch-convex; then
    convex_init student-scratch-mix
    scratch_more student-scratch-convex runs/student-scratch-mix-convex-init
fi
want scratch-mix-more && ! done_run $ck/student-scratch-mix-more && \
    scratch_more student-scratch-mix-more $ck/student-scratch-mix/model
# Stop 27: the refinement also given the warping error of the 1/2-res features (refine_warp, starting at zero),
# against the same control (models/README.md, "The refinement told where the disparity fails").
if want student-warp && ! done_run $ck/student-warp; then
    [[ -f runs/student-down-mix-warp-init/model.safetensors ]] || \
        .venv/bin/python models/with_options.py $ck/student-down-mix/model runs/student-down-mix-warp-init \
            refine_warp=true
    distill_more student-warp runs/student-down-mix-warp-init
fi
# prune_mix RUN: RUN pruned and recovered like student-down-mix-pruned-long.
prune_mix() {
    gen_clutter; gen_clutter_s2
    prune_student $1 $1-pruned teacher-down runs/synth-clutter,runs/synth-clutter-s2 "${mixrec[@]}"
}
want pruned-convex && ! done_run $ck/student-convex-pruned && prune_mix student-convex
want pruned-mix-more && ! done_run $ck/student-mix-more-pruned && prune_mix student-mix-more
# Stop 28: the same runs with pixels near depth edges counted 4x in the losses (--edge-weight 3), against
# their controls student-mix-more and student-down-mix-pruned-long (models/README.md, "Edges weighted in the
# losses"). Each stage runs on one thread so that two go side by side.
edge=(--edge-weight 3)
want student-edge && ! done_run $ck/student-edge && \
    distill_more student-edge $ck/student-down-mix/model "${edge[@]}"
if want pruned-direct-edge && ! done_run $ck/student-down-mix-pruned-edge; then
    gen_clutter; gen_clutter_s2
    prune_student student-down-mix student-down-mix-pruned-edge teacher-down \
        runs/synth-clutter,runs/synth-clutter-s2 "${mixrec[@]}" "${edge[@]}"
fi
# The dose: the same recovery with pixels near edges counted 9x (--edge-weight 8).
if want pruned-direct-edge8 && ! done_run $ck/student-down-mix-pruned-edge8; then
    gen_clutter; gen_clutter_s2
    prune_student student-down-mix student-down-mix-pruned-edge8 teacher-down \
        runs/synth-clutter,runs/synth-clutter-s2 "${mixrec[@]}" --edge-weight 8
fi
want scratch-edge && ! done_run $ck/student-scratch-edge && \
    scratch_more student-scratch-edge $ck/student-scratch-mix/model "${edge[@]}"
if want pruned-edge && ! done_run $ck/student-edge-pruned; then
    gen_clutter; gen_clutter_s2
    prune_student student-edge student-edge-pruned teacher-down runs/synth-clutter,runs/synth-clutter-s2 \
        "${mixrec[@]}" "${edge[@]}"
fi
# Stop 29: the edge-weighted trio given 3,000 more student steps (models/README.md, "The edge-weighted trio,
# longer (stop 29)"): student-edge and its scratch twin continued, then the longer student cut and recovered.
want student-edge-more && ! done_run $ck/student-edge-more && \
    distill_more student-edge-more $ck/student-edge/model "${edge[@]}"
want scratch-edge-more && ! done_run $ck/student-scratch-edge-more && \
    scratch_more student-scratch-edge-more $ck/student-scratch-edge/model "${edge[@]}"
if want pruned-edge-more && ! done_run $ck/student-edge-more-pruned; then
    gen_clutter; gen_clutter_s2
    prune_student student-edge-more student-edge-more-pruned teacher-down runs/synth-clutter,runs/synth-clutter-s2 \
        "${mixrec[@]}" "${edge[@]}"
fi
# Stop 33 (models/README.md, "The trio from the wide teacher"): the shipped students given 3,000 more steps each,
# the distilled one from the shipped teacher (teacher-wide-long) instead of teacher-down, then its network cut at
# 0.75 of the MACs and recovered from that teacher like student-edge-more-pruned. The teacher's disparity is
# cached once on both sets (cache-wide, one thread, beside scratch-wide), then the distilled one trains on both
# threads (thread counts change the arithmetic's order, not the recipe).
# (`distill --cache-only`: keyed by the teacher, the data and the student's max disparity; a complete cache
# returns at once, a partial one is completed.)
if want cache-wide; then
    gen_clutter; gen_clutter_s2
    $ss distill --cache-only --teacher $ck/teacher-wide-long/model --init-from $ck/student-edge-more/model \
        --teacher-cache runs/teacher-cache --data runs/synth-clutter,runs/synth-clutter-s2 --threads 1
fi
want student-wide && ! done_run $ck/student-wide && \
    distill_teacher=teacher-wide-long distill_more student-wide $ck/student-edge-more/model "${edge[@]}" --threads 2
want scratch-wide && ! done_run $ck/student-scratch-wide && \
    scratch_more student-scratch-wide $ck/student-scratch-edge-more/model "${edge[@]}"
if want pruned-wide && ! done_run $ck/student-wide-pruned; then
    gen_clutter; gen_clutter_s2
    prune_student student-wide student-wide-pruned teacher-wide-long runs/synth-clutter,runs/synth-clutter-s2 \
        "${mixrec[@]}" "${edge[@]}"
fi
# Stop 34 (models/README.md, "The pruned student recovered from its own student (stop 34)"): student-wide cut at
# 0.75 exactly like student-wide-pruned and recovered from student-wide itself instead of the teacher (a teacher
# assistant: the network it was cut from, 4x its MACs, where the teacher has 16x), with the ground truth
# (pruned-ta) and without it (pruned-ta-only: teacher-output L1 alone, the paper's best). student-wide's disparity
# is cached once first (cache-ta, both threads); the two recoveries then run side by side on a thread each.
if want cache-ta; then
    gen_clutter; gen_clutter_s2
    $ss distill --cache-only --teacher $ck/student-wide/model --init-from $ck/student-wide-pruned/model \
        --teacher-cache runs/teacher-cache --data runs/synth-clutter,runs/synth-clutter-s2 --threads 2
fi
if want pruned-ta && ! done_run $ck/student-wide-pruned-ta; then
    gen_clutter; gen_clutter_s2
    prune_student student-wide student-wide-pruned-ta student-wide runs/synth-clutter,runs/synth-clutter-s2 \
        "${mixrec[@]}" "${edge[@]}"
fi
if want pruned-ta-only && ! done_run $ck/student-wide-pruned-ta-only; then
    gen_clutter; gen_clutter_s2
    prune_student student-wide student-wide-pruned-ta-only student-wide runs/synth-clutter,runs/synth-clutter-s2 \
        "${mixrec[@]}" "${edge[@]}" --w-gt 0
fi
# Stop 34 (models/README.md, "A regression that picks one surface at depth edges (stop 34)"): the shipped pruned
# student fine-tuned 3,000 more steps from the shipped teacher (its cache: cache-wide), with the 1/4-res soft-argmin
# restricted to 3 indices either side of each pixel's peak (pruned-window) and without (pruned-window-control),
# otherwise its recovery's settings at half the learning rate. The two run side by side, a thread each.
finetune_pruned() {
    gen_clutter; gen_clutter_s2
    $ss distill --teacher $ck/teacher-wide-long/model --init-from "$2" \
        --data runs/synth-clutter,runs/synth-clutter-s2 --teacher-cache runs/teacher-cache --w-teacher 1 --w-gt 1 --steps 3000 --batch-size 6 --crop 160x288 \
        --lr 1e-4 --threads 1 --precision fp32 --seed 0 --val-data $val_q --val-pairs 1 --val-interval 500 \
        --ckpt-interval 100 --ema 0.999 --aug-scale 0.77,1.0 --aug-scale-prob 0.5 "${edge[@]}" \
        --out $ck/$1 $(resume_flag $ck/$1)
}
if want pruned-window && ! done_run $ck/student-wide-pruned-window; then
    [[ -f runs/student-wide-pruned-w3/model.safetensors ]] || \
        .venv/bin/python models/with_options.py $ck/student-wide-pruned/model runs/student-wide-pruned-w3 \
            regression_window=3
    finetune_pruned student-wide-pruned-window runs/student-wide-pruned-w3
fi
want pruned-window-control && ! done_run $ck/student-wide-pruned-window-control && \
    finetune_pruned student-wide-pruned-window-control $ck/student-wide-pruned/model
# Stop 34, finished by a later stop (models/README.md, "The students with the windowed regression"): the shipped
# students given the window and 3,000 more steps each with their stop-33 settings (the distilled one from the shipped
# teacher, cache-wide first), then the distilled one cut at 0.75 and recovered like student-wide-pruned. Run
# student-window and scratch-window side by side (a thread each), then pruned-window-trio.
window_init() {  # window_init RUN: runs/RUN-w3, RUN's model with regression_window=3 (deterministic)
    [[ -f runs/$1-w3/model.safetensors ]] || \
        .venv/bin/python models/with_options.py $ck/$1/model runs/$1-w3 regression_window=3
}
if want student-window && ! done_run $ck/student-window; then
    window_init student-wide
    distill_teacher=teacher-wide-long distill_more student-window runs/student-wide-w3 "${edge[@]}"
fi
if want scratch-window && ! done_run $ck/student-scratch-window; then
    window_init student-scratch-wide
    scratch_more student-scratch-window runs/student-scratch-wide-w3 "${edge[@]}"
fi
if want pruned-window-trio && ! done_run $ck/student-window-pruned; then
    gen_clutter; gen_clutter_s2
    prune_student student-window student-window-pruned teacher-wide-long runs/synth-clutter,runs/synth-clutter-s2 \
        "${mixrec[@]}" "${edge[@]}"
fi
# Informative (stop 29): student-edge cut by the app's sensitivity plan (each layer pruned alone on 8 synthetic
# pairs, BatchNorm recalibrated; the plan keeps 0.25 of the MACs) instead of the global L1 ranking, recovered
# like student-edge-pruned (models/README.md, "The edge-weighted trio, longer", rule 4).
if want pruned-edge-planned && ! done_run $ck/student-edge-planned; then
    gen_clutter; gen_clutter_s2
    if [[ ! -f $ck/plan-student-edge.json ]]; then
        $ss sensitivity --model $ck/student-edge/model --data synthetic --val-pairs 8 --recalibrate \
            --target-macs 0.25 --plan-out $ck/plan-student-edge.tmp.json --json > $ck/sensitivity-student-edge.json
        mv $ck/plan-student-edge.tmp.json $ck/plan-student-edge.json
    fi
    plan=$ck/plan-student-edge.json prune_student student-edge student-edge-planned teacher-down \
        runs/synth-clutter,runs/synth-clutter-s2 "${mixrec[@]}" "${edge[@]}"
fi
# Ship: model folders (config.json + model.safetensors) plus the run's config, summary, validation curve and
# wall time over all sessions as training.json, into the package (stereo_studio/models/bundled/<name>/).
# Stop 34: student-pruned is student-wide-pruned fine-tuned with the windowed regression (models/README.md, "A
# regression that picks one surface at depth edges"); the students stay.
# Stop 33: the students are the trio from the wide teacher (models/README.md, "The trio from the wide teacher").
# Stop 29: the students were the edge-weighted trio given 3,000 more steps (student-edge-more,
# student-scratch-edge-more, student-edge-more-pruned; the rule in models/README.md "The edge-weighted trio, longer").
# The shipped teacher is teacher-down (stop 26: teacher-fresh continued on clutter + clutter-photo pairs shrunk
# 0.77-1x, with a moving average of the weights; chosen as the issue asks, models/README.md "Choosing the teacher
# as the issue asks"), and the students are student-down-mix (student-fresh distilled 3,000 steps from it, then
# 3,000 more with half of the crops shrunk 0.77-1x), student-scratch-mix (the scratch student given the same steps
# and crops) and student-down-mix-pruned (its pruned network recovered 4,000 steps with a moving average; the rules
# in models/README.md "Choosing the teacher as the issue asks" and "Resampled crops for the distilled student").
# Stop 27: student-convex, student-scratch-convex and student-convex-pruned passed their accuracy rule but are not
# shipped: the learned upsampling costs the real-time model a third of its speed (models/README.md, "Where the
# errors are, and a learned upsampling for the student"); one edit of run_of above ships them.
# Earlier in stop 26: student-down, student-scratch-more, student-down-pruned-ema. Before them: teacher-photo-avg
# (stop 24: teacher-fresh continued on
# clutter + clutter-photo pairs
# with a moving average of the weights). Before it, teacher-fresh (stop 22): the clutter
# fine-tune (better than the v2 teacher on
# held-out synthetic: EPE 0.411 against 0.430) continued on twice the unique clutter pairs (0.400: the rule in
# models/README.md). The students before stop 26: student-fresh (student-rescaled continued on both clutter sets,
# distilled from teacher-fresh: held-out synthetic 0.668 against 0.748, the rule in models/README.md), shipped
# with the scratch baseline at the same budget (scratch-fresh) and its own pruned network (pruned-fresh).
if want ship; then
    declare -A run_of=([teacher]=teacher-wide-long [student-scratch]=student-scratch-wide
                       [student]=student-wide [student-pruned]=student-wide-pruned-window)
    for name in "${!run_of[@]}"; do
        done_run $ck/${run_of[$name]} || { echo "${run_of[$name]} is not finished" >&2; exit 1; }
    done
    for name in "${!run_of[@]}"; do
        # package data: the wheel carries the bundled models
        .venv/bin/python models/ship.py $ck/${run_of[$name]} stereo_studio/models/bundled/$name
    done
fi
# Cards measure latency with this machine's defaults (the app's runtime choice), not the training's policy.
want cards && env -u OMP_WAIT_POLICY .venv/bin/python -m benchmarks.model_cards
# Issue 11's experiment (benchmarks/sections/prune_ready.py): the bundled student's recipe (bundled teacher,
# 1,500 x 4 of 192x320, 1 thread) plus prune-ready training, against the bundled (plain) student. NAME METHOD REG
# per run: PRUNE_READY="reg20 group 20" (default) or e.g. "slim1 slimmable 1".
if want prune-ready; then
    gen_default
    read -r name method reg <<< "${PRUNE_READY:-reg20 group 20}"
    run=runs/student-prune-ready-$name
    $ss distill --teacher teacher --arch student --data runs/synth-train --steps 1500 --w-teacher 1 --w-gt 1 \
        --threads 1 --batch-size 4 --crop 192x320 --lr 1e-3 --val-interval 250 --val-pairs 8 --ckpt-interval 100 \
        --max-disp 64 --seed 0 --prune-ready --sparsity-reg "$reg" --target-ratio 0.5 --sparsity-method "$method" \
        --out $run $(resume_flag $run)
    .venv/bin/python models/ship.py $run models/experiments/prune-ready/$name
fi
