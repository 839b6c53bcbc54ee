"""Engines loaded by the node through ``engine: 'module:Class'`` in the ROS tests."""

import os
import threading

from janusvln_ros.core.errors import ModelLoadError
from janusvln_ros.core.scripted import ScriptedEngine
from janusvln_ros.core.types import Action, StepResult


class NeedsFileEngine(ScriptedEngine):
    """A scripted engine whose 'checkpoint' is ``<model_path>/ready`` (absent: load error)."""

    def __init__(self, config):
        if not os.path.isfile(os.path.join(config.model_path, 'ready')):
            raise ModelLoadError(f'no checkpoint in {config.model_path!r}')
        super().__init__(config)


class GateEngine(ScriptedEngine):
    """A scripted engine whose step waits for ``gate`` (a stuck or slow step, on demand).

    Attributes:
        gate: Set (the default) lets steps run; cleared, a step blocks inside ``step``.
        entered: Set when a step has started.
        closed_during_step: True if ``close`` was called while a step was running.
    """

    def __init__(self, config):
        super().__init__(config)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.stepping = False
        self.closed_during_step = False

    def step(self, frame):
        self.stepping = True
        self.entered.set()
        try:
            self.gate.wait(120.0)
            return super().step(frame)
        finally:
            self.stepping = False

    def close(self):
        if self.stepping:
            self.closed_during_step = True
        super().close()


class ResizingEngine(ScriptedEngine):
    """A scripted engine that first resizes each frame as the JanusVLN engine does (644 wide)."""

    def step(self, frame):
        from janusvln_ros.model.preprocess import load_vggt_image
        load_vggt_image(frame)
        return super().step(frame)


class UnparseableEngine(ScriptedEngine):
    """MOVE_FORWARD once, then a model output that is no action word (fallback STOP)."""

    def step(self, frame):
        res = super().step(frame)
        if res.step == 0:
            return res
        return StepResult(Action.STOP, 'MOVE_FORWARD.', res.step, {'total': 1.0},
                          parsed=False)
