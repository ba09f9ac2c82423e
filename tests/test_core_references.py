"""After an ``except`` block ends, nothing of resurrect may hold the exception,
its traceback or the frames on it: the caller's locals must die as in plain
Python (CPython's test_enum ``test_missing_exceptions_reset``, test_memoryio
``test_getbuffer_gc_collect`` and unittest's refcount tests check exactly
this). The garbage collector is off: a reference held from Rust is invisible
to it, and plain Python frees all of these by reference counting alone.
"""

from __future__ import annotations

import contextlib
import gc
import types
import weakref

import pytest
from resurrect import instrument_code

pytestmark = pytest.mark.isolated(timeout=60)


class Payload:
    """A local of the frames on the traceback."""


class Missing(KeyError):
    """Built-in exceptions cannot be weakly referenced; a subclass can."""


def inner_plain(x):
    y = Payload()  # noqa: F841 (kept alive by the frame on the traceback)
    raise Missing(x)


def inner_in_try(x):
    y = Payload()  # noqa: F841
    try:
        raise Missing(x)  # a statement directly in a `try`: the late stub decides
    except StopIteration:
        return None


def inner_in_with(x):
    y = Payload()  # noqa: F841
    with contextlib.nullcontext():
        raise Missing(x)


INNERS = {"plain": inner_plain, "in-try": inner_in_try, "in-with": inner_in_with}


def caught_by_except(inner):
    """The caller's own `except` catches it (the core's fast path decides)."""
    local = Payload()
    refs = [weakref.ref(local)]
    try:
        inner("missing")
    except KeyError as e:
        refs += [weakref.ref(e), weakref.ref(e.__traceback__.tb_next.tb_frame.f_locals["y"])]
    del local
    return [r() is None for r in refs]


def caught_by_suppress(inner):
    """A `with` suppresses it (the engine's Python side decides)."""
    local = Payload()
    refs = [weakref.ref(local)]
    with contextlib.suppress(KeyError):
        try:
            inner("missing")
        finally:
            e = __import__("sys").exception()
            refs += [weakref.ref(e), weakref.ref(e.__traceback__.tb_next.tb_frame.f_locals["y"])]
            del e
    del local
    return [r() is None for r in refs]


CALLERS = {"except": caught_by_except, "suppress": caught_by_suppress}


def instrumented(fn):
    return types.FunctionType(instrument_code(fn.__code__), fn.__globals__, fn.__name__)


@pytest.mark.parametrize("inner", INNERS)
@pytest.mark.parametrize("caller", CALLERS)
def test_the_exception_dies_when_its_except_block_ends(caller, inner, policy):
    gc.collect()
    gc.disable()
    try:
        plain = CALLERS[caller](INNERS[inner])
        assert plain == [True, True, True]
        got = instrumented(CALLERS[caller])(instrumented(INNERS[inner]))
    finally:
        gc.enable()
    # the caller's local, the exception, the failing frame's local
    assert got == plain
