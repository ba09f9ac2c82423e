"""The one decision path every exception at a resume point takes.

The stubs emitted by the core call ``_core.dispatch(exc, rp)``; when the frame's
own ``except`` does not obviously catch the exception, the core calls
:func:`_hook` here, which:

1. runs the condition system's handlers (``handler_bind``), innermost first;
2. propagates if a Python ``except`` (or a suppressing ``with``) up the stack will
   catch the exception, as plain Python would;
3. otherwise asks the program's policy (pause at the prompt, skip, checkpoint,
   raise).

A decision is one of :class:`Decision`'s actions; :func:`_hook` turns it into
what the stub understands: ``None`` (propagate), ``True`` (retry), ``False``
(skip), or raising :class:`_Leave` (leave the frame, rerun, hand over to a
continuation).
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import enum
import gc
import importlib
import linecache
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

from . import _core, _frames

# ---------------------------------------------------------------------------
# Decisions


class Action(enum.Enum):
    PROPAGATE = "raise"
    RETRY = "retry"
    SKIP = "skip"
    USE_VALUE = "use"
    LEAVE = "leave"
    RERUN = "rerun"
    TRANSFER = "transfer"


@dataclasses.dataclass
class Decision:
    action: Action
    value: Any = None
    #: For TRANSFER: a thunk returning the frame's result (run after the frame's
    #: stack slots were handed over without running exits).
    thunk: Callable[[], Any] | None = None


class RestartRefused(Exception):
    """A restart is impossible at this statement; the message says why."""


class _Leave(BaseException):
    """Raised by the dispatcher to make the stub return from the frame."""

    def __init__(self, run_exits: bool, thunk: Callable[[], Any]):
        super().__init__()
        self.run_exits = run_exits
        self.thunk = thunk


class UnwindTo(BaseException):
    """Unwinds the frames between a failure and an outer frame (running their
    ``finally`` blocks and ``__exit__``s) to apply ``decision`` there."""

    def __init__(self, frame: types.FrameType, decision: Decision):
        super().__init__(f"unwinding to {frame.f_code.co_name}")
        self.target = frame
        self.decision = decision


_tls = threading.local()


def _module(name: str) -> types.ModuleType:
    """The module ``name``, imported on first use without ``builtins.__import__``:
    the decision path runs inside the program, which may have replaced it (a
    test patching ``__import__`` to put one module in ``sys.modules`` under
    every name imported would get our lazy imports too)."""
    m = sys.modules.get(name)
    return m if isinstance(m, types.ModuleType) else importlib.import_module(name)


# ---------------------------------------------------------------------------
# What is known about a statement


@dataclasses.dataclass
class Statement:
    """The statement a resume point stands for, in the user's words."""

    rp: Any  # _core.ResumePoint
    filename: str
    line: int | None
    text: str
    #: The AST node of the statement (when the source is available).
    node: ast.stmt | None
    code_flags: int = 0
    code_name: str = ""

    @property
    def kind(self) -> str:
        return self.rp.kind

    def refusal(self, action: Action) -> str | None:
        """Why ``action`` is impossible here, or ``None``."""
        rp = self.rp
        if action in (Action.RETRY, Action.PROPAGATE):
            return None
        if action is Action.SKIP:
            if rp.skip_to is not None or _falls_off_the_end(self):
                return None
            return _skip_refusal(self)
        if action is Action.USE_VALUE:
            if rp.kind == "loop":
                return "`use` for a loop's next item is not supported: assign the variable, then `skip`"
            if isinstance(self.node, ast.Return) and rp.leave_refusal is None:
                return None
            continues = rp.skip_to is not None or _falls_off_the_end(self)
            assigns = isinstance(self.node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.Expr)
            if assigns and continues:
                return None
            return "`use` needs an assignment, a `return` or an expression statement"
        if action is Action.TRANSFER:
            # The continuation runs the program's `finally`s itself: only the
            # base slots the old frame drops afterwards matter.
            return rp.handover_refusal
        if action in (Action.LEAVE, Action.RERUN):
            if rp.leave_refusal is not None:
                return rp.leave_refusal
            if action is Action.RERUN:
                if self.code_flags & _GENERATOR_FLAGS:
                    return "a generator or coroutine cannot be rerun (its caller holds it)"
                if self.code_name == "<module>":
                    return "module-level code cannot be rerun"
            return None
        return None


def _target_names(node: ast.stmt | None) -> set[str]:
    """Names an assignment statement binds (what `use` assigns)."""
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        targets = [node.target]
    return {n.id for t in targets for n in _walk(t) if isinstance(n, ast.Name)}


def _falls_off_the_end(st: Statement) -> bool:
    """Whether the statement is the last thing its code runs (no statement
    follows it in any enclosing block), so skipping it means returning None."""
    return (
        st.rp.skip_to is None
        and st.rp.leave_refusal is None
        and st.rp.kind != "loop"
        and not isinstance(st.node, ast.Return | ast.Raise | ast.With | ast.AsyncWith)
    )


def _skip_refusal(st: Statement) -> str:
    node = st.node
    if isinstance(node, ast.Return):
        return "a `return` has no next statement (use `leave` to return a value)"
    if isinstance(node, ast.Raise):
        return "a `raise` has no next statement"
    if isinstance(node, ast.With | ast.AsyncWith):
        return "the header of a `with` block cannot be skipped"
    return "this statement has no single next statement to continue with"


# CO_GENERATOR | CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR
_GENERATOR_FLAGS = 0x20 | 0x80 | 0x100 | 0x200

#: Resume points by id of their code object (a continuation holds the values
#: it restores in co_consts, so it may not be hashable); the code is kept too.
_rp_cache: dict[int, tuple[types.CodeType, list]] = {}
_ast_cache: dict[tuple[str, int], tuple[int, dict[int, list[ast.stmt]]]] = {}


def _statements_by_line(
    filename: str, code: types.CodeType | None = None, lines: list[str] | None = None
) -> dict[int, list[ast.stmt]]:
    """The statements of ``code``'s source (the whole file for module code,
    lambdas and comprehensions; only the function's block otherwise, which
    keeps the first pause in a long file fast): for each line, the statements
    whose lines contain it, outermost first. ``lines``: the
    source (default: linecache's copy of the file)."""
    if lines is None:
        lines = linecache.getlines(filename)
    first = 1
    if code is not None and not code.co_name.startswith("<") and code.co_firstlineno > 0:
        first = code.co_firstlineno
    key = (filename, first)
    stamp = hash(tuple(lines))
    cached = _ast_cache.get(key)
    if cached and cached[0] == stamp:
        return cached[1]
    tree = None
    if first > 1:
        try:
            inspect = _module("inspect")
            textwrap = _module("textwrap")

            block = inspect.getblock(lines[first - 1 :])
            tree = ast.parse(textwrap.dedent("".join(block)))
            _shift_lines(tree, first - 1)
        except (SyntaxError, ValueError, IndentationError, Exception):
            tree = None
    if tree is None:
        try:
            tree = ast.parse("".join(lines))
        except (SyntaxError, ValueError):
            tree = None
    out: dict[int, list[ast.stmt]] = {}
    if tree is not None:
        # Walk order visits parents first: each line's list is outermost first.
        for node in _walk(tree):
            if isinstance(node, ast.stmt):
                start, end = node.lineno, node.end_lineno or node.lineno
                for d in getattr(node, "decorator_list", ()):
                    start = min(start, d.lineno)  # a decorated def starts at its decorators
                for n in range(start, end + 1):
                    out.setdefault(n, []).append(node)
    _ast_cache[key] = (stamp, out)
    return out


def _walk(node: ast.AST):
    """``ast.walk`` (parents before children), without its import of
    ``collections`` on every call (see :func:`_module`)."""
    todo = [node]
    while todo:
        n = todo.pop()
        yield n
        todo.extend(reversed(list(ast.iter_child_nodes(n))))


def _shift_lines(tree: ast.AST, delta: int) -> None:
    """``ast.increment_lineno`` over :func:`_walk`."""
    for n in _walk(tree):
        if isinstance(n, ast.TypeIgnore):
            n.lineno += delta
            continue
        for attr in ("lineno", "end_lineno"):
            if attr in n._attributes and getattr(n, attr, None) is not None:
                setattr(n, attr, getattr(n, attr) + delta)


def _statement_at(statements: dict[int, list[ast.stmt]], line: int, loop: bool) -> ast.stmt | None:
    """The statement a resume point at ``line`` stands for: the innermost one
    starting on that line (a body on the line of its header), else the
    innermost one whose lines contain it (3.12+: a statement whose first
    instruction is on a later line, like a comprehension whose iterable is
    evaluated first). A loop's resume point: the `for` starting there."""
    around = statements.get(line, ())
    starting = [n for n in around if n.lineno == line]
    if loop:
        fors = [n for n in starting if isinstance(n, ast.For | ast.AsyncFor)]
        return fors[-1] if fors else None
    if starting:
        return starting[-1]
    return around[-1] if around else None


def statement(code: types.CodeType, rp_index: int) -> Statement:
    cached = _rp_cache.get(id(code))
    if cached is not None and cached[0] is code:
        rps = cached[1]
    else:
        rps = _core.resume_points(code)
        _rp_cache[id(code)] = (code, rps)
    rp = rps[rp_index]
    filename = code.co_filename
    line = rp.line
    # Code a reload replaced was compiled from an older text than the file's.
    lines = edits.lines_of(code) if edits is not None else None
    node = None
    if line:
        node = _statement_at(_statements_by_line(filename, code, lines), line, rp.kind == "loop")
        if node is not None and node.lineno < line:
            if any(r.line is not None and node.lineno <= r.line < line for r in rps[:rp_index]):
                # A resume point of its own inside a statement that started
                # earlier (a line where the stack is empty): only part of it.
                node = None
            else:
                line = node.lineno  # the statement's first line, as the user wrote it
    if lines is not None:
        text = lines[line - 1].strip() if line and line <= len(lines) else ""
    else:
        text = linecache.getline(filename, line).strip() if line else ""
    return Statement(rp, filename, line, text, node, code.co_flags, code.co_name)


# ---------------------------------------------------------------------------
# Failures


@dataclasses.dataclass
class Failure:
    """An exception stopped at a resume point, its frame still alive."""

    exception: BaseException
    frame: types.FrameType
    statement: Statement
    thread: threading.Thread

    @property
    def filename(self) -> str:
        return self.statement.filename

    @property
    def line(self) -> int | None:
        lasti_line = _raising_line(self.exception, self.frame)
        return lasti_line or self.statement.line

    def refusal(self, action: Action) -> str | None:
        """Why ``action`` is impossible for this failure now, or ``None``."""
        return refusal(self.frame, self.statement, action)


def refusal(frame: types.FrameType, st: Statement, action: Action) -> str | None:
    """Why ``action`` is impossible at statement ``st`` of the live ``frame``."""
    reason = st.refusal(action)
    if reason is None and action is Action.RETRY and st.rp.kind == "loop":
        reason = _loop_retry_refusal(frame, st)
    if reason is None and action in (Action.SKIP, Action.USE_VALUE):
        missing = _left_unbound(frame, st, action)
        if missing:
            why = _checked_handover_refusal(frame, st)
            if why is not None:
                names = ", ".join(f"`{n}`" for n in missing)
                return (
                    f"continuing would leave {names} unbound and {why} "
                    "(give a value with `use`, or assign it first)"
                )
    if reason is None and edits is not None:
        reason = edits.refusal(frame, st, action)
    return reason


def _left_unbound(frame: types.FrameType, st: Statement, action: Action) -> list[str]:
    """Locals a skip (or ``use``) of ``st`` would leave unbound that the frame's
    code reads without an unbound check (3.12+ ``LOAD_FAST``: the compiler
    proved them bound on every path from the entry, which a skip breaks;
    reading one would read NULL). Empty on 3.11, whose reads all check."""
    if st.rp.kind == "loop" or st.rp.skip_to is None:
        return []
    unchecked = _core.unchecked_reads(frame.f_code)
    if not unchecked:
        return []
    stored = set(_core.stored_locals(frame.f_code, st.rp.index))
    if action is Action.USE_VALUE:
        stored -= _target_names(st.node)
    if not stored:
        return []
    ns = frame.f_locals
    return [n for n in unchecked if n in stored and n not in ns]


#: CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR
_CO_SUSPENDS = 0x20 | 0x80 | 0x200


def _checked_handover_refusal(frame: types.FrameType, st: Statement) -> str | None:
    """Why the frame cannot continue after ``st`` in a continuation of its own
    code (whose local reads are checked), or ``None``."""
    if frame.f_code.co_flags & _CO_SUSPENDS:
        return "a generator or coroutine cannot hand over to checked code"
    if st.rp.handover_refusal is not None:
        return st.rp.handover_refusal
    if _core.is_continuation(frame.f_code):
        return "this frame already runs a continuation"
    reload = _module("resurrect.reload")
    code = frame.f_code
    if reload._unbound_reads(code, st.rp.skip_to, reload._bound_in(frame, code)):
        # 3.13: a superinstruction would read it in the continuation too.
        return "the code after it reads it without a check"
    return None


def _loop_retry_refusal(frame: types.FrameType, st: Statement) -> str | None:
    """Retrying a loop's resume point fetches the next item again: right when
    fetching it failed, wrong when what failed is something else the resume
    point covers (a loop body on the line of its `for`, a generator
    expression's element, unpacking the target): the failed item would be lost."""
    lasti = _failing_offset(frame)
    code = frame.f_code
    if lasti is not None and 0 <= lasti < len(code.co_code):
        dis = _module("dis")

        if dis.opname[code.co_code[lasti]] == "FOR_ITER":
            rp = _core.resume_point_at(code, lasti)
            if rp is not None and rp.index == st.rp.index:
                return None
    if code.co_name == "<genexpr>":
        return (
            "retry would fetch the generator expression's next item and lose the one "
            "whose element failed (retry the statement that iterates over it instead)"
        )
    return (
        "retry would fetch the loop's next item and lose the one that failed (a loop "
        "body on the line of its `for`, or the loop's target); put the body on its own "
        "line to retry it, `skip` goes to the next item"
    )


def _failing_offset(frame: types.FrameType) -> int | None:
    """Offset of the instruction of ``frame`` the exception being decided was
    raised at (an outer frame: the call it is suspended in)."""
    current = getattr(_tls, "current", None)
    if current is not None and current[0] is frame:
        tb = current[1].__traceback__
        found = None
        while tb is not None:
            if tb.tb_frame is frame:
                found = tb.tb_lasti  # the last entry: the innermost for this frame
            tb = tb.tb_next
        if found is not None:
            return found
    lasti = frame.f_lasti
    return lasti if lasti >= 0 else None


def _raising_line(exc: BaseException, frame: types.FrameType) -> int | None:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame is frame:
            return tb.tb_lineno
        tb = tb.tb_next
    return None


# ---------------------------------------------------------------------------
# Will the program catch it?

_FLOW = (SystemExit, KeyboardInterrupt, GeneratorExit)


def _flow_exceptions() -> tuple[type[BaseException], ...]:
    """Exceptions that are control flow for the runtime or a framework."""
    extra: list[type[BaseException]] = []
    # Modules may be half imported (an exception raised while they import).
    for module, names in (
        ("unittest", ("SkipTest",)),
        ("_pytest.outcomes", ("OutcomeException", "Exit")),
    ):
        m = sys.modules.get(module)
        for name in names:
            t = getattr(m, name, None) if m is not None else None
            if isinstance(t, type) and issubclass(t, BaseException):
                extra.append(t)
    return _FLOW + tuple(extra)


class _Probe(Exception):
    """Matched only by catch-all clauses (`except Exception`, bare `except`)."""


def suppresses(exit_fn: Any, exc: BaseException, _depth: int = 0) -> bool:
    """Whether the context manager behind a bound ``__exit__`` will (or may)
    swallow ``exc``: when in doubt, yes — the program's own handling is never
    overridden."""
    cm = getattr(exit_fn, "__self__", None)
    if cm is None or _depth > 8:
        return False
    contextlib = _module("contextlib")

    if isinstance(cm, contextlib.suppress):
        return isinstance(exc, cm._exceptions)
    protocol = getattr(cm, "__resurrect_catches__", None)
    if protocol is not None:
        return bool(protocol(exc))
    name = type(cm).__name__
    module = type(cm).__module__ or ""
    expected = None
    if module.startswith("_pytest") and name == "RaisesContext":
        expected = getattr(cm, "expected_exception", None)
    elif module.startswith("_pytest") and name in ("RaisesExc", "RaisesGroup"):
        expected = getattr(cm, "expected_exceptions", None)
    elif module.startswith("unittest") and name in ("_AssertRaisesContext",):
        expected = getattr(cm, "expected", None)
    if expected is not None:
        try:
            return isinstance(exc, expected)
        except TypeError:
            return False
    if isinstance(cm, contextlib.ExitStack):
        return any(
            suppresses(cb, exc, _depth + 1) if hasattr(cb, "__self__") else _may_return_true(cb)
            for _, cb in getattr(cm, "_exit_callbacks", ())
        )
    if isinstance(cm, contextlib._GeneratorContextManager):
        # @contextmanager: the generator, suspended at its `yield`, gets the
        # exception thrown in; its own `except` there decides.
        frame = getattr(getattr(cm, "gen", None), "gi_frame", None)
        if frame is None:
            return False
        try:
            steps = _core.handler_chain(frame, exc)
        except Exception:
            return True
        return any(kind == "except" and detail is not False for kind, detail in steps) or any(
            kind == "with" for kind, _ in steps
        )
    return _may_return_true(getattr(exit_fn, "__func__", exit_fn))


def _may_return_true(fn: Any) -> bool:
    """Whether a Python ``__exit__`` says ``return True`` anywhere. One that
    returns an expression (``return self.swallow``) is taken not to suppress:
    the policy is then asked, and propagating gives the plain behaviour. C-level
    exits (files, locks, …) never suppress."""
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):
        return False
    known = _returns_true.get(id(code))
    if known is None or known[0] is not code:
        known = _returns_true[id(code)] = (code, _scan_returns_true(code))
    return known[1]


#: ``_may_return_true`` by code object (held, so its id stays its own):
#: disassembling costs tens of microseconds, and the same ``__exit__`` meets
#: every exception of a loop.
_returns_true: dict[int, tuple[types.CodeType, bool]] = {}


def _scan_returns_true(code: types.CodeType) -> bool:
    dis = _module("dis")
    prev = None
    for ins in dis.get_instructions(code):
        if ins.opname == "RETURN_CONST" and ins.argval is True:
            return True
        if (
            ins.opname == "RETURN_VALUE"
            and prev is not None
            and prev.opname == "LOAD_CONST"
            and prev.argval is True
        ):
            return True
        prev = ins
    return False


def will_be_caught(failure: Failure) -> bool:
    """Whether plain Python would handle ``failure.exception`` somewhere up the
    stack (ARCHITECTURE.md §2, including the framework boundary)."""
    exc = failure.exception
    frame: types.FrameType | None = failure.frame
    lasti: int | None = failure.statement.rp.start
    seen_user = False
    while frame is not None:
        instrumented = _core.is_instrumented(frame.f_code)
        boundary = not instrumented and seen_user and config.boundary
        try:
            steps = _core.handler_chain(frame, exc, lasti)
        except Exception:
            return True  # cannot analyse: never override the program
        for kind, detail in steps:
            if kind == "except":
                if detail is None:
                    return True
                if detail:
                    if boundary and _catch_all(frame, lasti):
                        return False
                    return True
            elif kind == "with":
                if detail is not None and suppresses(detail, exc):
                    return True
            elif kind == "except*":
                return True
        seen_user = seen_user or instrumented
        entered = _core.entered_from_c(frame)
        if entered and isinstance(exc, AttributeError | StopIteration | StopAsyncIteration):
            return True  # hasattr(), getattr(default), iteration protocols
        frame = frame.f_back
        lasti = None
    return False


def _catch_all(frame: types.FrameType, lasti: int | None) -> bool:
    probe = _Probe()
    for kind, detail in _core.handler_chain(frame, probe, lasti):
        if kind == "except" and detail:
            return True
    return False


# ---------------------------------------------------------------------------
# Configuration and the hook


@dataclasses.dataclass
class Config:
    #: "pause", "skip", "raise", "checkpoint"
    on_error: str = "raise"
    #: Catch-alls in library frames that called user code do not count.
    boundary: bool = True


config = Config()

#: Called with a Failure before the "will it be caught?" check; may return a
#: Decision (a restart was invoked) or None (declined). Set by conditions.
signal_handlers: Callable[[Failure], Decision | None] | None = None

#: Called with a Failure nothing will catch, before the program's policy;
#: may return a Decision or None. Set by ``skip_errors``/``skipping``.
scoped_policy: Callable[[Failure], Decision | None] | None = None

#: Edit and continue (set by ``resurrect.reload``): an object with
#:
#: * ``refusal(frame, st, action) -> str | None``: why a restart is impossible
#:   on a frame running code a reload replaced (no sound mapping);
#: * ``translate(frame, st, decision) -> Decision``: the decision to apply
#:   there (retry, skip, use become hand-overs to the new code);
#: * ``function_of(frame)``: the function whose code a reload replaced (rerun);
#: * ``lines_of(code) -> list[str] | None``: the source lines old code was
#:   compiled from (``None``: the file's current text is right).
edits: Any = None

#: Policies by name: ``policy(failure) -> Decision``.
policies: dict[str, Callable[[Failure], Decision]] = {}


def _policy_raise(failure: Failure) -> Decision:
    return Decision(Action.PROPAGATE)


def _policy_skip(failure: Failure) -> Decision:
    st = failure.statement
    if failure.refusal(Action.SKIP) is None:
        record_skip(failure)
        return Decision(Action.SKIP)
    if isinstance(st.node, ast.Return) and st.refusal(Action.LEAVE) is None:
        record_skip(failure, note="returned None")
        return Decision(Action.LEAVE, None)
    return Decision(Action.PROPAGATE)


policies["raise"] = _policy_raise
policies["skip"] = _policy_skip

#: Failures skipped by the "skip" policy: (filename, line, statement, exception).
skipped: list[tuple[str, int | None, str, BaseException]] = []


def record_skip(failure: Failure, note: str = "") -> None:
    st = failure.statement
    skipped.append((st.filename, failure.line, st.text, failure.exception))
    exc = failure.exception
    extra = f" ({note})" if note else ""
    print(
        f"resurrect: skipped {st.filename}:{failure.line}: {st.text}: "
        f"{type(exc).__name__}: {exc}{extra}",
        file=sys.stderr,
    )


def decide(failure: Failure) -> Decision:
    if isinstance(failure.exception, _flow_exceptions()):
        return Decision(Action.PROPAGATE)
    if signal_handlers is not None:
        d = signal_handlers(failure)
        if d is not None:
            return d
    try:
        caught = will_be_caught(failure)
    except Exception:
        caught = True  # cannot tell: never override the program
    if caught:
        return Decision(Action.PROPAGATE)
    if scoped_policy is not None:
        d = scoped_policy(failure)
        if d is not None:
            return d
    return policies.get(config.on_error, _policy_raise)(failure)


def _hook(frame: types.FrameType, exc: BaseException, rp_index: int):
    if getattr(_tls, "busy", False):
        return None  # an exception inside the decision machinery itself
    # The exception being decided and its frame (for `_failing_offset`); cleared
    # before returning: a reference would keep the exception and its frames alive.
    _tls.current = (frame, exc)
    try:
        return _decide_and_apply(frame, exc, rp_index)
    finally:
        _tls.current = None


def _decide_and_apply(frame: types.FrameType, exc: BaseException, rp_index: int):
    if isinstance(exc, UnwindTo):
        if exc.target is frame:
            return apply(frame, statement(frame.f_code, rp_index), exc, exc.decision)
        return ...  # passing through: propagate, and let the target's stub see it
    _tls.busy = True
    try:
        try:
            failure = Failure(
                exc, frame, statement(frame.f_code, rp_index), threading.current_thread()
            )
        except Exception:
            return None  # our own machinery failed: the program's exception goes on unchanged
        decision = decide(failure)
    finally:
        _tls.busy = False
    return apply(frame, failure.statement, exc, decision)


def apply(frame: types.FrameType, st: Statement, exc: BaseException, d: Decision):
    """Carry out ``d`` at the statement ``st`` of ``frame``. An impossible
    restart never replaces the program's exception: it is reported and the
    exception propagates as plain Python would."""
    try:
        return _apply(frame, st, exc, d)
    except RestartRefused as refused:
        print(
            f"resurrect: cannot {d.action.value} at {st.filename}:{st.line}: {refused}",
            file=sys.stderr,
        )
        return None


def _apply(frame: types.FrameType, st: Statement, exc: BaseException, d: Decision):
    if edits is not None:
        # A restart on a frame running code a reload replaced continues in the new code.
        d = edits.translate(frame, st, d)
    a = d.action
    reason = refusal(frame, st, a) if a is not Action.TRANSFER else st.refusal(a)
    if reason is not None and not (a is Action.USE_VALUE and isinstance(st.node, ast.Return)):
        raise RestartRefused(reason)
    if a is Action.PROPAGATE:
        return None
    if a in (Action.SKIP, Action.USE_VALUE) and _left_unbound(frame, st, a):
        return _skip_to_checked_code(frame, st, d)
    if a is Action.RETRY:
        return True
    if a is Action.SKIP:
        if st.rp.skip_to is None:
            if _falls_off_the_end(st):
                # Nothing follows: skipping it ends the function, returning None.
                raise _Leave(True, lambda: None)
            raise RestartRefused(_skip_refusal(st))
        return False
    if a is Action.USE_VALUE:
        return _use_value(frame, st, d.value)
    if a is Action.LEAVE:
        value = d.value
        raise _Leave(True, lambda: value)
    if a is Action.RERUN:
        raise _Leave(True, _rerun_thunk(frame))
    if a is Action.TRANSFER:
        assert d.thunk is not None
        raise _Leave(False, d.thunk)
    raise AssertionError(a)


def _skip_to_checked_code(frame: types.FrameType, st: Statement, d: Decision):
    """Skip (or ``use``) where a local the code reads unchecked would stay
    unbound: the frame continues after ``st`` in a continuation of its own
    code, whose reads check (a read of the local then raises
    ``UnboundLocalError``, its own resume point, as on 3.11). ``refusal`` has
    checked that the hand-over is possible."""
    if d.action is Action.USE_VALUE:
        node = st.node
        if not isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            raise RestartRefused("`use` needs an assignment here")
        for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
            _assign(frame, t, d.value)
    try:
        thunk = _module("resurrect.reload").checked_continuation(frame, st.rp)
    except _core.BytecodeError as e:
        raise RestartRefused(f"continuing after the statement is impossible: {e}") from None
    raise _Leave(False, thunk)


def _use_value(frame: types.FrameType, st: Statement, value: Any):
    node = st.node
    if st.rp.kind == "loop":
        if node is None:
            raise RestartRefused("the loop's target is unknown (no source)")
        _assign(frame, node.target, value)
        # Continue into the body: the instruction after the target's store.
        return _enter_loop_body(frame, st, value)
    if isinstance(node, ast.Return):
        raise _Leave(True, lambda: value)
    if isinstance(node, ast.Assign):
        for t in node.targets:
            _assign(frame, t, value)
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        _assign(frame, node.target, value)
    elif not isinstance(node, ast.Expr):
        raise RestartRefused("`use` needs an assignment, a `return` or an expression statement")
    if st.rp.skip_to is None:
        if _falls_off_the_end(st):
            raise _Leave(True, lambda: None)
        raise RestartRefused(_skip_refusal(st))
    return False


def _enter_loop_body(frame, st, value):
    raise RestartRefused(
        "`use` on a loop's next item is not supported yet; assign the variable and `skip`"
    )


def _assign(frame: types.FrameType, target: ast.expr, value: Any) -> None:
    src = ast.unparse(target) + " = __resurrect_use_value__"
    _frames.run_in_frame(frame, src, extra={"__resurrect_use_value__": value})


def _function_of(frame: types.FrameType):
    code = frame.f_code
    for obj in gc.get_referrers(code):
        if isinstance(obj, types.FunctionType) and obj.__code__ is code:
            return obj
    # A reload gave the function new code: the frame still runs the old one.
    return edits.function_of(frame) if edits is not None else None


def _rerun_thunk(frame: types.FrameType):
    fn = _function_of(frame)
    if fn is None:
        raise RestartRefused("the function of this frame cannot be found")
    code = frame.f_code
    ns = frame.f_locals
    n = code.co_argcount + code.co_kwonlyargcount
    names = code.co_varnames[:n]
    pos = [ns[x] for x in names[: code.co_argcount]]
    kw = {x: ns[x] for x in names[code.co_argcount : n]}
    i = n
    if code.co_flags & 0x04:  # *args
        pos.extend(ns[code.co_varnames[i]])
        i += 1
    if code.co_flags & 0x08:  # **kwargs
        kw.update(ns[code.co_varnames[i]])
    return lambda: fn(*pos, **kw)


def _unwind(exc: BaseException):
    """``__resurrect_unwind__``: what the stub's terminal code does with what the
    dispatcher raised."""
    if isinstance(exc, _Leave):
        _tls.thunk = exc.thunk
        return exc.run_exits
    return None


def _value():
    """The value a left frame returns (called by ``_core.value``, which is
    ``__resurrect_value__``)."""
    thunk = _tls.__dict__.pop("thunk", None)
    return thunk() if thunk is not None else None


def enable() -> None:
    """Install the builtins the stubs call and the decision hook."""
    builtins.__resurrect_dispatch__ = _core.dispatch
    builtins.__resurrect_late__ = _core.late
    # In Rust: the stubs call these where the dispatcher ran, possibly at the
    # recursion limit, where calling a Python function would fail.
    builtins.__resurrect_unwind__ = _core.unwind
    builtins.__resurrect_value__ = _core.value
    _core.set_hook(_hook, _value, _Leave)


enable()
