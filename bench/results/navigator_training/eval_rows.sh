#!/usr/bin/env bash
# The rows of bench/results/navigation.md, as they were run (CPU, 2 workers). Episode files:
# `janusvln dataset episodes --split val_unseen|val_seen --out .dev/eps/<split>.json`; models:
# the shipped checkpoint and the ablation runs of docs/training.md, kept under .dev/.
cd "$(dirname "$0")/../../.."
export PYTHONPATH="$PWD" MUJOCO_GL=egl PYOPENGL_PLATFORM=egl
R() { nice -n 5 .venv/bin/python bench/navigation.py row --quiet --workers 2 --max-steps 150 "$@"; }
U="--split val_unseen --episodes .dev/eps/val_unseen.json"
S="--split val_seen --episodes .dev/eps/val_seen.json"
M=.dev/final/il/model
E=.dev/evals
R --name oracle $U --policy oracle --json $E/oracle_unseen.json
R --name oracle $S --policy oracle --json $E/oracle_seen.json
R --name random $U --policy random --json $E/random_unseen.json
R --name random $S --policy random --json $E/random_seen.json
R --name navigator $U --checkpoint $M --limit 100 --json $E/model_unseen.json
.venv/bin/python bench/navigation.py subset $E/model_unseen.json --first 30 --name navigator \
  --json $E/model_unseen_first30.json
R --name navigator $S --checkpoint $M --limit 40 --json $E/model_seen.json
R --name navigator-streaming $U --checkpoint $M --mode streaming --limit 40 --json $E/stream_unseen.json
R --name navigator-lam0-at-inference $U --checkpoint $M --lam 0 --limit 30 --json $E/lam0_unseen.json
R --name navigator-memory-8+8 $U --checkpoint $M --window 8 --limit 30 --json $E/mem8_unseen.json
R --name navigator-memory-1+4 $U --checkpoint $M --anchors 1 --window 4 --limit 30 \
  --json $E/mem14_unseen.json
R --name il-0.31ep $U --checkpoint .dev/il_e031/model --limit 30 --json $E/il031_unseen.json
R --name il-0.31ep-trained-without-3d $U --checkpoint .dev/call2/il_no3d/model --lam 0 --limit 30 \
  --json $E/no3d_unseen_lam0.json
R --name il-0.22ep-vggt-from-scratch $U --checkpoint .dev/call2/il_scratch/model --limit 30 \
  --json $E/scratch_unseen.json
