"""Run a ROS 2 Python launch file without ROS launch (test-only fallback, ros2-env.md §4).

Evaluates the launch file, applies ``name:=value`` arguments, turns each ``launch_ros`` Node
into ``<executable> --ros-args -r __node:=... -r __ns:=... --params-file ... -p k:=v -r a:=b``,
starts the processes and forwards SIGINT/SIGTERM; exits with the largest child exit code.
The stand-in modules under ``test/launch_shim`` are put on ``sys.path`` only when a real
``launch_ros`` is not importable (on a real install, this runner uses the real classes' fields
only for ``--print``; use ``ros2 launch`` there).

Usage: python test/run_launch.py FILE.launch.py [name:=value ...] [--print]
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import yaml

SHIM_DIR = pathlib.Path(__file__).resolve().parent / 'launch_shim'
if importlib.util.find_spec('launch_ros') is None:
    sys.path.insert(0, str(SHIM_DIR))

from launch import LaunchContext  # noqa: E402,I100,I202
from launch.actions import DeclareLaunchArgument, OpaqueFunction  # noqa: E402
from launch.substitutions import perform  # noqa: E402,I100
from launch_ros.actions import Node  # noqa: E402


def load(path: str):
    spec = importlib.util.spec_from_file_location('launch_file', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def resolve_executable(package: str | None, executable: str) -> list[str]:
    prefixes = os.environ.get('AMENT_PREFIX_PATH', sys.prefix).split(os.pathsep)
    for prefix in filter(None, prefixes):
        candidate = os.path.join(prefix, 'lib', package or '', executable)
        if os.access(candidate, os.X_OK):
            return [candidate]
    search = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get('PATH', '')])
    found = shutil.which(executable, path=search)
    if found:
        return [found]
    raise FileNotFoundError(f'executable {executable!r} of package {package!r} not found')


def param_value(value) -> str:
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()


def node_command(node, ctx) -> list[str]:
    cmd = resolve_executable(perform(node.package, ctx), perform(node.executable, ctx))
    cmd += [perform(a, ctx) for a in node.arguments] + ['--ros-args']
    cmd += [perform(a, ctx) for a in node.ros_arguments]
    if node.name:
        cmd += ['-r', f'__node:={perform(node.name, ctx)}']
    namespace = perform(node.namespace, ctx) if node.namespace is not None else ''
    if namespace:
        cmd += ['-r', f'__ns:={namespace if namespace.startswith("/") else "/" + namespace}']
    for params in node.parameters:
        if isinstance(params, dict):
            for key, value in params.items():
                cmd += ['-p', f'{perform(key, ctx)}:={param_value(perform(value, ctx))}']
        else:
            cmd += ['--params-file', perform(params, ctx)]
    for src, dst in node.remappings:
        cmd += ['-r', f'{perform(src, ctx)}:={perform(dst, ctx)}']
    return cmd


def plan(path: str, argv: list[str]) -> list[list[str]]:
    overrides = dict(a.split(':=', 1) for a in argv if ':=' in a)
    ctx = LaunchContext()
    commands = []
    entities = list(load(path).entities)
    declared = set()
    while entities:
        entity = entities.pop(0)
        if isinstance(entity, DeclareLaunchArgument):
            declared.add(entity.name)
            if entity.name in overrides:
                ctx.launch_configurations[entity.name] = overrides[entity.name]
            elif entity.default_value is not None:
                ctx.launch_configurations[entity.name] = perform(entity.default_value, ctx)
        elif isinstance(entity, OpaqueFunction):
            entities = entity.execute(ctx) + entities
        elif isinstance(entity, Node):
            commands.append(node_command(entity, ctx))
        else:
            raise NotImplementedError(f'launch runner: {type(entity).__name__} unsupported')
    unknown = sorted(set(overrides) - declared)
    if unknown:
        raise SystemExit(f'unknown launch arguments: {unknown}')
    return commands


def main(argv: list[str]) -> int:
    path, rest = argv[0], argv[1:]
    commands = plan(path, rest)
    if '--print' in rest:
        for cmd in commands:
            sys.stdout.write(' '.join(cmd) + '\n')
        return 0
    procs = [subprocess.Popen(cmd) for cmd in commands]

    def forward(signum, _frame):
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    return max(proc.wait() for proc in procs)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
