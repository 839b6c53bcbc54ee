"""Build the engine named by an :class:`EngineConfig` (lazy imports: no torch for scripted)."""

from __future__ import annotations

import importlib
import logging

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.errors import ConfigError, ModelLoadError
from janusvln_ros.core.types import Engine

logger = logging.getLogger(__name__)


def build_engine(config: EngineConfig) -> Engine:
    """Create the engine of ``config.engine``.

    * ``'janusvln'``: :class:`janusvln_ros.core.engine.JanusVLNEngine` (dual memory);
    * ``'reference'``: :class:`janusvln_ros.core.reference.ReferenceEngine` (released step loop);
    * ``'scripted'``: :class:`janusvln_ros.core.scripted.ScriptedEngine` (no model);
    * ``'package.module:Class'``: ``Class(config)``.

    Raises:
        ConfigError: The ``module:Class`` spec cannot be imported or is not an engine.
        ModelLoadError: The checkpoint cannot be loaded.
    """
    kind = config.engine
    if kind == 'janusvln':
        from janusvln_ros.core.engine import JanusVLNEngine
        return JanusVLNEngine(config)
    if kind == 'reference':
        from janusvln_ros.core.reference import ReferenceEngine
        if not config.model_path:
            raise ModelLoadError('model_path: required by the reference engine')
        return ReferenceEngine.from_config(config)
    if kind == 'scripted':
        from janusvln_ros.core.scripted import ScriptedEngine
        return ScriptedEngine(config)
    module_name, _, class_name = kind.partition(':')
    if not module_name or not class_name:
        raise ConfigError(f'engine: expected "package.module:Class", got {kind!r}')
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f'engine: cannot import {kind!r}: {exc}') from exc
    if not isinstance(cls, type) or not all(callable(getattr(cls, name, None))
                                            for name in ('reset', 'step', 'close')):
        raise ConfigError(f'engine: {kind!r} is not a class with reset/step/close')
    engine = cls(config)
    if not isinstance(engine, Engine):
        raise ConfigError(f'engine: {kind!r} does not implement reset/step/close')
    logger.info('built engine %s', kind)
    return engine
