"""Skip-errors regions: ``@skip_errors`` and ``with skipping():``.

Inside a region, each statement that raises one of the given exceptions is
skipped and execution continues with the next statement of the same block — in
nested blocks and loops (a failing statement in a loop body skips that
statement, not the loop) and in the instrumented functions the region calls.

A region is a cluster of the condition system's handler stack (see
:mod:`resurrect.conditions`): a handler that invokes the ``skip`` restart. So
the program's own ``except`` clauses *inside* the region catch first, as usual;
an ``except`` *outside* the region does not see the exceptions the region
skipped (that is what the region is for); ``handler_bind`` handlers bound inside
the region run before it skips.

Every failure a region handles is recorded as a :class:`SkippedError` in the
region's list (``with skipping() as skipped``, ``decorated.skipped``) and in
those of the regions around it, passed to ``log`` and printed to stderr with
``verbose``.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import linecache
import logging
import sys
import tokenize
import types
from collections.abc import Callable
from typing import Any

from . import _core, conditions, engine
from .engine import Action, Decision, Failure
from .instrument import instrument_code

__all__ = ["NoResumePointsError", "SkipRegion", "SkippedError", "skip_errors", "skipping"]


class NoResumePointsError(RuntimeError):
    """``skipping()`` was used in code that has no resume points."""


@dataclasses.dataclass
class SkippedError:
    """One failure a skip region handled."""

    filename: str
    line: int | None
    #: The source text of the statement (its first line).
    statement: str
    exception: BaseException
    #: The qualified name of the function the statement is in.
    function: str
    #: ``"skipped"``; ``"returned None"`` (a failing ``return`` or last
    #: statement: the function returned None); ``"propagated"`` (no statement
    #: of the region could be skipped: the exception left the region); or the
    #: restart chosen at the prompt (``breakpoint=True``).
    action: str = "skipped"
    #: Why, when not simply skipped.
    note: str = ""

    def __str__(self) -> str:
        exc = self.exception
        text = f"{self.action} {self.filename}:{self.line}: {self.statement}: {type(exc).__name__}: {exc}"
        return f"{text} ({self.note})" if self.note else text


def _check_spec(exceptions: Any) -> type[BaseException] | tuple[type[BaseException], ...]:
    if isinstance(exceptions, list):
        exceptions = tuple(exceptions)
    if not conditions._type_spec_ok(exceptions):
        raise TypeError(
            f"exceptions must be an exception class or a tuple of them, not {exceptions!r}"
        )
    return exceptions


def _emit(log: Any, record: SkippedError) -> None:
    if isinstance(log, logging.Logger):
        log.warning("resurrect: %s", record)
    elif isinstance(log, list):
        log.append(record)
    elif callable(log):
        log(record)
    else:
        raise TypeError(f"log must be a list, a callable or a logging.Logger, not {log!r}")


class SkipRegion(conditions._Cluster):
    """A skip-errors region in force: see :func:`skipping` and :func:`skip_errors`."""

    def __init__(
        self,
        exceptions: Any = Exception,
        log: Any = None,
        verbose: bool = False,
        breakpoint: bool = False,
        *,
        _check: bool = True,
    ):
        self.exceptions = _check_spec(exceptions)
        if log is not None and not (isinstance(log, logging.Logger | list) or callable(log)):
            raise TypeError(f"log must be a list, a callable or a logging.Logger, not {log!r}")
        self.log = log
        self.verbose = verbose
        self.breakpoint = breakpoint
        self._check = _check
        #: The failures handled while the region was in force.
        self.skipped: list[SkippedError] = []

    def __enter__(self) -> list[SkippedError]:
        frame = sys._getframe(1)
        if self._check and not _core.is_instrumented(frame.f_code):
            code = frame.f_code
            if code.co_name == "<module>":
                where = f"the module code of {code.co_filename}"
                how = "move the block into a function decorated with @resurrect.skip_errors"
            else:
                where = f"{code.co_qualname}() ({code.co_filename}:{frame.f_lineno})"
                how = "decorate the function with @resurrect.skip_errors"
            raise NoResumePointsError(
                f"resurrect.skipping() needs resume points in the code that contains it, "
                f"and {where} has none: {how} (or @resurrect.resumable), or run the "
                f"program with `resurrect run`"
            )
        self._enter_stack(frame)
        return self.skipped

    def __resurrect_catches__(self, exc: BaseException) -> bool:
        """Whether this region's ``__exit__`` swallows ``exc``."""
        return bool(self._matches(exc))

    def __exit__(self, et, ev, tb) -> bool:
        outer = conditions._handler_stack.get()
        self._exit_stack()
        if ev is not None and self._matches(ev):
            m = conditions._marks(ev, create=False)
            notes = "; ".join(m.notes) if m is not None and m.notes else ""
            frame, line, text = _origin(ev)
            record = SkippedError(
                frame.f_code.co_filename if frame else "?",
                line,
                text,
                ev,
                frame.f_code.co_qualname if frame else "?",
                "propagated",
                notes or "not inside a statement that can be skipped",
            )
            self._report(record, outer)
        return False

    def _matches(self, exc: BaseException) -> bool:
        if conditions._control(exc) or isinstance(exc, engine._flow_exceptions()):
            return False
        return isinstance(exc, self.exceptions)

    def _takes_raise(self, exc: BaseException) -> bool:
        return self._matches(exc)

    def _on_failure(self, failure: Failure, outer) -> Decision | None:
        exc = failure.exception
        if not self._matches(exc):
            return None
        if self.breakpoint:
            return self._pause(failure)
        st = failure.statement
        decision, note = _skip_decision(failure.frame, st)
        if decision is not None:
            action = "skipped" if decision.action is Action.SKIP else "returned None"
            self._record(failure, action, note)
            return decision
        # This statement cannot be skipped (a `raise`, ...): skip the statement
        # of the caller that led here instead, if the region covers it. The
        # frames in between unwind (their `finally` blocks run).
        why = f"raised at {st.filename}:{failure.line}, where {note}"
        outer = self._outer_statement(failure.frame)
        if outer is None:
            m = conditions._marks(exc)
            if m is not None:
                m.notes.append(why)
            return conditions._PROPAGATE
        frame, ost, decision, onote = outer
        action = "skipped" if decision.action is Action.SKIP else "returned None"
        record = SkippedError(
            ost.filename,
            frame.f_lineno,
            _text(ost),
            exc,
            frame.f_code.co_qualname,
            action,
            "; ".join(n for n in (why, onote) if n),
        )
        self._report(record, conditions._handler_stack.get())
        raise engine.UnwindTo(frame, decision)

    def _outer_statement(self, frame: types.FrameType):
        """The innermost statement of a caller of ``frame``, inside this region,
        that can be skipped: ``(frame, statement, decision, note)`` or None."""
        f = frame.f_back
        while f is not None:
            if _core.is_instrumented(f.f_code):
                rp = _core.resume_point_at(f.f_code, f.f_lasti)
                if rp is not None:
                    st = engine.statement(f.f_code, rp.index)
                    decision, note = _skip_decision(f, st)
                    if decision is not None:
                        return f, st, decision, note
            if f is self.frame:
                return None
            f = f.f_back
        return None

    def _pause(self, failure: Failure) -> Decision:
        pause = engine.policies.get("pause")
        if pause is None:
            try:
                from . import prompt  # noqa: F401  (registers policies["pause"])
            except ImportError:
                pass
            pause = engine.policies.get("pause")
        if pause is None:
            self.breakpoint = False
            print(
                "resurrect: breakpoint=True but the interactive prompt is not available; skipping",
                file=sys.stderr,
            )
            return self._on_failure(failure, ()) or conditions._PROPAGATE
        decision = pause(failure)
        self._record(failure, f"paused, then {decision.action.value}", "")
        return decision

    def _record(self, failure: Failure, action: str, note: str) -> None:
        st = failure.statement
        record = SkippedError(
            st.filename,
            failure.line,
            _text(st),
            failure.exception,
            failure.frame.f_code.co_qualname,
            action,
            note,
        )
        self._report(record, conditions._handler_stack.get())

    def _report(self, record: SkippedError, stack) -> None:
        regions = [self]
        regions.extend(c for c in stack if isinstance(c, SkipRegion) and c is not self)
        logs: dict[int, Any] = {}
        for r in regions:
            r.skipped.append(record)
            if r.log is not None:
                logs.setdefault(id(r.log), r.log)
        for log in logs.values():
            _emit(log, record)
        if any(r.verbose for r in regions):
            print(f"resurrect: {record}", file=sys.stderr)

    def __repr__(self) -> str:
        return f"<skip region {conditions._spec_name(self.exceptions)}>"


def _text(st: engine.Statement) -> str:
    """The statement's source line without a trailing comment."""
    return _strip_comment(st.text)


def _strip_comment(text: str) -> str:
    if "#" not in text:
        return text
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                return text[: tok.start[1]].rstrip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return text


def _skip_decision(frame: types.FrameType, st: engine.Statement) -> tuple[Decision | None, str]:
    """How to skip statement ``st`` of ``frame``: ``skip``, or ``leave None``
    for a failing ``return`` or the last statement of a function; ``(None,
    reason)`` when impossible."""
    decision, note = conditions.statement_decision(frame, st, Action.SKIP)
    if decision is not None and decision.action is Action.SKIP and st.rp.skip_to is None:
        # Nothing follows the statement: skipping it ends the function.
        leave, _ = conditions.statement_decision(frame, st, Action.LEAVE, None)
        if leave is not None:
            return leave, "the last statement: returned None"
    if decision is None and isinstance(st.node, ast.Return):
        leave, _ = conditions.statement_decision(frame, st, Action.LEAVE, None)
        if leave is not None:
            return leave, "a failing `return`: returned None"
    return decision, note or ""


def _origin(exc: BaseException) -> tuple[types.FrameType | None, int | None, str]:
    """The innermost frame of ``exc``'s traceback, its line and source text."""
    tb = exc.__traceback__
    if tb is None:
        return None, None, ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    text = linecache.getline(frame.f_code.co_filename, tb.tb_lineno).strip()
    return frame, tb.tb_lineno, _strip_comment(text)


def skipping(
    exceptions: Any = Exception, log: Any = None, verbose: bool = False, breakpoint: bool = False
) -> SkipRegion:
    """Skip failing statements in a ``with`` block::

        with resurrect.skipping(ValueError) as skipped:
            for line in lines:
                total += int(line)      # a bad line is skipped, the loop goes on
        for s in skipped:
            print(s.filename, s.line, s.statement, s.exception)

    ``exceptions``: the exception class (or tuple) to skip; others behave as
    usual. ``log``: a list to append each :class:`SkippedError` to, a callable
    to call with it, or a :class:`logging.Logger` (a warning each). ``verbose``:
    print each to stderr. ``breakpoint``: open the interactive prompt at each
    instead of skipping.

    The code containing the ``with`` needs resume points (``@skip_errors``,
    ``@resurrect.resumable`` or ``resurrect run``); else
    :class:`NoResumePointsError` is raised.
    """
    return SkipRegion(exceptions, log, verbose, breakpoint)


def skip_errors(
    exceptions: Any = Exception,
    log: Any = None,
    verbose: bool = False,
    breakpoint: bool = False,
) -> Callable:
    """Decorator: every call of the function runs as a skip region (see
    :func:`skipping`); the function (and the functions nested in it) get resume
    points, so it works without ``resurrect run``::

        @resurrect.skip_errors(verbose=True)
        def report(rows):
            for row in rows:
                print(row["name"], 100 / row["count"])

    The failures of the latest call are in ``report.skipped`` (a list of
    :class:`SkippedError`). Also usable bare: ``@skip_errors``.
    """
    if isinstance(exceptions, types.FunctionType | staticmethod | classmethod):
        return skip_errors()(exceptions)  # bare @skip_errors
    spec = _check_spec(exceptions)
    SkipRegion(spec, log)  # validate the arguments now

    def decorate(fn: Any) -> Any:
        if isinstance(fn, staticmethod | classmethod):
            return type(fn)(decorate(fn.__func__))
        if not isinstance(fn, types.FunctionType):
            raise TypeError(f"skip_errors decorates a function, not {fn!r}")
        inner: Any = fn
        while isinstance(inner, types.FunctionType):
            # Through other decorators' wrappers (functools.wraps) to the function.
            inner.__code__ = instrument_code(inner.__code__)
            inner = getattr(inner, "__wrapped__", None)

        def region() -> SkipRegion:
            return SkipRegion(spec, log, verbose, breakpoint, _check=False)

        if inspect.isasyncgenfunction(fn):
            raise TypeError(
                "skip_errors does not decorate async generator functions; "
                "use `with resurrect.skipping():` inside one decorated with @resurrect.resumable"
            )
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def wrapper(*args, **kwargs):
                scope = region()
                wrapper.skipped = scope.skipped
                with scope:
                    return await fn(*args, **kwargs)

        elif inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                scope = region()
                wrapper.skipped = scope.skipped
                return (yield from _drive(fn(*args, **kwargs), scope))

        else:

            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                scope = region()
                wrapper.skipped = scope.skipped
                try:
                    with scope:
                        return fn(*args, **kwargs)
                finally:
                    wrapper.skipped = scope.skipped

        wrapper.skipped = []
        return wrapper

    return decorate


def _drive(gen, scope: SkipRegion):
    """Run generator ``gen`` step by step with ``scope`` in force only while its
    body runs (not while its consumer does)."""
    send: Any = None
    throw: BaseException | None = None
    while True:
        with scope:
            try:
                if throw is not None:
                    item = gen.throw(throw)
                else:
                    item = gen.send(send)
            except StopIteration as stop:
                return stop.value
        throw = None
        try:
            send = yield item
        except GeneratorExit:
            gen.close()
            raise
        except BaseException as exc:
            throw = exc
            send = None


del annotations
