"""Import MuJoCo with a headless OpenGL backend (EGL first, OSMesa as the fallback).

MuJoCo reads ``MUJOCO_GL`` once, when it is first imported, and its default (GLFW) needs a
display. Every module of :mod:`janusvln_ros.sim` imports MuJoCo through :func:`import_mujoco`.
An EGL or OSMesa context belongs to the thread that created it: render from one thread only.
"""

from __future__ import annotations

import ctypes.util
import logging
import os
import sys
from types import ModuleType


logger = logging.getLogger(__name__)

BACKENDS = ('egl', 'osmesa')


def choose_backend() -> str:
    """Pick the headless GL backend: ``MUJOCO_GL`` if set, else EGL, else OSMesa.

    Returns:
        The backend name written to ``MUJOCO_GL``.
    """
    chosen = os.environ.get('MUJOCO_GL', '')
    if chosen:
        return chosen
    if ctypes.util.find_library('EGL'):
        return 'egl'
    if ctypes.util.find_library('OSMesa'):
        return 'osmesa'
    return 'egl'


def import_mujoco() -> ModuleType:
    """Import MuJoCo after setting ``MUJOCO_GL`` (and a matching ``PYOPENGL_PLATFORM``).

    Returns:
        The ``mujoco`` module.
    """
    if 'mujoco' not in sys.modules:
        backend = choose_backend()
        os.environ['MUJOCO_GL'] = backend
        if backend in BACKENDS:
            # MuJoCo's EGL/OSMesa modules raise if PyOpenGL was pointed at another platform.
            os.environ['PYOPENGL_PLATFORM'] = backend
        logger.debug('MuJoCo GL backend: %s', backend)
    import mujoco  # noqa: I100 (must follow the environment set-up above)
    return mujoco
