"""Common Lisp conditions and restarts on ordinary Python exceptions.

A condition is any exception. It is *signalled* in two ways:

* implicitly, when an ordinary exception is raised in instrumented code: the
  engine stops it at the failing statement's resume point, **before the stack
  unwinds**, and calls :func:`_signal_handlers` (``engine.signal_handlers``);
* explicitly, with :func:`signal`, :func:`error`, :func:`cerror` or :func:`warn`,
  from any code.

The handler stack (one per thread and per async task: it lives in a
:class:`contextvars.ContextVar`) holds *clusters*, innermost first:
:class:`HandlerBind` (``handler_bind``: handlers that run before unwinding and
may invoke a restart or decline by returning), :class:`HandlerCase`
(``handler_case``: unwinds like ``except``) and ``skip``'s scopes (a skip region
acts as a handler that invokes the ``skip`` restart).

Dynamic nesting follows Python: an ``except`` (or a suppressing ``with``) that
is dynamically inside a cluster catches before that cluster is consulted; one
outside it catches only if the cluster declined. Which side of a cluster a
handler is on is read from the live frames' exception tables: the cluster's
``with`` statement shows up in the frame where it was entered as a ``with``
step whose ``__exit__`` is bound to the cluster.

Restarts in force (:func:`compute_restarts`), innermost first:

1. those established by :func:`restart_case` (explicit restarts win over the
   implicit ones of the same name);
2. the statement restarts of the failing statement (``retry``, ``skip``,
   ``use_value``, ``leave``, ``rerun``), then those of the statement each outer
   instrumented frame is executing;
3. ``abort``: let the exception propagate as plain Python would, with no further
   handlers and no ``--on-error`` policy.

Invoking a restart is a non-local transfer: a ``restart_case`` restart raises a
private :class:`BaseException` caught by its ``restart_case``'s ``__exit__``; a
statement restart of the failing statement becomes the engine's
:class:`~resurrect.engine.Decision`; one of an outer frame unwinds to it with
:class:`~resurrect.engine.UnwindTo` (``finally`` blocks and ``__exit__`` of the
frames in between run).
"""

from __future__ import annotations

import ast
import contextvars
import dataclasses
import inspect
import linecache
import sys
import threading
import types
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

from . import _core, engine
from .engine import Action, Decision, Failure

__all__ = [
    "ControlError",
    "HandlerBind",
    "HandlerCase",
    "Restart",
    "RestartCase",
    "abort",
    "cerror",
    "compute_restarts",
    "continue_",
    "error",
    "find_restart",
    "handler_bind",
    "handler_case",
    "invoke_restart",
    "muffle_warning",
    "restart_case",
    "signal",
    "store_value",
    "use_value",
    "warn",
]


class ControlError(RuntimeError):
    """A misuse of the condition system: invoking a restart that is not in
    force, or with the wrong arguments."""


# ---------------------------------------------------------------------------
# Private transfers of control (never seen by user code unless it catches
# BaseException)


class _Transfer(BaseException):
    """Base of the condition system's own non-local exits."""


class _InvokeRestart(_Transfer):
    """Unwinds to the ``restart_case`` that established ``restart``."""

    def __init__(self, restart: Restart, args: tuple, kwargs: dict):
        super().__init__(f"invoking restart {restart.name!r}")
        self.restart = restart
        self.call_args = args
        self.call_kwargs = kwargs


class _CaseUnwind(_Transfer):
    """Unwinds to a ``handler_case`` that matched a signalled condition."""

    def __init__(self, target: HandlerCase, condition: BaseException):
        super().__init__("unwinding to handler_case")
        self.target = target
        self.condition = condition


class _StatementRestart(_Transfer):
    """Carries a statement restart of the failing statement back to
    :func:`_signal_handlers`, which returns it to the engine."""

    def __init__(self, decision: Decision, failure: Failure):
        super().__init__(f"statement restart {decision.action.value}")
        self.decision = decision
        self.failure = failure


_PROPAGATE = Decision(Action.PROPAGATE)

# ---------------------------------------------------------------------------
# Per-exception marks


class _Marks:
    """What the condition system already did with one exception object."""

    __slots__ = ("__weakref__", "aborted", "consulted", "decided", "notes")

    def __init__(self) -> None:
        #: Clusters whose handlers already saw this exception (each sees it once).
        self.consulted: weakref.WeakSet = weakref.WeakSet()
        #: ``abort`` was invoked: plain Python from now on.
        self.aborted = False
        #: The ``--on-error`` policy already decided (``error`` consulted it).
        self.decided = False
        #: Why inner skip regions could not skip it.
        self.notes: list[str] = []

    def __reduce__(self):
        # Pickling an exception pickles its __dict__: carry nothing across.
        return (_Marks, ())

    def __repr__(self) -> str:
        return "<resurrect marks>"


_MARKS = "__resurrect_marks__"


def _marks(exc: BaseException, create: bool = True) -> _Marks | None:
    m = getattr(exc, _MARKS, None)
    if isinstance(m, _Marks) or not create:
        return m if isinstance(m, _Marks) else None
    m = _Marks()
    try:
        setattr(exc, _MARKS, m)
    except (AttributeError, TypeError):
        return None
    return m


def _forget(exc: BaseException) -> None:
    """The signal of ``exc`` is over (a restart ran, a handler_case caught it):
    the same exception object raised again is a new signal."""
    if isinstance(getattr(exc, _MARKS, None), _Marks):
        try:
            delattr(exc, _MARKS)
        except (AttributeError, TypeError):
            pass


# ---------------------------------------------------------------------------
# Stacks


_handler_stack: contextvars.ContextVar[tuple[_Cluster, ...]] = contextvars.ContextVar(
    "resurrect_handlers", default=()
)
_restart_stack: contextvars.ContextVar[tuple[RestartCase, ...]] = contextvars.ContextVar(
    "resurrect_restarts", default=()
)


@dataclasses.dataclass
class _Signal:
    """The condition whose handlers are running right now."""

    condition: BaseException
    #: The failure (implicit signal at a resume point), or None (explicit signal).
    failure: Failure | None
    #: The frame the condition was signalled from.
    origin: types.FrameType | None


_active: contextvars.ContextVar[_Signal | None] = contextvars.ContextVar(
    "resurrect_active_signal", default=None
)

_state = threading.local()


def _push(var: contextvars.ContextVar, item: Any) -> contextvars.Token:
    return var.set((item, *var.get()))


def _pop(var: contextvars.ContextVar, token: contextvars.Token | None, item: Any) -> None:
    try:
        if token is None:
            raise ValueError
        var.reset(token)
    except (ValueError, RuntimeError):
        # Exited in another context than entered (a generator resumed
        # elsewhere): remove just this item.
        var.set(tuple(x for x in var.get() if x is not item))


_bind_lock = threading.Lock()
_binds_active = 0


def _count_binds(delta: int) -> None:
    """Tell the core's fast path how many ``handler_bind`` regions are in force
    (all threads): while any is, every exception goes to Python first."""
    global _binds_active
    with _bind_lock:
        _binds_active = max(0, _binds_active + delta)
        _core.set_handlers_active(_binds_active)


def _stack_frames(start: types.FrameType | None) -> set[int]:
    out = set()
    f = start
    while f is not None:
        out.add(id(f))
        f = f.f_back
    return out


def _on_stack(frame: types.FrameType | None) -> bool:
    if frame is None:
        return False
    f: types.FrameType | None = sys._getframe(1)
    while f is not None:
        if f is frame:
            return True
        f = f.f_back
    return False


# ---------------------------------------------------------------------------
# Clusters of the handler stack


def _type_spec_ok(spec: Any) -> bool:
    if isinstance(spec, tuple):
        return bool(spec) and all(_type_spec_ok(s) for s in spec)
    return isinstance(spec, type) and issubclass(spec, BaseException)


def _takes_condition(fn: Callable) -> bool:
    """Whether ``fn`` accepts the condition as a positional argument (a handler
    may also take none, like a bare ``except``)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL):
            return True
    return False


def _bindings(
    mapping: Mapping | Iterable | None, pairs: tuple, what: str
) -> list[tuple[Any, Callable, bool]]:
    items: list[tuple[Any, Any]] = []
    if isinstance(mapping, Mapping):
        items.extend(mapping.items())
    elif mapping is not None:
        if isinstance(mapping, tuple) and len(mapping) == 2 and _type_spec_ok(mapping[0]):
            items.append(mapping)
        elif _type_spec_ok(mapping) and len(pairs) == 1 and callable(pairs[0]):
            items.append((mapping, pairs[0]))
            pairs = ()
        else:
            items.extend(mapping)
    items.extend(pairs)
    out = []
    for item in items:
        try:
            spec, handler = item
        except (TypeError, ValueError):
            raise TypeError(
                f"{what}: expected {{ExceptionType: handler, ...}}, got {item!r}"
            ) from None
        if not _type_spec_ok(spec):
            raise TypeError(
                f"{what}: {spec!r} is not an exception class or a tuple of exception classes"
            )
        if not callable(handler):
            raise TypeError(f"{what}: the handler for {spec!r} is not callable: {handler!r}")
        out.append((spec, handler, _takes_condition(handler)))
    return out


def _control(exc: BaseException) -> bool:
    """The condition system's and the engine's own transfers: never handled."""
    return isinstance(exc, _Transfer | engine.UnwindTo | engine._Leave)


class _Cluster:
    """One entry of the handler stack. ``frame`` is where it was entered."""

    frame: types.FrameType | None = None
    _token: contextvars.Token | None = None

    def _enter_stack(self, frame: types.FrameType) -> None:
        if self.frame is not None:
            raise RuntimeError(f"this {type(self).__name__} is already in force; make a new one")
        self.frame = frame
        self._token = _push(_handler_stack, self)

    def _exit_stack(self) -> None:
        _pop(_handler_stack, self._token, self)
        self._token = None
        self.frame = None

    # What the cluster does; overridden.
    def _on_failure(self, failure: Failure, outer: tuple[_Cluster, ...]) -> Decision | None:
        """An exception stopped at a resume point reached this cluster."""
        return None

    def _on_signal(self, condition: BaseException, outer: tuple[_Cluster, ...]) -> None:
        """An explicitly signalled condition reached this cluster."""

    def _catches(self, exc: BaseException) -> bool:
        """Whether this cluster's ``__exit__`` stops ``exc`` unwinding into it."""
        return False

    def _takes_raise(self, exc: BaseException) -> bool:
        """Whether this cluster handles ``exc`` once it is raised (when it
        reaches a resume point or this cluster's ``__exit__``)."""
        return self._catches(exc)


def _call_handler(
    handler: Callable, takes: bool, condition: BaseException, outer: tuple[_Cluster, ...]
) -> Any:
    # A handler runs with only the clusters outside its own in force, so a
    # condition signalled inside it does not recurse into it (CLHS 9.1.4.1).
    token = _handler_stack.set(outer)
    try:
        return handler(condition) if takes else handler()
    finally:
        _pop(_handler_stack, token, None)


class HandlerBind(_Cluster):
    """``with handler_bind({ExcType: handler, ...}):`` — see :func:`handler_bind`."""

    def __init__(self, mapping=None, *pairs):
        self.bindings = _bindings(mapping, pairs, "handler_bind")

    def __enter__(self) -> HandlerBind:
        self._enter_stack(sys._getframe(1))
        _count_binds(+1)
        return self

    def __exit__(self, et, ev, tb) -> bool:
        self._exit_stack()
        _count_binds(-1)
        return False

    def _run(self, condition: BaseException, outer: tuple[_Cluster, ...]) -> None:
        m = _marks(condition)
        if m is not None:
            m.consulted.add(self)
        for spec, handler, takes in self.bindings:
            if isinstance(condition, spec):
                _call_handler(handler, takes, condition, outer)

    def _on_failure(self, failure, outer):
        self._run(failure.exception, outer)
        return None

    def _on_signal(self, condition, outer):
        self._run(condition, outer)

    def __repr__(self) -> str:
        names = ", ".join(_spec_name(s) for s, _, _ in self.bindings)
        return f"<handler_bind {names}>"


def _spec_name(spec: Any) -> str:
    if isinstance(spec, tuple):
        return "(" + ", ".join(_spec_name(s) for s in spec) + ")"
    return spec.__name__


class HandlerCase(_Cluster):
    """``with handler_case({ExcType: handler, ...}) as case:`` — see :func:`handler_case`."""

    def __init__(self, mapping=None, *pairs):
        self.bindings = _bindings(mapping, pairs, "handler_case")
        #: The return value of the handler that ran (None if none ran).
        self.value: Any = None
        #: The condition that was handled (None if none was).
        self.condition: BaseException | None = None

    @property
    def handled(self) -> bool:
        return self.condition is not None

    def _match(self, exc: BaseException):
        if _control(exc):
            return None
        for spec, handler, takes in self.bindings:
            if isinstance(exc, spec):
                return handler, takes
        return None

    def __enter__(self) -> HandlerCase:
        self._enter_stack(sys._getframe(1))
        return self

    def __resurrect_catches__(self, exc: BaseException) -> bool:
        """Whether this block's ``__exit__`` swallows ``exc`` (for the engine's
        "will it be caught?")."""
        return self._match(exc) is not None

    def __exit__(self, et, ev, tb) -> bool:
        self._exit_stack()
        if ev is None:
            return False
        if isinstance(ev, _CaseUnwind):
            if ev.target is not self:
                return False
            ev = ev.condition
        m = self._match(ev)
        if m is None:
            return False
        handler, takes = m
        _forget(ev)
        self.condition = ev
        self.value = handler(ev) if takes else handler()
        return True

    def _catches(self, exc):
        return self._match(exc) is not None

    def _on_failure(self, failure, outer):
        # The exception unwinds to this handler_case as plain Python.
        return _PROPAGATE if self._catches(failure.exception) else None

    def _on_signal(self, condition, outer):
        if self._match(condition) is not None and _on_stack(self.frame):
            raise _CaseUnwind(self, condition)

    def __repr__(self) -> str:
        names = ", ".join(_spec_name(s) for s, _, _ in self.bindings)
        return f"<handler_case {names}>"


def handler_bind(mapping=None, /, *pairs) -> HandlerBind:
    """Bind condition handlers for the dynamic extent of a ``with`` block
    (Common Lisp ``HANDLER-BIND``)::

        with handler_bind({ValueError: lambda c: use_value(0)}):
            total = parse_all(lines)

    ``mapping`` maps an exception class (or a tuple of them) to a handler; pairs
    ``(ExcType, handler)`` are accepted too. A handler runs **before the stack
    unwinds**, innermost binding first, with the condition as its argument (or no
    argument if it takes none). It may invoke a restart (:func:`invoke_restart`,
    :func:`use_value`, ...) — a non-local exit — or decline by returning, and the
    next outer handler gets the condition.

    Works on ordinary exceptions raised in instrumented code and on conditions
    signalled with :func:`signal`, :func:`error`, :func:`cerror`, :func:`warn`.
    An ``except`` dynamically inside the block catches before the handlers run;
    one outside catches only if every handler declined.
    """
    return HandlerBind(mapping, *pairs)


def handler_case(mapping=None, /, *pairs) -> HandlerCase:
    """Handle conditions by unwinding to the end of a ``with`` block, like
    ``except`` (Common Lisp ``HANDLER-CASE``)::

        with handler_case({ValueError: lambda c: -1}) as case:
            result = risky()
        if case.handled:
            result = case.value

    The handler runs after unwinding, with the condition (or no argument); its
    return value is ``case.value`` and the condition ``case.condition``. Unlike
    ``except``, it also catches conditions signalled with :func:`signal`.
    """
    return HandlerCase(mapping, *pairs)


# ---------------------------------------------------------------------------
# Restarts


@dataclasses.dataclass(eq=False)
class Restart:
    """A restart in force. ``kind`` is ``"restart_case"`` (established with
    :func:`restart_case`) or ``"statement"`` (a statement restart of an
    instrumented frame, or ``abort``)."""

    name: str
    description: str
    kind: str
    #: The frame the restart belongs to (the ``restart_case``'s or the statement's).
    frame: types.FrameType | None = None
    #: The restart function (``restart_case`` restarts).
    function: Callable | None = None
    #: The statement (statement restarts).
    statement: engine.Statement | None = None
    #: The action of a statement restart.
    action: Action | None = None
    _owner: RestartCase | None = dataclasses.field(default=None, repr=False)
    _failure: Failure | None = dataclasses.field(default=None, repr=False)

    @property
    def _key(self) -> tuple:
        if self.kind == "restart_case":
            return ("case", id(self))
        return (
            "stmt",
            self.name,
            id(self.frame),
            self.statement.rp.index if self.statement else -1,
        )

    def invoke(self, *args, **kwargs) -> NoReturn:
        """Same as ``invoke_restart(self, *args, **kwargs)``."""
        invoke_restart(self, *args, **kwargs)

    def __str__(self) -> str:
        return f"{self.name}: {self.description}"

    def __repr__(self) -> str:
        return f"<Restart {self.name} ({self.kind}): {self.description}>"


def _restart_spec(name: str, spec: Any) -> tuple[Callable, str]:
    if (
        isinstance(spec, tuple)
        and len(spec) == 2
        and callable(spec[0])
        and isinstance(spec[1], str)
    ):
        return spec
    if not callable(spec):
        raise TypeError(f"restart_case: restart {name!r} must be a callable, got {spec!r}")
    doc = (getattr(spec, "__doc__", None) or "").strip().splitlines()
    if doc and not isinstance(spec, type) and getattr(spec, "__name__", "") != "<lambda>":
        return spec, doc[0]
    return spec, f"invoke the {name!r} restart"


class RestartCase:
    """``with restart_case(name=function, ...) as r:`` — see :func:`restart_case`."""

    def __init__(self, *functions: Callable, **named: Any):
        self.restarts: list[Restart] = []
        for fn in functions:
            name = getattr(fn, "__name__", None)
            if not callable(fn) or not name or name == "<lambda>":
                raise TypeError(
                    "restart_case: a positional restart must be a named function "
                    "(its name is the restart's name); use name=function otherwise"
                )
            named.setdefault(name, fn)
        for name, spec in named.items():
            fn, description = _restart_spec(name, spec)
            self.restarts.append(
                Restart(name, description, "restart_case", function=fn, _owner=self)
            )
        #: The value of the block: what the invoked restart returned, or what
        #: the block assigned itself.
        self.value: Any = None
        #: The name of the restart that was invoked (None if none was).
        self.restart: str | None = None
        self.frame: types.FrameType | None = None
        self._token: contextvars.Token | None = None

    @property
    def invoked(self) -> bool:
        return self.restart is not None

    def __enter__(self) -> RestartCase:
        frame = sys._getframe(1)
        if self.frame is not None:
            raise RuntimeError("this restart_case is already in force; make a new one")
        self.frame = frame
        for r in self.restarts:
            r.frame = frame
        self._token = _push(_restart_stack, self)
        return self

    def __resurrect_catches__(self, exc: BaseException) -> bool:
        """Only its own restarts' transfers end in this block."""
        return isinstance(exc, _InvokeRestart) and exc.restart._owner is self

    def __exit__(self, et, ev, tb) -> bool:
        _pop(_restart_stack, self._token, self)
        self._token = None
        self.frame = None
        if isinstance(ev, _InvokeRestart) and ev.restart._owner is self:
            self.value = self._run(ev)
            return True
        return False

    def _run(self, ev: _InvokeRestart) -> Any:
        r = ev.restart
        self.restart = r.name
        assert r.function is not None
        return r.function(*ev.call_args, **ev.call_kwargs)

    def __call__(self, fn: Callable, /, *args, **kwargs) -> Any:
        """Call ``fn(*args, **kwargs)`` with these restarts in force and return
        its value — or, if one of them is invoked meanwhile, the restart's."""
        if self.frame is None:
            with self:
                return fn(*args, **kwargs)
            return self.value
        try:
            return fn(*args, **kwargs)
        except _InvokeRestart as ev:
            if ev.restart._owner is not self:
                raise
            return self._run(ev)

    def __repr__(self) -> str:
        return f"<restart_case {', '.join(r.name for r in self.restarts)}>"


def restart_case(*functions: Callable, **restarts: Any) -> RestartCase:
    """Establish restarts for the dynamic extent of a ``with`` block (Common
    Lisp ``RESTART-CASE``)::

        with restart_case(use_value=lambda v: v, skip_entry=lambda: None) as r:
            r.value = parse(entry)        # the block's value when no restart runs
        entry = r.value                   # ...or what the invoked restart returned

    ``name=function`` names a restart; a named function passed positionally is
    named after itself; ``name=(function, "description")`` adds the text the
    prompt shows. Invoking one unwinds to the end of the block (``finally`` and
    ``__exit__`` in between run), calls the function with the invoke's arguments
    and stores its return value in ``r.value`` (and its name in ``r.restart``).

    The object is also callable: ``r(fn, *args)`` calls ``fn`` with the restarts
    in force and returns its value, or the invoked restart's (the style of
    ``python-cl-conditions``)::

        with restart_case(use_value=lambda v: v) as call:
            return call(parse, entry)
    """
    return RestartCase(*functions, **restarts)


# Statement restarts --------------------------------------------------------

_STATEMENT_RESTARTS: tuple[tuple[str, Action], ...] = (
    ("retry", Action.RETRY),
    ("skip", Action.SKIP),
    ("use_value", Action.USE_VALUE),
    ("leave", Action.LEAVE),
    ("rerun", Action.RERUN),
)


def _where(frame: types.FrameType, st: engine.Statement) -> str:
    return f"`{st.text}` ({st.filename.rsplit('/', 1)[-1]}:{st.line}, in {frame.f_code.co_name})"


def _describe(name: str, frame: types.FrameType, st: engine.Statement) -> str:
    where = _where(frame, st)
    fn = frame.f_code.co_name
    return {
        "retry": f"run {where} again",
        "skip": f"continue after {where}",
        "use_value": f"let {where} produce a value, then continue",
        "leave": f"return a value (default None) from {fn}()",
        "rerun": f"call {fn}() again from its first line",
    }[name]


_tree_cache: dict[str, tuple[int, ast.Module | None]] = {}


def _tree(filename: str) -> ast.Module | None:
    lines = linecache.getlines(filename)
    key = hash(tuple(lines))
    cached = _tree_cache.get(filename)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        tree: ast.Module | None = ast.parse("".join(lines))
    except (SyntaxError, ValueError):
        tree = None
    _tree_cache[filename] = (key, tree)
    return tree


def _function_body(code: types.CodeType) -> list[ast.stmt] | None:
    tree = _tree(code.co_filename)
    if tree is None:
        return None
    if code.co_name == "<module>":
        return tree.body
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == code.co_name:
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            if code.co_firstlineno in (first, node.lineno):
                return node.body
    return None


def _ends(body: list[ast.stmt], line: int) -> bool:
    """Whether the statement starting on ``line`` is the last one executed in
    ``body`` before falling off its end."""
    if not body:
        return False
    last = body[-1]
    if last.lineno == line:
        return True
    if isinstance(last, ast.If):
        return _ends(last.body, line) or _ends(last.orelse, line)
    if isinstance(last, ast.With | ast.AsyncWith):
        return _ends(last.body, line)
    if isinstance(last, ast.Try) and not last.finalbody:
        return _ends(last.orelse or last.body, line) or any(
            _ends(h.body, line) for h in last.handlers
        )
    if isinstance(last, ast.Match):
        return any(_ends(case.body, line) for case in last.cases)
    return False


def _falls_off_end(frame: types.FrameType, st: engine.Statement) -> bool:
    """Whether continuing after ``st`` means returning ``None`` from the
    function: it is the last statement before the implicit ``return None``."""
    if st.line is None or st.rp.kind != "statement":
        return False
    body = _function_body(frame.f_code)
    return body is not None and _ends(body, st.line)


def statement_decision(
    frame: types.FrameType, st: engine.Statement, action: Action, value: Any = None
) -> tuple[Decision | None, str | None]:
    """The decision carrying out ``action`` at statement ``st`` of ``frame``,
    and a note; ``(None, reason)`` when it is impossible there. A ``skip`` of
    the last statement of a function returns ``None`` from it."""
    reason = engine.refusal(frame, st, action)
    if reason is None:
        return Decision(action, value), None
    if (
        action is Action.SKIP
        and not isinstance(st.node, ast.Raise | ast.Return)
        and engine.refusal(frame, st, Action.LEAVE) is None
    ):
        if _falls_off_end(frame, st):
            return Decision(Action.LEAVE, None), "the last statement: returned None"
    return None, reason


def _frame_statements(
    failure: Failure | None, origin: types.FrameType | None
) -> list[tuple[types.FrameType, engine.Statement, Failure | None]]:
    """(frame, statement being executed, failure) of each instrumented frame,
    innermost first."""
    out: list[tuple[types.FrameType, engine.Statement, Failure | None]] = []
    f = origin
    if failure is not None:
        out.append((failure.frame, failure.statement, failure))
        f = failure.frame.f_back
    hook_code = engine._hook.__code__
    skip_next = False
    while f is not None:
        if f.f_code is hook_code:
            # The frame below the engine's hook is in its stub: its statement
            # restarts belong to the failure being decided there.
            skip_next = True
        elif skip_next:
            skip_next = False
        elif _core.is_instrumented(f.f_code):
            rp = _core.resume_point_at(f.f_code, f.f_lasti)
            if rp is not None:
                out.append((f, engine.statement(f.f_code, rp.index), None))
        f = f.f_back
    return out


def _statement_restarts(failure: Failure | None, origin: types.FrameType | None) -> list[Restart]:
    out = []
    frames = _frame_statements(failure, origin)
    for frame, st, fl in frames:
        for name, action in _STATEMENT_RESTARTS:
            d, _ = statement_decision(frame, st, action)
            if d is None:
                continue
            out.append(
                Restart(
                    name,
                    _describe(name, frame, st),
                    "statement",
                    frame=frame,
                    statement=st,
                    action=action,
                    _failure=fl,
                )
            )
    innermost = frames[0] if frames else (None, None, None)
    out.append(
        Restart(
            "abort",
            "let the exception propagate as plain Python would",
            "statement",
            frame=innermost[0],
            statement=innermost[1],
            action=Action.PROPAGATE,
            _failure=failure,
        )
    )
    return out


def _current_signal(condition: BaseException | None) -> tuple[Failure | None, Any, bool]:
    """(failure, origin frame, found) for ``condition``: the one being
    signalled now, or the last failure the engine decided in this thread."""
    sig = _active.get()
    if sig is not None and (condition is None or condition is sig.condition):
        return sig.failure, sig.origin, True
    ref = getattr(_state, "last_failure", None)
    last = ref() if ref is not None else None
    if last is not None and condition is not None and last.exception is condition:
        return last, last.frame, True
    return None, None, False


def compute_restarts(condition: BaseException | None = None) -> list[Restart]:
    """The restarts in force, innermost first (Common Lisp ``COMPUTE-RESTARTS``):
    ``restart_case`` restarts, then the statement restarts of the failing
    statement and of the statement each outer instrumented frame is executing,
    then ``abort``.

    ``condition``: the condition being handled. Inside a handler it defaults to
    the one being signalled; from the interactive prompt pass the failure's
    exception to get its statement restarts. Restarts whose action is
    impossible at their statement are left out.
    """
    failure, origin, found = _current_signal(condition)
    if not found:
        origin = sys._getframe(1)
    live = _stack_frames(sys._getframe(1))
    out: list[Restart] = []
    for case in _restart_stack.get():
        if case.frame is not None and id(case.frame) in live:
            out.extend(case.restarts)
    out.extend(_statement_restarts(failure, origin))
    return out


def find_restart(
    identifier: str | Restart, condition: BaseException | None = None
) -> Restart | None:
    """The innermost restart in force named ``identifier`` (or ``identifier``
    itself if it is a :class:`Restart` still in force), else ``None``."""
    for r in compute_restarts(condition):
        if isinstance(identifier, Restart):
            if r is identifier or (r.kind == "statement" and r._key == identifier._key):
                return r
        elif r.name == identifier:
            return r
    return None


def invoke_restart(restart: str | Restart, /, *args, **kwargs) -> NoReturn:
    """Transfer control to ``restart`` (a name or a :class:`Restart` in force),
    passing it ``args``. Never returns. Raises :class:`ControlError` if no such
    restart is in force."""
    r = find_restart(restart)
    if r is None:
        name = restart.name if isinstance(restart, Restart) else restart
        names = ", ".join(dict.fromkeys(x.name for x in compute_restarts()))
        raise ControlError(f"no restart {name!r} is in force (in force: {names})")
    if r.kind == "restart_case":
        raise _InvokeRestart(r, args, kwargs)
    _invoke_statement(r, args, kwargs)


def _invoke_statement(r: Restart, args: tuple, kwargs: dict) -> NoReturn:
    if kwargs:
        raise ControlError(f"restart {r.name!r} takes no keyword arguments")
    sig = _active.get()
    if r.action is Action.PROPAGATE:  # abort
        if args:
            raise ControlError("restart 'abort' takes no arguments")
        target = r._failure.exception if r._failure is not None else None
        if target is None and sig is not None:
            target = sig.condition
        if target is None:
            raise ControlError("abort: no condition is being handled")
        m = _marks(target)
        if m is not None:
            m.aborted = True
        if r._failure is not None and sig is not None and sig.failure is r._failure:
            raise _StatementRestart(_PROPAGATE, r._failure)
        raise target
    if r.action is Action.USE_VALUE:
        if len(args) != 1:
            raise ControlError(
                f"restart 'use_value' takes one argument (the value), got {len(args)}"
            )
        value = args[0]
    elif r.action is Action.LEAVE:
        if len(args) > 1:
            raise ControlError(f"restart 'leave' takes at most one argument, got {len(args)}")
        value = args[0] if args else None
    else:
        if args:
            raise ControlError(f"restart {r.name!r} takes no arguments")
        value = None
    assert r.frame is not None and r.statement is not None and r.action is not None
    decision, reason = statement_decision(r.frame, r.statement, r.action, value)
    if decision is None:
        raise ControlError(f"restart {r.name!r} is impossible here: {reason}")
    if r._failure is not None:
        if sig is not None and sig.failure is r._failure:
            raise _StatementRestart(decision, r._failure)
        raise ControlError(
            f"restart {r.name!r} of the failing statement can only be invoked from a "
            "handler_bind handler; a policy returns its Decision instead"
        )
    raise engine.UnwindTo(r.frame, decision)


# Standard restart functions ------------------------------------------------


def use_value(value: Any, condition: BaseException | None = None) -> None:
    """Invoke the innermost ``use_value`` restart with ``value``: the failing
    statement (or the ``restart_case``) produces ``value``. Returns ``None`` if
    there is no such restart (Common Lisp ``USE-VALUE``)."""
    r = find_restart("use_value", condition)
    if r is not None:
        invoke_restart(r, value)


def store_value(value: Any, condition: BaseException | None = None) -> None:
    """Invoke the innermost ``store_value`` restart with ``value``. Returns
    ``None`` if there is no such restart (Common Lisp ``STORE-VALUE``)."""
    r = find_restart("store_value", condition)
    if r is not None:
        invoke_restart(r, value)


def continue_(condition: BaseException | None = None) -> None:
    """Invoke the innermost ``continue`` restart (established by :func:`cerror`).
    Returns ``None`` if there is none (Common Lisp ``CONTINUE``). Usable
    directly as a handler."""
    r = find_restart("continue", condition)
    if r is not None:
        invoke_restart(r)


def abort(condition: BaseException | None = None) -> NoReturn:
    """Invoke the innermost ``abort`` restart: by default the condition
    propagates as plain Python would, with no further handlers and no
    ``--on-error`` policy (Common Lisp ``ABORT``). Usable directly as a handler."""
    r = find_restart("abort", condition)
    if r is None:
        raise ControlError("no 'abort' restart is in force")
    invoke_restart(r)


def muffle_warning(condition: BaseException | None = None) -> NoReturn:
    """Invoke the ``muffle_warning`` restart of :func:`warn`: the warning is not
    emitted (Common Lisp ``MUFFLE-WARNING``). Usable directly as a handler."""
    r = find_restart("muffle_warning", condition)
    if r is None:
        raise ControlError("no 'muffle_warning' restart is in force (not inside warn())")
    invoke_restart(r)


# ---------------------------------------------------------------------------
# Which clusters an exception reaches: the walk over the live frames


def _walk(
    exc: BaseException,
    frame: types.FrameType | None,
    lasti: int | None,
    clusters: tuple[_Cluster, ...],
) -> tuple[set[int], bool]:
    """Walk the handlers ``exc`` meets from ``frame`` (at byte offset ``lasti``,
    default its current instruction) outwards, as plain Python would unwind,
    until one of them catches it. Returns the ids of the clusters passed before
    that point and whether something catches it. Mirrors
    :func:`resurrect.engine.will_be_caught` (framework boundary included)."""
    ids = {id(c): c for c in clusters}
    by_frame: dict[int, list[_Cluster]] = {}
    for c in clusters:
        if c.frame is not None:
            by_frame.setdefault(id(c.frame), []).append(c)
    passed: set[int] = set()
    seen_user = False
    while frame is not None:
        instrumented = _core.is_instrumented(frame.f_code)
        boundary = not instrumented and seen_user and engine.config.boundary
        try:
            steps = _core.handler_chain(frame, exc, lasti)
        except Exception:
            return passed, True  # cannot analyse: never override the program
        here = by_frame.get(id(frame))
        if here:
            owners = {id(getattr(d, "__self__", None)) for k, d in steps if k == "with"}
            for c in here:
                if id(c) not in owners:
                    # Entered without a `with` of its own in this frame: the
                    # frame's handlers count as outside it.
                    passed.add(id(c))
        for kind, detail in steps:
            if kind == "except":
                if detail is None:
                    return passed, True
                if detail:
                    if boundary and engine._catch_all(frame, lasti):
                        return passed, False
                    return passed, True
            elif kind == "with":
                owner = getattr(detail, "__self__", None)
                if owner is not None and id(owner) in ids:
                    passed.add(id(owner))
                    if ids[id(owner)]._catches(exc):
                        return passed, True
                elif detail is not None and engine.suppresses(detail, exc):
                    return passed, True
            elif kind == "except*":
                return passed, True
        seen_user = seen_user or instrumented
        if _core.entered_from_c(frame) and isinstance(
            exc, AttributeError | StopIteration | StopAsyncIteration
        ):
            return passed, True  # hasattr(), getattr(default), iteration protocols
        frame = frame.f_back
        lasti = None
    return passed, False


# ---------------------------------------------------------------------------
# The implicit signal: an exception at a resume point


def _signal_handlers(failure: Failure) -> Decision | None:
    """``engine.signal_handlers``: run the handler stack for an exception stopped
    at a resume point. Returns the decision of a statement restart invoked by a
    handler, ``PROPAGATE`` when the exception must unwind as plain Python (to a
    ``handler_case``, an ``except`` inside a cluster, a restart), or ``None``
    when every cluster declined."""
    exc = failure.exception
    if _control(exc):
        return _PROPAGATE
    m = _marks(exc, create=False)
    if m is not None and (m.aborted or m.decided):
        return _PROPAGATE
    _state.last_failure = weakref.ref(failure)
    clusters = _handler_stack.get()
    if not clusters:
        return None
    if m is not None and all(c in m.consulted for c in clusters):
        return None
    passed, caught = _walk(exc, failure.frame, failure.statement.rp.start, clusters)
    token = _active.set(_Signal(exc, failure, failure.frame))
    try:
        for i, c in enumerate(clusters):
            if m is not None and c in m.consulted:
                continue
            if caught and id(c) not in passed:
                return _PROPAGATE  # an `except` inside this cluster catches it
            d = c._on_failure(failure, clusters[i + 1 :])
            if d is not None:
                if d.action is not Action.PROPAGATE:
                    _forget(exc)
                return d
            m = _marks(exc, create=False)
    except _StatementRestart as r:
        if r.failure is failure:
            if r.decision.action is not Action.PROPAGATE:
                _forget(exc)
            return r.decision
        raise
    except BaseException:
        # A restart of a restart_case or of an outer frame: the exception is
        # abandoned.
        _forget(exc)
        raise
    finally:
        _active.reset(token)
    return None


engine.signal_handlers = _signal_handlers


# ---------------------------------------------------------------------------
# Explicit signals


def _as_condition(condition: Any, default: type[BaseException]) -> BaseException:
    if isinstance(condition, BaseException):
        return condition
    if isinstance(condition, type) and issubclass(condition, BaseException):
        return condition()
    if isinstance(condition, str):
        return default(condition)
    raise TypeError(
        f"a condition is an exception (instance or class) or a message string, not {condition!r}"
    )


def _run_signal(condition: BaseException, origin: types.FrameType, raising: bool) -> bool:
    """Run the handler stack for an explicitly signalled condition. With
    ``raising`` (``error``), an ``except``, ``handler_case`` or skip region that
    the raised condition would reach stops the walk. Returns whether something
    will catch the condition once raised."""
    clusters = _handler_stack.get()
    passed: set[int] = set()
    caught = False
    if raising:
        passed, caught = _walk(condition, origin, None, clusters)
    token = _active.set(_Signal(condition, None, origin))
    try:
        for i, c in enumerate(clusters):
            if raising:
                if caught and id(c) not in passed:
                    return True
                if c._takes_raise(condition):
                    return True
                if isinstance(c, HandlerCase):
                    continue
            c._on_signal(condition, clusters[i + 1 :])
    except BaseException as e:
        if e is not condition:  # not `abort`, whose mark must stay
            _forget(condition)
        raise
    finally:
        _active.reset(token)
    return caught


def signal(condition: Any, *, cause: BaseException | None = None) -> None:
    """Signal ``condition`` (an exception instance or class): the handlers of
    :func:`handler_bind` run, innermost first, and may invoke a restart; a
    matching :func:`handler_case` unwinds to its block. If all decline,
    ``signal`` returns ``None`` (Common Lisp ``SIGNAL``). Python ``except``
    clauses do not take part: nothing is raised."""
    condition = _as_condition(condition, RuntimeError)
    if cause is not None:
        condition.__cause__ = cause
    _run_signal(condition, sys._getframe(1), raising=False)


def _innermost_instrumented(origin: types.FrameType | None) -> types.FrameType | None:
    hook_code = engine._hook.__code__
    f = origin
    while f is not None:
        if f.f_code is hook_code:
            return None  # inside the engine's decision: no policy
        if _core.is_instrumented(f.f_code):
            return f
        f = f.f_back
    return None


def _error(condition: BaseException, origin: types.FrameType) -> NoReturn:
    if not _run_signal(condition, origin, raising=True):
        _policy(condition, origin)
    raise condition


def _policy(condition: BaseException, origin: types.FrameType) -> None:
    """Nothing handles the condition ``error`` is about to raise: let the
    program's policy (``--on-error``: the prompt, a checkpoint, skip, raise)
    decide now, while the restarts established around the signal are still in
    force. Returns when the decision is to raise."""
    frame = _innermost_instrumented(origin)
    m = _marks(condition)
    if frame is None or getattr(engine._tls, "busy", False):
        return
    rp = _core.resume_point_at(frame.f_code, frame.f_lasti)
    if rp is None:
        return
    failure = Failure(
        condition, frame, engine.statement(frame.f_code, rp.index), threading.current_thread()
    )
    engine._tls.busy = True
    try:
        decision = engine.decide(failure)
    finally:
        engine._tls.busy = False
    if m is not None:
        m.decided = True
    if decision.action is Action.PROPAGATE:
        return
    raise engine.UnwindTo(frame, decision)


def error(condition: Any, *, cause: BaseException | None = None) -> NoReturn:
    """Signal ``condition`` and, if no handler transfers control, raise it
    (Common Lisp ``ERROR``). Before raising, when no ``except`` would catch it,
    the program's ``--on-error`` policy decides (the prompt lists the restarts
    still in force). A string becomes a ``RuntimeError``."""
    condition = _as_condition(condition, RuntimeError)
    if cause is not None:
        condition.__cause__ = cause
    _error(condition, sys._getframe(1))


def cerror(
    condition: Any,
    continue_message: str = "continue, ignoring the error",
    *,
    cause: BaseException | None = None,
) -> None:
    """Like :func:`error`, with a ``continue`` restart in force: a handler that
    invokes it (:func:`continue_`) makes ``cerror`` return ``None`` (Common
    Lisp ``CERROR``). ``continue_message`` describes the restart."""
    condition = _as_condition(condition, RuntimeError)
    if cause is not None:
        condition.__cause__ = cause
    origin = sys._getframe(1)
    with RestartCase(**{"continue": (_nothing, continue_message)}):
        _error(condition, origin)


def _nothing() -> None:
    return None


def warn(condition: Any, *, cause: BaseException | None = None) -> None:
    """Signal ``condition`` with a ``muffle_warning`` restart in force; unless a
    handler invokes it (:func:`muffle_warning`) or another restart, emit it
    through the :mod:`warnings` machinery (Common Lisp ``WARN``). A string or a
    non-``Warning`` exception becomes a ``UserWarning`` with its text."""
    condition = _as_condition(condition, UserWarning)
    if cause is not None:
        condition.__cause__ = cause
    origin = sys._getframe(1)
    case = RestartCase(muffle_warning=(_nothing, "do not emit this warning"))
    with case:
        _run_signal(condition, origin, raising=False)
    if case.invoked:
        return
    if isinstance(condition, Warning):
        warnings.warn(condition, stacklevel=2)
    else:
        warnings.warn(str(condition) or type(condition).__name__, UserWarning, stacklevel=2)


del annotations
