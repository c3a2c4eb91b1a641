"""Temp files of multiprocessing children: removed when the child ends, also under fork.

A process removes its temp directory at interpreter exit (a C `atexit` handler). A
multiprocessing child started by fork or forkserver (PyTorch DataLoader workers, Pool
workers) never gets there: it leaves through `os._exit`. It does run multiprocessing's own
exit finalizers first, so this module arms one, in every such child, that runs the same
cleanup (`_infinidata._shutdown`: stop this process's batch iterators and remove its temp
directory; views still alive keep their mappings). Nothing here imports multiprocessing: a
program that never uses it pays nothing.

How the finalizer gets into a child: `multiprocessing.util.register_after_fork` callbacks run
in every new child (after multiprocessing clears the parent's finalizers), so one is
registered wherever multiprocessing is loaded at import time of infinidata, or in a forked
child (an `os.register_at_fork` hook) when it was loaded later; infinidata imported inside a
child that is already running arms it at once. A child killed by a signal
still leaves its directory for the next process's reap, as before.
"""

import os
import sys

from . import _infinidata


class _Token:
    """A weak-referenceable object for multiprocessing's after-fork registry (kept alive here)."""


_TOKEN = _Token()
_armed = None           # (pid, Finalize) of the exit finalizer armed last
_registered_pid = None  # the process whose after-fork registry holds our callback


def _cleanup():
    _infinidata._shutdown()


def _arm(_token):
    """In a new multiprocessing child: run `_cleanup` among its exit finalizers (once)."""
    global _armed
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return
    # armed in this very process and not cleared since (a child clears its parent's)
    if _armed is not None and _armed[0] == os.getpid() and _armed[1].still_active():
        return
    # a low priority: after the finalizers of everything else the child made
    _armed = (os.getpid(), util.Finalize(None, _cleanup, exitpriority=-100))


def _register():
    """Put `_arm` into multiprocessing's after-fork callbacks, if multiprocessing is loaded."""
    global _registered_pid
    util = sys.modules.get("multiprocessing.util")
    if util is None or _registered_pid == os.getpid():
        return
    _registered_pid = os.getpid()
    util.register_after_fork(_TOKEN, _arm)
    # imported inside a child that already started (its after-fork callbacks have run)
    process = sys.modules.get("multiprocessing.process")
    if process is not None and process.parent_process() is not None:
        _arm(_TOKEN)


_register()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_register)
