"""Engines loaded by the node through ``engine: 'module:Class'`` in the ROS tests."""

import os

from janusvln_ros.core.errors import ModelLoadError
from janusvln_ros.core.scripted import ScriptedEngine


class NeedsFileEngine(ScriptedEngine):
    """A scripted engine whose 'checkpoint' is ``<model_path>/ready`` (absent: load error)."""

    def __init__(self, config):
        if not os.path.isfile(os.path.join(config.model_path, 'ready')):
            raise ModelLoadError(f'no checkpoint in {config.model_path!r}')
        super().__init__(config)
