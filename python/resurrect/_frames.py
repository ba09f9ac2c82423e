"""Reading and writing a live frame's variables on every supported version.

3.11/3.12: ``frame.f_locals`` is a snapshot dict; writes must be pushed back with
``PyFrame_LocalsToFast(frame, 0)`` before anything reads ``f_locals`` again.
3.13: ``frame.f_locals`` is a write-through proxy (PEP 667).
"""

from __future__ import annotations

import ctypes
import sys
import types

_PEP667 = sys.version_info >= (3, 13)

if not _PEP667:
    _locals_to_fast = ctypes.pythonapi.PyFrame_LocalsToFast
    _locals_to_fast.argtypes = [ctypes.py_object, ctypes.c_int]
    _locals_to_fast.restype = None


def namespace(frame: types.FrameType):
    """A mapping of the frame's variables; pass it to :func:`commit` after writing."""
    return frame.f_locals


def commit(frame: types.FrameType, ns) -> None:
    """Make writes to ``ns`` (from :func:`namespace`) visible to the running frame."""
    if not _PEP667 and ns is not frame.f_globals:
        _locals_to_fast(frame, 0)


def run_in_frame(frame: types.FrameType, source: str, mode: str = "exec", extra=None):
    """Evaluate or execute ``source`` in ``frame``; assignments change the frame's
    variables for real."""
    ns = namespace(frame)
    code = compile(source, "<resurrect>", mode)
    g = frame.f_globals
    if extra:
        g = dict(g)
        g.update(extra)
    try:
        if mode == "eval":
            return eval(code, g, ns)
        exec(code, g, ns)
        return None
    finally:
        commit(frame, ns)
