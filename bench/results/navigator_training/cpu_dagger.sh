#!/usr/bin/env bash
# Two DAgger rounds on this 2-core CPU (no GPU time was left in that session), starting from the
# shipped imitation-learning navigator: per round, roll the current model out on 64 train
# episodes (expert action with probability beta = 0.5^k), label every visited state with the
# expert, retrain on expert data + all DAgger rounds so far, and measure SR on the first 30
# val_unseen episodes. Small by necessity (about 2 samples/s of training on this CPU); the GPU
# recipe is `scripts/train_navigator.sh dagger K` (docs/training.md).
set -euo pipefail
cd "$(dirname "$0")/../../.."
export PYTHONPATH="$PWD" MUJOCO_GL=egl PYOPENGL_PLATFORM=egl
OUT=${OUT:-.dev/cpu_dagger}; STEPS=${STEPS:-200}; BATCH=${BATCH:-16}; EPISODES=${EPISODES:-64}
J() { .venv/bin/python -m janusvln_ros.cli "$@"; }
mkdir -p "$OUT"
[ -f "$OUT/expert/dataset.json" ] || J dataset build --split train --out "$OUT/expert" --limit 96 --workers 2
prev=${INIT:-janusvln_ros:navigator}
sets=("$OUT/expert")
for k in 1 2; do
  beta=$(python3 -c "print(0.5 ** $k)")
  [ -f "$OUT/dagger$k/dataset.json" ] || J dagger --checkpoint "$prev" --round "$k" --beta "$beta" \
    --out "$OUT/dagger$k" --device cpu --workers 2 --limit "$EPISODES" --seed "$k"
  sets+=("$OUT/dagger$k")
  [ -f "$OUT/r$k/model/config.json" ] || J train navigator --data "${sets[@]}" --out "$OUT/r$k" \
    --init "$prev" --no-resume --steps "$STEPS" --batch-size "$BATCH" --lr 2e-4 \
    --projector-lr 2e-4 --device cpu --seed "$k"
  prev=$OUT/r$k/model
  [ -f "$OUT/eval_r$k.json" ] || .venv/bin/python bench/navigation.py row --quiet --workers 2 \
    --max-steps 150 --name "dagger-r$k-cpu" --split val_unseen \
    --episodes janusvln_ros/data/val_unseen.json --checkpoint "$prev" --limit 30 \
    --json "$OUT/eval_r$k.json"
done
