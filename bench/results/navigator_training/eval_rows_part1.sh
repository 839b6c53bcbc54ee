#!/usr/bin/env bash
# Local CPU evaluation rows of bench/results/navigation (see docs/training.md).
cd "$(dirname "$0")/../../.."
export PYTHONPATH="$(dirname "$0")/../../.." MUJOCO_GL=egl PYOPENGL_PLATFORM=egl
R() { nice -n 5 .venv/bin/python bench/navigation.py row --quiet --workers 2 --max-steps 150 "$@"; }
U="--split val_unseen --episodes .dev/eps/val_unseen.json"
S="--split val_seen --episodes .dev/eps/val_seen.json"
M=.dev/final/il/model
R --name oracle $U --policy oracle --json .dev/evals/oracle_unseen.json
R --name oracle $S --policy oracle --json .dev/evals/oracle_seen.json
R --name random $U --policy random --json .dev/evals/random_unseen.json
R --name random $S --policy random --json .dev/evals/random_seen.json
R --name navigator $U --checkpoint $M --limit 100 --json .dev/evals/model_unseen.json
R --name navigator $S --checkpoint $M --limit 60 --json .dev/evals/model_seen.json
R --name navigator-streaming $U --checkpoint $M --mode streaming --limit 60 --json .dev/evals/stream_unseen.json
R --name navigator-lam0-at-inference $U --checkpoint $M --lam 0 --limit 40 --json .dev/evals/lam0_unseen.json
R --name navigator-memory-8+8 $U --checkpoint $M --window 8 --limit 40 --json .dev/evals/mem8_unseen.json
R --name navigator-memory-1+4 $U --checkpoint $M --anchors 1 --window 4 --limit 40 --json .dev/evals/mem14_unseen.json
R --name il-0.31ep $U --checkpoint .dev/il_e031/model --limit 40 --json .dev/evals/il031_unseen.json
R --name il-0.31ep-trained-without-3d $U --checkpoint .dev/call2/il_no3d/model --limit 40 --json .dev/evals/no3d_unseen.json
R --name il-0.22ep-vggt-from-scratch $U --checkpoint .dev/call2/il_scratch/model --limit 40 --json .dev/evals/scratch_unseen.json
echo ALL DONE
