"""Frame states: what a checkpoint holds of each frame on the stack, how they
are read from the live stack, and how a new process rebuilds them.

**Taking.** The stack is read from the frame that stopped (at a statement
start, or at the statement of a failure) out to ``__main__``'s module frame.
Every frame on the way must have resume points and be called by the one
below it directly from Python (not from C code such as ``map``, ``sorted`` or
``type.__call__``). Each outer frame is suspended in a call of one of its
statements: what the statement computed before that call (the values below
the call's operands on the frame's value stack, ``_core.call_site``) is saved
with the frame, so nothing of the statement runs twice. Otherwise the stack
is refused (:class:`StackRefused`): a checkpoint requested by a signal or
timer then waits for the next statement boundary where it is not.

Per frame: its code (by name, see :mod:`.checkpoint_source`), the function
object running it, the resume point, the locals (cell variables as the cell
objects, so closures keep sharing them), and the base slots of the statement:
loop iterators, bound ``__exit__`` methods of open ``with`` blocks, and for
``except`` bodies the exception being handled.

**Rebuilding** (a new process rebuilds the frames outermost first). For
every frame a continuation is built from the *current* code at the mapped
statement. The innermost frame's continuation starts at its statement
(``_core.continuation``); an outer frame's re-enters its statement *at the
call* (``_core.call_continuation``): the prologue pushes the saved values
below the call, then an *entry* function (:func:`_entry`) as the callable
with placeholder arguments, and jumps to the call instruction. The entry
function calls the next frame's function with arguments that fit its
signature (the restored locals overwrite them). The module's continuation
runs with ``exec``. Before it starts, the function of frame 1 gets the
continuation of frame 1 as its ``__code__``; a profile hook
(``sys.setprofile``) sees the continuation's ``call`` event, puts the
function's real code back at once (later calls, recursion included, run
normal code) and arms frame 2's function the same way, and so on; after the
innermost frame is entered the hook is removed. The entry functions' frames
stay on the stack between the rebuilt frames; :func:`walk_stack` passes over
them, so the resumed program can be checkpointed again.
"""

from __future__ import annotations

import ast
import ctypes
import dataclasses
import os
import sys
import threading
import types
from typing import Any

from . import _core
from . import checkpoint_source as _source
from .checkpoint_format import CheckpointError

_V = sys.version_info[:2]

# Offsets in CPython's private frame structs (3.11-3.13, Include/internal/
# pycore_frame.h), the same the core reads in crates/core/src/frames.rs:
# PyFrameObject: PyObject_HEAD; f_back; f_frame  -> f_frame at 24.
_F_FRAME = 24
# _PyInterpreterFrame, 3.11: f_func, f_globals, f_builtins, f_locals, f_code, ...
# 3.12/3.13: f_code/f_executable, previous, f_funcobj, ...; localsplus at 72.
_CODE_AT = 32 if _V == (3, 11) else 0
_FUNC_AT = 0 if _V == (3, 11) else 16
_LOCALSPLUS_AT = 72

_GENERATOR_FLAGS = 0x20 | 0x80 | 0x100 | 0x200
_COMPREHENSIONS = ("<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>")


class StackRefused(CheckpointError):
    """The stack cannot be checkpointed at this moment; the message says why."""


def _on_this_stack(frame: types.FrameType) -> bool:
    f: types.FrameType | None = sys._getframe()
    while f is not None:
        if f is frame:
            return True
        f = f.f_back
    return False


def _interp(frame: types.FrameType) -> int:
    """The address of a live frame's interpreter frame, checked (its code
    pointer must be the frame's own code)."""
    if not _on_this_stack(frame):
        raise StackRefused("a frame to save is not on this thread's stack")
    addr = ctypes.c_void_p.from_address(id(frame) + _F_FRAME).value
    if not addr or ctypes.c_void_p.from_address(addr + _CODE_AT).value != id(frame.f_code):
        raise StackRefused(f"the frame of {frame.f_code.co_qualname} cannot be read")
    return addr


def _object_at(addr: int) -> Any:
    p = ctypes.c_void_p.from_address(addr).value
    if not p:
        return _UNBOUND
    return ctypes.cast(p, ctypes.py_object).value


class _Unbound:
    def __repr__(self) -> str:
        return "<unbound>"


_UNBOUND = _Unbound()


def frame_function(frame: types.FrameType) -> types.FunctionType | None:
    """The function object a live frame runs."""
    fn = _object_at(_interp(frame) + _FUNC_AT)
    if isinstance(fn, types.FunctionType) and fn.__code__ is frame.f_code:
        return fn
    if isinstance(fn, types.FunctionType):
        return fn  # its __code__ was swapped (a continuation being entered)
    return None


def localsplus_names(code: types.CodeType) -> list[str]:
    return (
        list(code.co_varnames)
        + [c for c in code.co_cellvars if c not in code.co_varnames]
        + list(code.co_freevars)
    )


def _n_own(code: types.CodeType) -> int:
    """Number of locals-plus slots before the free variables."""
    return len(code.co_varnames) + len([c for c in code.co_cellvars if c not in code.co_varnames])


def frame_locals(frame: types.FrameType) -> tuple[dict[str, Any], dict[str, types.CellType]]:
    """``(plain locals, cell variables)`` of a live frame; free variables are
    left out (they come back with the function's closure)."""
    code = frame.f_code
    base = _interp(frame) + _LOCALSPLUS_AT
    cells = set(code.co_cellvars)
    plain: dict[str, Any] = {}
    cell_objs: dict[str, types.CellType] = {}
    for i, name in enumerate(localsplus_names(code)[: _n_own(code)]):
        value = _object_at(base + 8 * i)
        if value is _UNBOUND:
            continue
        if name in cells and isinstance(value, types.CellType):
            cell_objs[name] = value
        else:
            plain[name] = value
    return plain, cell_objs


# ---------------------------------------------------------------------------
# Frame states


@dataclasses.dataclass
class CallSite:
    """Where an outer frame is suspended: call number ``ordinal`` of its
    statement (``opname``, ``oparg``), with ``stack``, the values the
    statement computed below the call (``("value", v)`` or ``("null", None)``)."""

    ordinal: int
    opname: str
    oparg: int
    stack: list[tuple[str, Any]]


@dataclasses.dataclass
class FrameState:
    """One frame of a checkpoint."""

    code: _source.CodeRef
    function: types.FunctionType | None
    rp_index: int
    rp_kind: str
    rp_line: int
    base_kinds: list[str]
    locals: dict[str, Any]
    cells: dict[str, types.CellType]
    base: list[Any]
    #: For messages: "process() at job.py:12" and the statement's text.
    where: str
    text: str
    #: Outer frames (and the caller of ``resurrect.checkpoint()``): the call in progress.
    call: CallSite | None = None


@dataclasses.dataclass
class LiveFrame:
    """A frame of the live stack and the resume point it is saved at."""

    frame: types.FrameType
    rp: Any
    code: types.CodeType  # the code it continues (its own code unless a continuation)
    shift: int  # prologue size of a continuation, in bytes
    call: CallSite | None = None

    @property
    def where(self) -> str:
        name = self.code.co_qualname if self.code.co_name != "<module>" else "<module>"
        return f"{name}() at {os.path.basename(self.code.co_filename)}:{self.rp.line}"


def is_main_frame(frame: types.FrameType) -> bool:
    main = sys.modules.get("__main__")
    return (
        main is not None
        and frame.f_globals is getattr(main, "__dict__", None)
        and frame.f_code.co_name == "<module>"
    )


# The entry function's frames sit between rebuilt frames (see the docstring).


ENTRY_NAME = "__resurrect_enter__"
#: What entry functions' frames show (tracebacks of the program leave them out).
ENTRY_FILE = "<resurrect: resumed call>"
ENTRY_MODULE = "resurrect._entry"
_entry_makers: dict[tuple[int, tuple[str, ...]], Any] = {}


def _entry(fn: Any, args: tuple, kwargs: dict) -> types.FunctionType:
    """A function that ignores the placeholder arguments it is called with
    and calls ``fn(*args, **kwargs)`` (``fn``: a callable, or ``_RETURN`` to
    return ``args[0]``). The call is spelled out (``fn(a0, a1, k=k)``), not
    ``fn(*args)``: 3.11 and 3.12 make a ``*args`` call through C, and a
    frame entered from C cannot be checkpointed again."""
    if fn is _RETURN:
        value = args[0]

        def __resurrect_enter__(*_placeholders: Any, **_keywords: Any) -> Any:
            return value

        return __resurrect_enter__
    key = (len(args), tuple(kwargs))
    make = _entry_makers.get(key)
    if make is None:
        names = [f"a{i}" for i in range(len(args))] + [f"k{i}" for i in range(len(kwargs))]
        passed = names[: len(args)] + [f"{kw}=k{i}" for i, kw in enumerate(kwargs)]
        unpack = f"    {', '.join(names)}, = values\n" if names else ""
        source = (
            "def make(fn, values):\n"
            + unpack
            + f"    def {ENTRY_NAME}(*_placeholders, **_keywords):\n"
            + f"        return fn({', '.join(passed)})\n"
            + f"    return {ENTRY_NAME}\n"
        )
        namespace: dict[str, Any] = {"__name__": ENTRY_MODULE}
        exec(compile(source, ENTRY_FILE, "exec"), namespace)
        make = _entry_makers[key] = namespace["make"]
    return make(fn, (*args, *kwargs.values()))


def is_entry(code: types.CodeType) -> bool:
    """Whether ``code`` is an entry function's (see :func:`_entry`)."""
    return code.co_name == ENTRY_NAME and code.co_filename in (ENTRY_FILE, __file__)


_RETURN = object()


def call_arguments(fn: types.FunctionType, fs: FrameState) -> tuple[tuple, dict]:
    """Arguments that bind ``fn``'s parameters (the saved values where there
    are any: the continuation stores the saved locals over them anyway)."""
    code = fn.__code__
    names = code.co_varnames
    n_pos = code.co_argcount
    n_kw = code.co_kwonlyargcount

    def value(name: str) -> Any:
        if name in fs.locals:
            return fs.locals[name]
        cell = fs.cells.get(name)
        try:
            return cell.cell_contents if cell is not None else None
        except ValueError:
            return None

    args = tuple(value(n) for n in names[:n_pos])
    kwargs = {n: value(n) for n in names[n_pos : n_pos + n_kw]}
    return args, kwargs


def call_operands(site: CallSite, callable_: Any) -> list[tuple[str, Any]]:
    """The operands of the call ``site`` re-entered with ``callable_`` and
    placeholder arguments, bottom first, in this version's layout: before
    3.13 ``NULL, callable, args``; 3.13 ``callable, NULL, args`` (and
    ``CALL_KW``'s names, empty here: every argument positional)."""
    null = ("null", None)
    fn = ("value", callable_)
    head = [fn, null] if _V >= (3, 13) else [null, fn]
    if site.opname == "CALL_FUNCTION_EX":
        return head + [("value", ())] + ([("value", {})] if site.oparg & 1 else [])
    args = [("value", None)] * site.oparg
    if site.opname == "CALL_KW":
        return head + args + [("value", ())]
    return head + args


def walk_stack(frame: types.FrameType, rp: Any | None) -> list[LiveFrame]:
    """The frames to save, outermost (``__main__``) first, with ``frame``
    stopped at ``rp`` (``None``: ``frame`` is in a call, to resurrect itself,
    saved at that call like outer frames); raises :class:`StackRefused`
    when they cannot be saved now."""
    out: list[LiveFrame] = []
    f: types.FrameType | None = frame
    child: types.FrameType | None = None  # the frame `f` called (entry frames included)
    while f is not None:
        code = f.f_code
        if is_entry(code):
            # Between two frames rebuilt by `resume`: the entry function called
            # the inner one (see the module's docstring).
            if child is not None and _core.entered_from_c(child):
                raise StackRefused("a resumed frame was called from C code")
            child = f
            f = f.f_back
            continue
        origin, shift = _source.origin(code)
        name = "<module>" if code.co_name == "<module>" else f"{code.co_qualname}()"
        if code.co_name in _COMPREHENSIONS:
            raise StackRefused(
                f"{name} at line {f.f_lineno} is a comprehension; it cannot be resumed"
            )
        if code.co_flags & _GENERATOR_FLAGS:
            raise StackRefused(
                f"{name} at line {f.f_lineno} is a generator or coroutine; its frame cannot be saved"
            )
        if not _core.is_instrumented(code):
            where = f"{os.path.basename(code.co_filename)}:{f.f_lineno}"
            raise StackRefused(
                f"{name} ({where}) has no resume points (its file is not instrumented)"
            )
        site = None
        if child is None and rp is not None:
            r = rp
        else:
            if child is not None and _core.entered_from_c(child):
                raise StackRefused(
                    f"{child.f_code.co_qualname}() was called by C code (as by map(), sorted() or a class "
                    f"instantiation) from {name} at line {f.f_lineno}; that call cannot be re-entered"
                )
            r = _core.resume_point_at(code, f.f_lasti)
            if r is None:
                raise StackRefused(f"the call in {name} at line {f.f_lineno} has no resume point")
            found = _core.call_site(f, child)
            if found is None or found[0] != r.start:
                raise StackRefused(
                    f"{name} at line {f.f_lineno} is not in a call of its statement that can be "
                    "re-entered"
                )
            _, ordinal, opname, oparg, stack = found
            site = CallSite(ordinal, opname, oparg, list(stack))
        if r is None or r.line is None:
            raise StackRefused(f"{name} at line {f.f_lineno} is not at a statement")
        out.append(LiveFrame(f, r, origin, shift, site))
        if is_main_frame(f):
            out.reverse()
            return out
        child = f
        f = f.f_back
    raise StackRefused("the program's __main__ module is not on this stack")


def other_threads() -> list[str]:
    me = threading.current_thread()
    main = threading.main_thread()
    return [
        t.name
        for t in threading.enumerate()
        if t is not me and t is not main and t.is_alive() and not t.name.startswith("resurrect-")
    ]


def capture(
    live: list[LiveFrame], handled: BaseException | None, index: _source.SourceIndex
) -> list[FrameState]:
    """Frame states of ``live`` (outermost first). ``handled`` is the
    exception being handled where the innermost frame stopped (the innermost
    ``except`` body's), from which the ``except`` slots get their exceptions."""
    states: list[FrameState] = []
    exc_slots: list[tuple[int, int]] = []
    for lf in live:
        f, r = lf.frame, lf.rp
        slots = _core.frame_stack(f, r.start)
        if slots is None or [k for k, _ in slots] != list(r.base):
            raise StackRefused(f"the blocks around {lf.where} cannot be read")
        ref = index.ref(lf.code)
        assert ref is not None
        if f.f_code.co_name == "<module>":
            plain: dict[str, Any] = {}
            cells: dict[str, types.CellType] = {}
            fn = None
        else:
            plain, cells = frame_locals(f)
            fn = frame_function(f)
            if fn is None:
                raise StackRefused(f"the function running {lf.where} cannot be found")
        origin_rps = _core.resume_points(lf.code)
        index_in_origin = r.index
        if lf.shift:
            starts = {p.start: p.index for p in origin_rps}
            index_in_origin = starts.get(r.start - lf.shift, r.index)
        text = _statement_text(lf.code.co_filename, r.line, index)
        base_values = [v for _, v in slots]
        for j, (kind, _) in enumerate(slots):
            if kind == "exc_info":
                exc_slots.append((len(states), j))
        states.append(
            FrameState(
                code=ref,
                function=fn,
                rp_index=index_in_origin,
                rp_kind=r.kind,
                rp_line=r.line,
                base_kinds=list(r.base),
                locals=plain,
                cells=cells,
                base=base_values,
                where=lf.where,
                text=text,
                call=lf.call,
            )
        )
    # An `except` slot holds the exception state from before its handler; the
    # handler's own exception is the next slot's, or for the innermost one
    # the exception being handled where the program stopped.
    for n, (si, sj) in enumerate(exc_slots):
        if n + 1 < len(exc_slots):
            ni, nj = exc_slots[n + 1]
            value = states[ni].base[nj]
        else:
            value = handled
        states[si].base[sj] = value
    return states


def _statement_text(filename: str, line: int, index: _source.SourceIndex) -> str:
    try:
        lines = index.tree(filename).text.splitlines()
    except CheckpointError:
        return ""
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def pickle_items(states: list[FrameState]):
    """``(label, expression, value)`` for everything a frame state holds, for
    naming what cannot be saved."""
    for fs in states:
        for name, value in fs.locals.items():
            yield f"variable `{name}` of {fs.where}", name, value
        for name, cell in fs.cells.items():
            try:
                yield f"variable `{name}` of {fs.where}", name, cell.cell_contents
            except ValueError:
                pass
        for kind, value in zip(fs.base_kinds, fs.base, strict=True):
            what = {
                "iter": "the iterator of a `for` loop",
                "with_exit": "the context manager of a `with` block",
                "exc_info": "the exception handled by an `except` block",
            }.get(kind, kind)
            yield f"{what} around {fs.where}", "…", value
        if fs.call is not None:
            for kind, value in fs.call.stack:
                if kind == "value":
                    yield (
                        f"a value computed before the call in `{fs.text}` ({fs.where})",
                        "…",
                        value,
                    )
        if fs.function is not None:
            yield f"the function of {fs.where}", fs.function.__qualname__, fs.function


# ---------------------------------------------------------------------------
# Rebuilding


@dataclasses.dataclass
class Level:
    """One rebuilt frame: its continuation and, except for the module, the
    function whose call enters it."""

    state: FrameState
    code: types.CodeType  # the current code
    continuation: types.CodeType
    function: types.FunctionType | None
    rp: Any


def map_statement(
    fs: FrameState, code: types.CodeType, resolver: _source.Resolver, innermost: bool
) -> Any:
    """The resume point of the current ``code`` where frame state ``fs`` continues."""
    ref = fs.code
    rps = _core.resume_points(code)
    if not resolver.changed(ref.file):
        if fs.rp_index < len(rps):
            rp = rps[fs.rp_index]
            if rp.line == fs.rp_line and rp.kind == fs.rp_kind and list(rp.base) == fs.base_kinds:
                return rp
        raise CheckpointError(f"the statement of {fs.where} cannot be found again")
    old_tree = resolver.old_tree(ref.file)
    new_tree = resolver.new_tree(ref.file)
    old_code = old_tree.by_path.get(ref.path)
    old_scope = resolver.old_def(ref)
    new_scope = resolver.new_def(ref, code)
    if old_code is None or old_scope is None or new_scope is None:
        raise CheckpointError(f"{fs.where}: its function cannot be found in the edited source")
    old_rps = _core.resume_points(old_code)
    if fs.rp_index >= len(old_rps):
        raise CheckpointError(f"{fs.where}: the checkpoint does not match its saved source")
    old_rp = old_rps[fs.rp_index]
    loop = fs.rp_kind == "loop"
    old_steps = _source.owner_path(old_scope, old_rp.line, loop)
    where = f"line {fs.rp_line} of {ref.file} (`{fs.text}`)"
    if old_steps is None:
        raise CheckpointError(f"{where}: its statement cannot be found in the saved source")
    new_steps = _source.follow(new_scope, old_steps, old_scope)
    if new_steps is None:
        raise CheckpointError(f"{where}: the edited {ref.qualname} has no statement in its place")
    for (_, _, o), (_, _, n) in zip(old_steps[:-1], new_steps[:-1], strict=True):
        if type(o) is not type(n) or _source.header(o) != _source.header(n):
            raise CheckpointError(
                f"{where}: the block around it changed "
                f"(`{_source.text_of(old_tree, o)}` -> `{_source.text_of(new_tree, n)}`): "
                "its loop iterators, open `with` blocks and handled exceptions would not match"
            )
    o, n = old_steps[-1][2], new_steps[-1][2]
    block = any(isinstance(getattr(o, f, None), list) for f in ("body", "handlers", "cases"))
    same = type(o) is type(n) and (
        _source.header(o) == _source.header(n) if block else _source._dump(o) == _source._dump(n)
    )
    if not same and (not innermost or loop):
        raise CheckpointError(
            f"{where} changed (now `{_source.text_of(new_tree, n)}`): "
            + (
                "the loop it continues is not the same loop"
                if loop
                else "it is the call that re-enters the next frame"
            )
        )
    key_old = (tuple((f, i) for f, i, _ in old_steps), fs.rp_kind)
    key_new = (tuple((f, i) for f, i, _ in new_steps), fs.rp_kind)
    old_group = _source.owned_points(old_code, old_scope).get(key_old, [])
    ordinal = (
        next((k for k, p in enumerate(old_group) if p.start == old_rp.start), 0) if same else 0
    )
    new_group = _source.owned_points(code, new_scope).get(key_new, [])
    if ordinal >= len(new_group):
        raise CheckpointError(f"{where}: the edited statement has no resume point to continue at")
    rp = new_group[ordinal]
    if list(rp.base) != fs.base_kinds:
        raise CheckpointError(
            f"{where}: the blocks around the edited statement do not match the saved ones"
        )
    if not same:
        resolver.notes.append(
            f"{ref.file}:{rp.line}: the edited statement `{_source.text_of(new_tree, n)}` runs in place of `{fs.text}`"
        )
    return rp


def _restores(fs: FrameState, code: types.CodeType) -> list[tuple[int, bool, Any]]:
    names = localsplus_names(code)
    n_local_cells = _n_own(code)
    cells = set(code.co_cellvars)
    out = []
    for name, value in fs.locals.items():
        if name not in names or names.index(name) >= n_local_cells:
            continue
        out.append((names.index(name), name in cells, value))
    for name, cell in fs.cells.items():
        if name not in names or names.index(name) >= n_local_cells:
            continue
        if name in cells:
            # The cell itself: closures made before the checkpoint share it.
            out.append((names.index(name), False, cell))
        else:
            try:
                out.append((names.index(name), False, cell.cell_contents))
            except ValueError:
                pass
    return out


def _check_base(fs: FrameState, rp: Any) -> list[tuple[str, Any]]:
    pairs = list(zip(fs.base_kinds, fs.base, strict=True))
    for kind, value in pairs:
        if kind == "iter" and not hasattr(type(value), "__next__"):
            raise CheckpointError(
                f"{fs.where}: the saved loop iterator is a {type(value).__name__}"
            )
        if kind == "with_exit" and not callable(value):
            raise CheckpointError(f"{fs.where}: the saved `with` block has no __exit__")
        if kind not in ("iter", "with_exit", "exc_info"):
            raise CheckpointError(f"{fs.where}: a block of kind {kind} cannot be restored")
    return pairs


def build(
    states: list[FrameState],
    main_code: types.CodeType,
    resolver: _source.Resolver,
    skip: bool,
    returns: Any = None,
) -> list[Level]:
    """Continuations for every frame state (outermost first); all checks are
    made here, before anything of the program runs. ``returns``: what the
    innermost frame's call returns when it was saved at a call (the caller
    of ``resurrect.checkpoint()``: the checkpoint's path)."""
    levels: list[Level] = []
    for i, fs in enumerate(states):
        innermost = i == len(states) - 1
        if i == 0:
            code = main_code
            fn = None
        else:
            fn = fs.function
            if not isinstance(fn, types.FunctionType):
                raise CheckpointError(f"{fs.where}: its function was not saved")
            code = fn.__code__
            if code.co_flags & _GENERATOR_FLAGS:
                raise CheckpointError(f"{fs.where}: the edited function is a generator now")
        rp = map_statement(fs, code, resolver, innermost)
        levels.append(Level(fs, code, code, fn, rp))
    for i, lvl in enumerate(levels):
        fs, code, rp = lvl.state, lvl.code, lvl.rp
        innermost = i == len(levels) - 1
        base = _check_base(fs, rp)
        restores = _restores(fs, code)
        if innermost and skip:
            if rp.skip_to is None:
                raise CheckpointError(
                    f"--skip: {fs.where}: this statement has no single next statement"
                )
            nxt = [p for p in _core.resume_points(code) if p.start == rp.skip_to]
            if not nxt or list(nxt[0].base) != list(rp.base):
                raise CheckpointError(
                    f"--skip: {fs.where}: the statement after it has no resume point"
                )
            cont = _core.continuation(code, rp.skip_to, restores, base)
        elif fs.call is None:
            if not innermost:
                raise CheckpointError(f"{fs.where}: the call in progress was not saved")
            cont = _core.continuation(code, rp.start, restores, base)
        else:
            if innermost:
                entry = _entry(_RETURN, (returns,), {})
            else:
                inner = levels[i + 1]
                assert inner.function is not None
                args, kwargs = call_arguments(inner.function, inner.state)
                entry = _entry(inner.function, args, kwargs)
            stack = list(fs.call.stack) + call_operands(fs.call, entry)
            try:
                cont = _core.call_continuation(
                    code, rp.start, fs.call.ordinal, restores, base, stack
                )
            except _core.BytecodeError as e:
                raise CheckpointError(
                    f"{fs.where}: the call in `{fs.text}` cannot be re-entered in the current code: {e}"
                ) from None
        _source.continuations[id(cont)] = (cont, code, len(cont.co_code) - len(code.co_code))
        lvl.continuation = cont
    return levels


class Reentry:
    """The profile hook that leads each retried call statement into the next
    frame's continuation (see the module's docstring)."""

    def __init__(self, levels: list[Level]):
        self.levels = levels
        self.next = 1  # the level whose function is armed
        self.parent: types.FrameType | None = None
        self.previous = None
        self.done = threading.Event()
        self.failed: str | None = None

    def start(self) -> None:
        if len(self.levels) <= 1:
            self.done.set()
            return
        self.previous = sys.getprofile()
        self._arm(1)
        sys.setprofile(self._profile)

    def _arm(self, i: int) -> None:
        self.next = i
        lvl = self.levels[i]
        assert lvl.function is not None
        lvl.function.__code__ = lvl.continuation

    def _disarm(self) -> None:
        lvl = self.levels[self.next]
        if lvl.function is not None and lvl.function.__code__ is lvl.continuation:
            lvl.function.__code__ = lvl.code

    def _finish(self) -> None:
        sys.setprofile(self.previous)
        self.done.set()

    def _profile(self, frame, event, arg):
        if event == "call":
            lvl = self.levels[self.next]
            if frame.f_code is lvl.continuation:
                self._disarm()
                if self.next + 1 < len(self.levels):
                    self.parent = frame
                    self._arm(self.next + 1)
                else:
                    self._finish()
            elif self.parent is None and frame.f_code is self.levels[0].continuation:
                self.parent = frame
        elif event in ("return",) and frame is self.parent:
            lvl = self.levels[self.next]
            self._disarm()
            self.failed = (
                f"resurrect: {self.levels[self.next - 1].state.where} ended without calling "
                f"{lvl.code.co_qualname}() again: the frames inside it were not resumed"
            )
            sys.stderr.write(self.failed + "\n")
            self._finish()

    def abort(self) -> None:
        if not self.done.is_set():
            self._disarm()
            self._finish()


def new_definitions(
    resolver: _source.Resolver, file: str, before_line: int
) -> tuple[list[ast.stmt], list[str]]:
    """Top-level ``def``/``class``/``import`` statements of the edited
    ``__main__`` that are new and come before the line it resumes at (they are
    run before resuming), and notes on other edited statements there (which
    already ran and are not run again)."""
    if not resolver.changed(file):
        return [], []
    old = resolver.old_tree(file).ast
    new = resolver.new_tree(file).ast
    old_dumps = {_source._dump(s) for s in old.body}
    old_names = {
        s.name
        for s in old.body
        if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    run: list[ast.stmt] = []
    notes: list[str] = []
    for s in new.body:
        if s.lineno >= before_line:
            break
        if _source._dump(s) in old_dumps:
            continue
        if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if s.name not in old_names:
                run.append(s)
        elif isinstance(s, ast.Import | ast.ImportFrom):
            run.append(s)
        else:
            notes.append(
                f"{file}:{s.lineno}: edited, but it ran before the checkpoint: not run again"
            )
    return run, notes
