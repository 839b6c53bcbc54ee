#!/usr/bin/env bash
# Train the small JanusVLN navigator in the built-in world, stage by stage (docs/training.md).
#
#   bash scripts/train_navigator.sh data        # expert data of the train split + val episodes
#   bash scripts/train_navigator.sh geometry    # pretrain the small VGGT aggregator
#   bash scripts/train_navigator.sh il          # imitation learning (VGGT frozen)
#   bash scripts/train_navigator.sh il2         # more imitation, from il (a fresh schedule)
#   bash scripts/train_navigator.sh dagger K    # DAgger round K: roll out, label, retrain
#
# Environment: DATA (default data/), RUNS (default runs/), WORKERS (render processes), DEVICE
# (cuda), per-stage time budgets in minutes GEO_MIN, IL_MIN, IL2_MIN, DAGGER_MIN (each stage
# saves a usable checkpoint when its budget ends) or step counts in IL_ARGS / IL2_ARGS /
# DAGGER_ARGS (e.g. '--steps 500'). The shipped checkpoint's exact settings: docs/training.md.
# Every stage is seeded; rerunning a stage redoes it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DATA=${DATA:-data}; RUNS=${RUNS:-runs}; WORKERS=${WORKERS:-8}; DEVICE=${DEVICE:-cuda}
J() { "$PY" -m janusvln_ros.cli "$@"; }
stage=${1:?usage: train_navigator.sh data|geometry|il|il2|dagger K}
case "$stage" in
  data)
    mkdir -p "$DATA"
    J dataset episodes --split val_seen --out "$DATA/val_seen.json" --workers "$WORKERS"
    J dataset episodes --split val_unseen --out "$DATA/val_unseen.json" --workers "$WORKERS"
    J dataset build --split train --out "$DATA/train" --workers "$WORKERS" ;;
  geometry)
    J train geometry --data "$DATA/train" --out "$RUNS/geometry" --steps "${GEO_STEPS:-4000}" \
      --batch-size 32 --max-minutes "${GEO_MIN:-2}" --device "$DEVICE" ;;
  il)
    J train navigator --data "$DATA/train" --out "$RUNS/il" --no-resume \
      --vggt-weights "$RUNS/geometry/vggt_pretrained.safetensors" --epochs "${IL_EPOCHS:-4}" \
      --batch-size 128 --lr 4e-4 --projector-lr 4e-4 --max-minutes "${IL_MIN:-4}" \
      --eval-episodes "$DATA/val_seen.json" --eval-count 10 --device "$DEVICE" ${IL_ARGS:-} ;;
  il2)
    J train navigator --data "$DATA/train" --out "$RUNS/il2" --init "$RUNS/il/model" --no-resume \
      --epochs "${IL2_EPOCHS:-6}" --batch-size 128 --lr 4e-4 --projector-lr 4e-4 \
      --max-minutes "${IL2_MIN:-6.3}" --device "$DEVICE" --seed 2 ${IL2_ARGS:-} ;;
  dagger)
    # Round K rolls out round K-1's model (round 1: il2's), labels every visited state with the
    # expert, ends rollouts that stray, and retrains on an expert subset (EXPERT_EPISODES
    # episodes of the train split, rendered once) plus every round so far.
    k=${2:?dagger needs the round number}
    prev=$RUNS/il2; [ "$k" -gt 1 ] && prev=$RUNS/dagger$((k - 1))
    beta=$("$PY" -c "print(0.5 ** $k)")
    [ -f "$DATA/train_episodes.json" ] || J dataset episodes --split train \
      --out "$DATA/train_episodes.json" --workers "$WORKERS"
    [ -f "$DATA/expert/dataset.json" ] || J dataset build --split train --out "$DATA/expert" \
      --limit "${EXPERT_EPISODES:-1200}" --workers "$WORKERS"
    J dagger --checkpoint "$prev/model" --round "$k" --beta "$beta" --out "$DATA/dagger$k" \
      --episodes-file "$DATA/train_episodes.json" --device "$DEVICE" --workers "$WORKERS" \
      --limit "${DAGGER_EPISODES:-400}" --episodes-per-shard "${DAGGER_PER_SHARD:-27}" \
      --max-minutes "${DAGGER_COLLECT_MIN:-0}" --seed "$k"
    sets=("$DATA/expert"); for i in $(seq 1 "$k"); do sets+=("$DATA/dagger$i"); done
    J train navigator --data "${sets[@]}" --out "$RUNS/dagger$k" --init "$prev/model" \
      --no-resume --epochs 4 --batch-size 128 --lr 2e-4 --projector-lr 2e-4 \
      --max-minutes "${DAGGER_MIN:-2}" --device "$DEVICE" --seed "$k" ${DAGGER_ARGS:-} ;;
  *) echo "unknown stage $stage" >&2; exit 2 ;;
esac
