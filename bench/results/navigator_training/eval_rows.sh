#!/usr/bin/env bash
# The rows of bench/results/navigation.md, as they were run (real engine, fp32, CPU). Episode
# files: `janusvln dataset episodes --split val_unseen|val_seen --out .dev/eps/<split>.json`
# (val_unseen is also janusvln_ros/data/val_unseen.json); models: the shipped checkpoint and the
# runs of docs/training.md, kept under .dev/. Rows marked "box" ran on the GPU machine's 16 CPU
# cores (CPU engines, one thread each; OMP_NUM_THREADS=1) with the same command; the others on
# a 2-core CPU with --workers 2 (or 1 where two ran at once).
cd "$(dirname "$0")/../../.."
export PYTHONPATH="$PWD" MUJOCO_GL=egl PYOPENGL_PLATFORM=egl
R() { nice -n 5 .venv/bin/python bench/navigation.py row --quiet --workers 2 --max-steps 150 "$@"; }
U="--split val_unseen --episodes .dev/eps/val_unseen.json"
S="--split val_seen --episodes .dev/eps/val_seen.json"
E=.dev/evals
# Non-learned policies.
R --name oracle $U --policy oracle --json $E/oracle_unseen.json
R --name oracle $S --policy oracle --json $E/oracle_seen.json
R --name random $U --policy random --json $E/random_unseen.json
R --name random $S --policy random --json $E/random_seen.json
# The shipped navigator (imitation 2.3 epochs + DAgger round 1).
M=janusvln_ros:navigator
F=.dev/evals_final
R --name navigator $U --checkpoint $M --limit 100 --json $F/nav_unseen.json
.venv/bin/python bench/navigation.py subset $F/nav_unseen.json --first 30 --name navigator \
  --json $F/nav_unseen_first30.json
R --name navigator $S --checkpoint $M --limit 60 --json $F/nav_seen_cpu2.json
R --name navigator-streaming $U --checkpoint $M --mode streaming --limit 60 \
  --json $F/nav_stream_cpu2.json
# (the same two rows also ran on the box, --workers 3: aggregates only, in navigation.md's intro)
R --name navigator-lam0-at-inference $U --checkpoint $M --lam 0 --limit 30 \
  --json $F/nav_lam0.json                                                                   # box
R --name navigator-memory-8+8 $U --checkpoint $M --window 8 --limit 30 --json $F/nav_mem8.json  # box
R --name navigator-memory-1+4 $U --checkpoint $M --anchors 1 --window 4 --limit 30 \
  --json $F/nav_mem14.json                                                                  # box
# The stages before and after it (docs/training.md).
R --name il-2.3ep $U --checkpoint .dev/il2/il2/model --limit 30 --workers 1 \
  --json $F/il-2.3ep_u30.json
R --name dagger-r2 $U --checkpoint .dev/dg/r2/model --limit 30 --workers 1 \
  --json $F/dagger-r2_u30.json
# The checkpoint shipped before (imitation only, 0.95 epoch) and its ablation rows.
P=.dev/final/il/model
R --name il-0.95ep $U --checkpoint $P --limit 100 --json $E/model_unseen.json
.venv/bin/python bench/navigation.py subset $E/model_unseen.json --first 30 --name il-0.95ep \
  --json $E/model_unseen_first30.json
R --name il-0.95ep $S --checkpoint $P --limit 40 --json $E/model_seen.json
R --name il-0.95ep-streaming $U --checkpoint $P --mode streaming --limit 40 --json $E/stream_unseen.json
R --name il-0.95ep-lam0-at-inference $U --checkpoint $P --lam 0 --limit 30 --json $E/lam0_unseen.json
R --name il-0.95ep-memory-8+8 $U --checkpoint $P --window 8 --limit 30 --json $E/mem8_unseen.json
R --name il-0.95ep-memory-1+4 $U --checkpoint $P --anchors 1 --window 4 --limit 30 \
  --json $E/mem14_unseen.json
# Training ablations at the same training time (0.31 epoch).
R --name il-0.31ep $U --checkpoint .dev/il_e031/model --limit 30 --json $E/il031_unseen.json
R --name il-0.31ep-trained-without-3d $U --checkpoint .dev/call2/il_no3d/model --lam 0 --limit 30 \
  --json $E/no3d_unseen_lam0.json
R --name il-0.22ep-vggt-from-scratch $U --checkpoint .dev/call2/il_scratch/model --limit 30 \
  --json $E/scratch_unseen.json
# DAgger on the CPU (bench/results/navigator_training/cpu_dagger.sh writes these rows).
