"""The navigator shipped with the package, and the alias that names it.

``model_path: 'janusvln_ros:navigator'`` selects the small JanusVLN trained in the package's
simulated world (``janusvln_ros/data/navigator``, released checkpoint layout). It knows only
that world: a real robot needs a real checkpoint, so nothing uses it unless asked by name.
"""

from __future__ import annotations

import pathlib

SHIPPED_NAVIGATOR = 'janusvln_ros:navigator'
DATA_DIR = pathlib.Path(__file__).resolve().parents[1] / 'data'


def shipped_navigator_dir() -> pathlib.Path:
    """Directory of the shipped navigator checkpoint."""
    return DATA_DIR / 'navigator'


def shipped_val_unseen_episodes() -> pathlib.Path:
    """The ``val_unseen`` episodes shipped beside it (JSON, ``sim.episodes`` format)."""
    return DATA_DIR / 'val_unseen.json'


def resolve_model_path(path: str) -> str:
    """``path`` itself, or the shipped navigator's directory for :data:`SHIPPED_NAVIGATOR`."""
    return str(shipped_navigator_dir()) if path == SHIPPED_NAVIGATOR else path
