"""ROS parameters declared once from the configuration dataclasses.

Every field of :class:`~janusvln_ros.core.config.EngineConfig`,
:class:`~janusvln_ros.core.node_config.NodeConfig` and
:class:`~janusvln_ros.core.node_config.MotionConfig` becomes a parameter of the same name, typed
by its default and described by the dataclass docstring's ``Attributes`` entry. Engine fields
(``model_path``, ``device``, ``dtype``...) and structural node fields are read-only; the fields in
:data:`~janusvln_ros.core.node_config.TUNABLE_FIELDS` may be set at run time and are validated by
building a new dataclass in the on-set callback.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any, Callable, TypeVar

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.errors import ConfigError
from janusvln_ros.core.node_config import MotionConfig, NodeConfig, TUNABLE_FIELDS

C = TypeVar('C')

CONFIG_CLASSES: tuple[type, ...] = (EngineConfig, NodeConfig, MotionConfig)


def field_descriptions(cls: type) -> dict[str, str]:
    """Parse ``name: text`` entries of the ``Attributes:`` section of a class docstring."""
    doc = inspect.getdoc(cls) or ''
    match = re.search(r'^Attributes:\n(.*?)(?:\n\S|\Z)', doc, re.S | re.M)
    out: dict[str, str] = {}
    if not match:
        return out
    current = None
    for line in match.group(1).splitlines():
        entry = re.match(r'^ {4}(\w+): (.*)$', line)
        if entry:
            current = entry.group(1)
            out[current] = entry.group(2).strip()
        elif current and line.strip():
            out[current] += ' ' + line.strip()
    return out


def declare_config_parameters(node: Node) -> None:
    """Declare one parameter per config field (call once, in the node's constructor)."""
    seen: set[str] = set()
    for cls in CONFIG_CLASSES:
        docs = field_descriptions(cls)
        for field in dataclasses.fields(cls):
            if field.name in seen:
                raise RuntimeError(f'parameter {field.name!r} is declared by two configs')
            seen.add(field.name)
            read_only = field.name not in TUNABLE_FIELDS
            descriptor = ParameterDescriptor(
                description=docs.get(field.name, field.name), read_only=read_only)
            node.declare_parameter(field.name, field.default, descriptor)


def config_from_parameters(node: Node, cls: type[C],
                           overrides: dict[str, Any] | None = None) -> C:
    """Build a config dataclass from the node's current parameter values.

    Raises:
        ConfigError: A value is invalid (the message names the parameter).
    """
    values = {f.name: node.get_parameter(f.name).value for f in dataclasses.fields(cls)}
    values.update(overrides or {})
    return cls(**values)


def make_on_set_callback(node: Node, apply: Callable[[NodeConfig, MotionConfig], None]
                         ) -> Callable[[list[Parameter]], SetParametersResult]:
    """An on-set-parameters callback that validates tunables and hands valid configs on.

    Args:
        node: The node whose parameters are set.
        apply: Called with the new ``(NodeConfig, MotionConfig)`` when a change is valid.
    """
    def callback(params: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in params}
        node_fields = {f.name for f in dataclasses.fields(NodeConfig)}
        motion_fields = {f.name for f in dataclasses.fields(MotionConfig)}
        try:
            node_cfg = config_from_parameters(
                node, NodeConfig, {k: v for k, v in changes.items() if k in node_fields})
            motion_cfg = config_from_parameters(
                node, MotionConfig, {k: v for k, v in changes.items() if k in motion_fields})
        except (ConfigError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        apply(node_cfg, motion_cfg)
        return SetParametersResult(successful=True)
    return callback
