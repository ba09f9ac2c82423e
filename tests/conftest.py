"""Shared fixtures of the test suite.

Core tests (``test_core_*.py``, ``test_bytecode.py``):

* ``@pytest.mark.isolated`` runs a test in a forked child process: a crash
  (segfault, abort) of the interpreter fails that test with the signal's name
  instead of killing pytest, and a hang fails it after ``timeout`` seconds
  (``@pytest.mark.isolated(timeout=30)``).
* ``policy`` installs a recording policy as the engine's ``on_error`` mode and
  restores the engine's configuration afterwards.
* ``run_module`` compiles a source string from a real file (so the engine finds
  the statements' source), gives it resume points and executes it.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import select
import signal
import sys
import textwrap
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest

# ---------------------------------------------------------------------------
# Running a test in a forked child


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "isolated(timeout=120): run the test in a forked child so that an interpreter "
        "crash or a hang fails the test instead of killing pytest",
    )


def _child_outcome(func: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[str, Any]:
    try:
        value = func(**kwargs)
    except pytest.skip.Exception as e:
        return ("skipped", str(e.msg))
    except BaseException as e:
        return ("failed", "".join(traceback.format_exception(type(e), e, e.__traceback__)))
    try:
        pickle.dumps(value)
    except Exception:
        value = repr(value)
    return ("passed", value)


def run_forked(func: Callable[..., Any], kwargs: dict[str, Any], timeout: float) -> tuple[str, Any]:
    """Run ``func(**kwargs)`` in a forked child; returns ``(outcome, detail)`` with
    outcome ``passed`` (detail: the return value, if it pickles), ``skipped``,
    ``failed`` (detail: the traceback), ``crashed`` or ``timeout``."""
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        status = 0
        try:
            os.close(r)
            data = pickle.dumps(_child_outcome(func, kwargs))
            view = memoryview(data)
            while view:
                view = view[os.write(w, view) :]
        except BaseException:
            status = 3
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(status)
    os.close(w)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                os.kill(pid, signal.SIGKILL)
                break
            ready, _, _ = select.select([r], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(r, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    if timed_out:
        return ("timeout", f"the test did not finish within {timeout} s (killed)")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return ("crashed", f"the interpreter CRASHED with {signal.Signals(sig).name}")
    if not chunks:
        return (
            "crashed",
            f"the child exited with status {os.WEXITSTATUS(status)} without a result",
        )
    return pickle.loads(b"".join(chunks))


@pytest.fixture
def forked():
    """``forked(func, *args, timeout=60)``: run ``func(*args)`` in a forked child;
    returns ``(outcome, detail)`` as :func:`run_forked`."""

    def call(func, *args, timeout: float = 60):
        return run_forked(lambda: func(*args), {}, timeout)

    return call


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    marker = pyfuncitem.get_closest_marker("isolated")
    if marker is None or not hasattr(os, "fork"):
        return None
    timeout = marker.kwargs.get("timeout", 120)
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    outcome, detail = run_forked(pyfuncitem.obj, kwargs, timeout)
    if outcome == "skipped":
        pytest.skip(detail)
    if outcome != "passed":
        pytest.fail(f"[forked child: {outcome}]\n{detail}", pytrace=False)
    return True


# ---------------------------------------------------------------------------
# Driving the engine


@dataclasses.dataclass
class Call:
    """One consultation of the policy."""

    exception: BaseException
    line: int | None
    text: str
    kind: str
    function: str


class RecordingPolicy:
    """The engine's policy during a test: records each call and answers with
    ``self.decide(failure)`` (default: propagate)."""

    def __init__(self) -> None:
        from resurrect.engine import Action, Decision

        self.calls: list[Call] = []
        self.decide: Callable[[Any], Any] = lambda failure: Decision(Action.PROPAGATE)

    def __call__(self, failure):
        self.calls.append(
            Call(
                failure.exception,
                failure.statement.line,
                failure.statement.text,
                failure.statement.kind,
                failure.frame.f_code.co_name,
            )
        )
        return self.decide(failure)

    def always(self, action, value=None) -> RecordingPolicy:
        """Answer every call with ``Decision(action, value)``."""
        from resurrect.engine import Decision

        self.decide = lambda failure: Decision(action, value)
        return self

    @property
    def exceptions(self) -> list[str]:
        return [type(c.exception).__name__ for c in self.calls]


@pytest.fixture
def policy():
    """A :class:`RecordingPolicy` installed as the engine's ``on_error`` mode."""
    from resurrect import engine

    saved = (
        engine.config.on_error,
        engine.config.boundary,
        engine.policies.get("test"),
        engine.signal_handlers,
        engine.scoped_policy,
    )
    engine.enable()
    rec = RecordingPolicy()
    engine.policies["test"] = rec
    engine.config.on_error = "test"
    engine.signal_handlers = None
    engine.scoped_policy = None
    try:
        yield rec
    finally:
        engine.config.on_error, engine.config.boundary = saved[0], saved[1]
        if saved[2] is None:
            engine.policies.pop("test", None)
        else:
            engine.policies["test"] = saved[2]
        engine.signal_handlers, engine.scoped_policy = saved[3], saved[4]


@pytest.fixture
def run_module(tmp_path):
    """``run_module(source, instrument=True, **globals) -> namespace``: write
    ``source`` to a file, compile it, give it resume points and execute it."""
    from resurrect import instrument_code

    counter = iter(range(10**6))

    def run(source: str, instrument: bool = True, **globals_: Any) -> dict[str, Any]:
        source = textwrap.dedent(source)
        path = tmp_path / f"module_{next(counter)}.py"
        path.write_text(source)
        code = compile(source, str(path), "exec", dont_inherit=True)
        if instrument:
            code = instrument_code(code)
        ns: dict[str, Any] = {"__name__": path.stem, "__file__": str(path), **globals_}
        exec(code, ns)
        return ns

    return run


# ---------------------------------------------------------------------------
# Figures a test wants shown in the terminal summary (counts of checked objects)

_summary_key = pytest.StashKey[list[str]]()


@pytest.fixture
def summary(request):
    """``summary(line)``: show ``line`` in pytest's terminal summary (and on stderr)."""
    lines = request.config.stash.setdefault(_summary_key, [])

    def add(line: str) -> None:
        lines.append(line)
        print(line, file=sys.stderr)

    return add


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    lines = config.stash.get(_summary_key, [])
    if lines:
        terminalreporter.section("resurrect core figures")
        for line in lines:
            terminalreporter.write_line(line)
