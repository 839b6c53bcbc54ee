#!/usr/bin/env bash
# Sets everything up (scripts/setup_env.sh) and runs the whole test suite inside a loopback-only
# network namespace, so that no DDS packet leaves this machine. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export AMENT_PREFIX_PATH="$PWD/.venv" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOCALHOST_ONLY=1
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}
export FASTDDS_DEFAULT_PROFILES_FILE="$PWD/config/fastdds_shm.xml"
export MUJOCO_GL=${MUJOCO_GL:-egl} PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-egl}
args=(-q -rs -p no:cacheprovider "$@")   # -rs: every skip with its reason
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  echo "[test] pytest in a loopback-only network namespace (domain $ROS_DOMAIN_ID)" >&2
  exec unshare -n bash -c 'ip link set lo up && exec .venv/bin/python -m pytest "$@"' _ "${args[@]}"
else
  echo "[test] WARNING: cannot create a network namespace; relying on LOCALHOST discovery" >&2
  exec .venv/bin/python -m pytest "${args[@]}"
fi
