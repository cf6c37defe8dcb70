"""What a forked child must not do with what it inherited (issue 13, item 1).

A child of ``fork()`` inherits the parent's memory and open files but not its threads. So:

* a store's SQLite connection must not be closed there: closing the last connection of a
  WAL-mode database checkpoints it and may delete the ``-wal`` file, and the child does not
  even hold the POSIX locks the connection's memory says it holds (they are not inherited).
* an ONNX Runtime session must not be released or run there: its thread pool's threads do not
  exist in the child.
* a lock held by another parent thread at the fork stays held forever in the child.

:func:`leak` keeps such an object alive until the child ends, so that neither the garbage
collector nor the interpreter's shutdown ever runs its destructor in the child (the process's
exit then frees its memory and closes its descriptors without writing anything).
"""

from __future__ import annotations

import ctypes
from typing import Any

__all__ = ["leak"]


def leak(obj: Any) -> None:
    """Makes ``obj`` immortal in this process: one reference that is never released. A list
    held by a module would not do: the interpreter's shutdown clears modules, which would
    release the object and run its destructor after all."""
    if obj is not None:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
