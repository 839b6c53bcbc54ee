#!/usr/bin/env bash
# The main job: set everything up, then run the node driving a robot in the built-in MuJoCo world
# end to end (janusvln demo). Extra arguments go to `janusvln demo` (e.g. --checkpoint DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export AMENT_PREFIX_PATH="$PWD/.venv" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}
export FASTDDS_DEFAULT_PROFILES_FILE="$PWD/config/fastdds_shm.xml"
export MUJOCO_GL=${MUJOCO_GL:-egl} PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-egl}
exec .venv/bin/janusvln demo "$@"
