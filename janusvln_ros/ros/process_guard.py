"""Stop a node process when its parent dies (ros2/launch#666: SIGTERM to ``ros2 launch``).

``ros2 launch`` killed with SIGTERM or SIGKILL leaves its child processes running; a navigation
node orphaned that way keeps publishing its last velocity. :func:`stop_on_parent_death` makes the
parent's death look like a SIGTERM to this process, so the node's own SIGTERM handling (stop the
episode, publish a zero Twist, exit) runs:

* on Linux, ``prctl(PR_SET_PDEATHSIG, SIGTERM)``: the kernel sends SIGTERM when the parent exits;
* everywhere, a daemon thread that polls ``os.getppid()`` and sends SIGTERM to this process once
  the parent changed (re-parenting); it also covers a parent that died before the ``prctl`` call.

Call it once, after the SIGTERM handler is installed. Set ``JANUSVLN_PARENT_GUARD=0`` to keep a
node running after its parent exits (e.g. started with ``nohup`` from a shell that then closes).
The kernel's signal follows the parent *thread* that started this process: a supervisor that
starts the node from a short-lived thread (``ros2 launch``, ``ros2 run`` and the project's tools
start it from their main thread) stops it when that thread ends; switch the guard off there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
ENV_SWITCH = 'JANUSVLN_PARENT_GUARD'
POLL_S = 0.5


def _set_pdeathsig(sig: int) -> bool:
    """Ask the Linux kernel to send ``sig`` when the parent exits; False where unavailable."""
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            logger.warning('prctl(PR_SET_PDEATHSIG) failed: %s', os.strerror(ctypes.get_errno()))
            return False
    except OSError as exc:
        logger.warning('prctl(PR_SET_PDEATHSIG) unavailable: %s', exc)
        return False
    return True


def _watch_parent(parent: int, sig: int, poll_s: float) -> None:
    """Send ``sig`` to this process once ``os.getppid()`` is no longer ``parent``."""
    wait = threading.Event().wait
    while os.getppid() == parent:
        wait(poll_s)
    logger.warning('parent process %d is gone: stopping (signal %d)', parent, sig)
    os.kill(os.getpid(), sig)


def stop_on_parent_death(sig: int = signal.SIGTERM, poll_s: float = POLL_S) -> bool:
    """Deliver ``sig`` to this process when its parent process dies.

    Args:
        sig: the signal to receive (SIGTERM: the node's handler stops the robot and exits).
        poll_s: period of the ``os.getppid()`` watchdog in seconds.

    Returns:
        True when the guard is armed; False when disabled by ``JANUSVLN_PARENT_GUARD=0``.
    """
    if os.environ.get(ENV_SWITCH, '1').strip().lower() in ('0', 'false', 'no', 'off'):
        return False
    parent = os.getppid()
    _set_pdeathsig(sig)
    if os.getppid() != parent:      # died between the two calls: the kernel will not tell us
        os.kill(os.getpid(), sig)
        return True
    threading.Thread(target=_watch_parent, args=(parent, sig, poll_s),
                     name='parent_guard', daemon=True).start()
    return True
