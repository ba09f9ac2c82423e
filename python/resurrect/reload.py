"""Edit and continue: reload edited source files into the running program.

:func:`reload` re-reads the source files that changed and patches the live
program in place:

* every function object whose code came from a changed file gets the new
  (instrumented) code by ``__code__`` replacement -- module functions, methods,
  ``staticmethod``/``classmethod``/``property`` functions, decorated functions
  (the function inside the decorator's wrapper), nested functions and closures
  still alive, functions other modules imported with ``from x import f`` (the
  same object). They are found by one pass over the garbage collector's
  objects, so existing instances, bound methods and references see the new
  code, and classes stay the same objects (``isinstance`` keeps working);
* functions, classes, class members, imports and constants that are new appear
  (their definitions run, in a scratch namespace first); definitions that were
  removed disappear; other module-level statements are not run again;
* nothing changes when the new source does not compile or a new definition
  raises: the error is reported with its file and line.

Frames running code from before the reload keep their state. The frame paused
at the prompt continues in the new code through :func:`continue_in_new_code`
(or a plain ``retry``/``skip``, which the engine hook below turns into one): its
statement is mapped across the edit by aligning the old and new function
bodies, and a continuation (``_core.continuation``) restores its locals, loop
iterators, open ``with`` blocks and handled exceptions at the mapped statement
of the new code; the old frame hands its stack over and returns what the
continuation returns. Outer frames keep running their old code until they
return (``up`` then ``retry`` switches one at its current statement).

:func:`watch` polls the source files from a background thread and reloads
them when they change.
"""

from __future__ import annotations

import ast
import collections
import copy
import dataclasses
import gc
import importlib.util
import linecache
import opcode
import os
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from . import _core, engine
from .engine import Action, Decision, RestartRefused

__all__ = [
    "FileReport",
    "FrameStatus",
    "ReloadError",
    "ReloadReport",
    "Watcher",
    "continue_in_new_code",
    "continued_code",
    "frame_status",
    "function_of",
    "install",
    "reload",
    "remember",
    "remembered_text",
    "source_lines",
    "stale_frames",
    "watch",
]

_CO_OPTIMIZED = 0x01
_CO_NEWLOCALS = 0x02
_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08
# CO_GENERATOR | CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR
_GENERATOR_FLAGS = 0x20 | 0x80 | 0x100 | 0x200
_FUTURE_FLAGS = 0
for _feature in ("annotations", "generator_stop", "barry_as_FLUFL"):
    import __future__

    _FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag

_lock = threading.RLock()

# ---------------------------------------------------------------------------
# Source texts


class _Source:
    """One version of a source file's text. Its syntax tree is parsed on demand
    and only the last few are kept (trees are large, and every object alive
    slows the search for function objects); an outline of its definitions is
    kept for comparing the next version with it."""

    def __init__(self, filename: str, text: str):
        self.filename = filename
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self._outline: _Outline | bool | None = False
        #: The outline of each top-level chunk of the text, by the chunk's text.
        self.chunk_outlines: dict[str, _Outline] | None = None
        #: Whether the running code is known to come from this text.
        self.verified = True
        #: (qualname, co_firstlineno) -> [(key, code)], from compiling the text:
        #: several code objects share a place (lambdas, comprehensions on one line).
        self._compiled: dict[tuple[str, int], list[tuple[tuple[str, int], types.CodeType]]] | None
        self._compiled = None
        #: id of a compiled code object -> its key.
        self._keys: dict[int, tuple[str, int]] = {}

    @property
    def tree(self) -> ast.Module | None:
        entry = _trees.get(id(self))
        if entry is not None and entry[0] is self:
            _trees.move_to_end(id(self))
            return entry[1]
        try:
            tree: ast.Module | None = ast.parse(self.text, self.filename)
        except (SyntaxError, ValueError):
            tree = None
        self.set_tree(tree)
        return tree

    def set_tree(self, tree: ast.Module | None) -> None:
        _trees[id(self)] = (self, tree)
        _trees.move_to_end(id(self))
        while len(_trees) > 3:
            _trees.popitem(last=False)

    @property
    def outline(self) -> _Outline | None:
        if self._outline is False:
            tree = self.tree
            self._outline = _Outline(tree.body, self.lines) if tree is not None else None
        return self._outline  # type: ignore[return-value]

    def compiled(
        self,
    ) -> dict[tuple[str, int], list[tuple[tuple[str, int], types.CodeType]]] | None:
        """The text's code objects with their keys, by (qualname, co_firstlineno)."""
        if self._compiled is None:
            try:
                code = compile(self.text, self.filename, "exec", dont_inherit=True)
            except (SyntaxError, ValueError):
                return None
            self._adopt(_index(code))
        return self._compiled

    def _adopt(self, index: dict[tuple[str, int], types.CodeType]) -> None:
        """Use ``index`` (the text compiled) instead of compiling it again."""
        self._compiled = {}
        self._keys = {}
        for key, c in index.items():
            self._compiled.setdefault((c.co_qualname, c.co_firstlineno), []).append((key, c))
            self._keys[id(c)] = key

    def forget(self) -> None:
        """Drop what can be computed again."""
        self._compiled = None
        self._keys = {}
        _trees.pop(id(self), None)

    def key_of(self, code: types.CodeType) -> tuple[str, int] | None:
        """The key of the code object compiled from this text that ``code``
        (instrumented or not) was made from, if it is one of them."""
        compiled = self.compiled()
        if compiled is None:
            return None
        for key, c in compiled.get((code.co_qualname, code.co_firstlineno), ()):
            if _same_plain(c, code, nested=False):
                return key
        return None

    def key_of_compiled(self, code: types.CodeType) -> tuple[str, int] | None:
        """The key of ``code``, one of the code objects compiled from this text
        (compared when this text was compiled again since)."""
        key = self._keys.get(id(code))
        return key if key is not None else self.key_of(code)


def _read(filename: str) -> str:
    with open(filename, "rb") as f:
        data = f.read()
    return importlib.util.decode_source(data)


def _stat(filename: str) -> tuple[int, int] | None:
    try:
        st = os.stat(filename)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


#: The last syntax trees parsed, by id of their source.
_trees: collections.OrderedDict[int, tuple[_Source, ast.Module | None]] = collections.OrderedDict()


class _Outline:
    """What the next reload compares a body (module or class) with: the text of
    its statements other than definitions, and its definitions' decorators,
    default values and (classes) bodies."""

    def __init__(self, body: list[ast.stmt], lines: list[str]):
        self.stmts = {_segment(lines, s) for s in body if not isinstance(s, _DEFS)}
        self.defs: dict[str, _DefOutline] = {
            s.name: _DefOutline(s, lines) for s in body if isinstance(s, _DEFS)
        }

    @classmethod
    def merge(cls, parts: list[_Outline]) -> _Outline:
        out = cls([], [])
        for p in parts:
            out.stmts |= p.stmts
            out.defs.update(p.defs)
        return out


class _DefOutline:
    def __init__(self, node: ast.AST, lines: list[str]):
        self.decorators = _decorators(node)
        args = getattr(node, "args", None)
        self.defaults = _defaults(args) if args is not None else None
        self.body = _Outline(node.body, lines) if isinstance(node, ast.ClassDef) else None


def _defaults(args: ast.arguments) -> list[str]:
    return [ast.dump(d) for d in args.defaults] + [
        ast.dump(d) if d else "" for d in args.kw_defaults
    ]


#: The text the running code of each file was compiled from, when known (a
#: snapshot taken when the module was loaded, or the text of the last reload).
_texts: dict[str, _Source] = {}


def remember(filename: str, source: str | bytes | None = None, *, verified: bool = True) -> None:
    """Record ``source`` (default: the file's text now) as the text the code of
    ``filename`` was compiled from. Importers call this when they load a module,
    so that a later reload knows what the running code looked like
    (``verified=False``: a copy taken later, checked against the code when
    used)."""
    try:
        if source is None:
            text = _read(filename)
        elif isinstance(source, bytes):
            text = importlib.util.decode_source(source)
        else:
            text = source
    except (OSError, SyntaxError, UnicodeDecodeError):
        return
    with _lock:
        if filename not in _reloaded:
            src = _Source(filename, text)
            src.verified = verified
            _texts[filename] = src


def _baseline(
    filename: str, codes: Iterable[types.CodeType], modules: Iterable[types.ModuleType] = ()
) -> _Source | None:
    """The text the running ``codes`` of ``filename`` were compiled from: the
    remembered one, else linecache's copy or the file itself when compiling it
    reproduces them and defines what the modules hold."""
    src = _texts.get(filename)
    if src is not None and src.verified:
        return src
    codes = list(codes)
    candidates: list[str] = [src.text] if src is not None else []
    cached = linecache.cache.get(filename)
    if cached and len(cached) == 4 and cached[2]:
        candidates.append("".join(cached[2]))
    try:
        candidates.append(_read(filename))
    except (OSError, SyntaxError, UnicodeDecodeError):
        pass
    modules = list(modules)
    for text in candidates:
        src = _Source(filename, text)
        if codes and not all(src.key_of(c) is not None for c in codes):
            continue
        tree = src.tree
        if tree is None:
            continue
        defined = {s.name for s in tree.body if isinstance(s, _DEFS)}
        if any(name not in vars(m) for m in modules for name in defined):
            continue  # defines something the module does not have: edited since
        src.verified = True
        _texts[filename] = src
        return src
    _texts.pop(filename, None)
    return None


# ---------------------------------------------------------------------------
# Which function a code object is


def _walk(code: types.CodeType) -> Iterable[types.CodeType]:
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _walk(c)


def _index(code: types.CodeType) -> dict[tuple[str, int], types.CodeType]:
    """The code objects of a module by key: (qualname, ordinal among the code
    objects of that qualname in the module, in compilation order)."""
    counts: dict[str, int] = {}
    out: dict[tuple[str, int], types.CodeType] = {}
    for c in _walk(code):
        q = c.co_qualname
        n = counts.get(q, 0)
        counts[q] = n + 1
        out[(q, n)] = c
    return out


@dataclasses.dataclass
class _Origin:
    code: types.CodeType  # keeps the id valid
    filename: str
    source: _Source | None
    key: tuple[str, int] | None
    #: For a continuation: the code it was built from.
    base: types.CodeType | None = None


#: Every code object of a reloaded file seen by a reload, by id.
_origins: dict[int, _Origin] = {}
#: Per reloaded file: the current code by key, and the ids of current code.
_current: dict[str, dict[tuple[str, int], types.CodeType]] = {}
_current_ids: dict[str, set[int]] = {}
#: Files reloaded at least once.
_reloaded: set[str] = set()
#: Reloaded files whose new code gets resume points.
_instrumented_files: set[str] = set()
#: The texts of each reloaded file, oldest first (the last two keep their trees).
_history: dict[str, list[_Source]] = {}
#: Functions whose code a reload replaced, by the id of the replaced code.
_patched_from: dict[int, list[weakref.ref]] = {}


def _origin(code: types.CodeType) -> _Origin | None:
    o = _origins.get(id(code))
    return o if o is not None and o.code is code else None


def _is_current(code: types.CodeType) -> bool:
    """Whether ``code`` is not older than the last reload of its file."""
    filename = code.co_filename
    if filename not in _reloaded:
        return True
    o = _origin(code)
    if o is not None and o.base is not None:
        code = o.base
    return id(code) in _current_ids.get(filename, ())


def _own_key(code: types.CodeType) -> tuple:
    """What a module or class body does itself (its definitions' code aside)."""
    consts = tuple(
        c.co_qualname if isinstance(c, types.CodeType) else (type(c), repr(c))
        for c in code.co_consts
    )
    return (code.co_code, code.co_names, code.co_varnames, code.co_exceptiontable, consts)


def _body_key(code: types.CodeType) -> tuple:
    """What a code object does, without where its lines are."""
    consts = tuple(
        _body_key(c) if isinstance(c, types.CodeType) else (type(c), repr(c))
        for c in code.co_consts
    )
    return (
        code.co_code,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_flags,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_exceptiontable,
        consts,
    )


# ---------------------------------------------------------------------------
# The syntax tree: definitions, statements, blocks

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_BLOCK_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")


def _blocks(node: ast.AST) -> list[tuple[str, list]]:
    """The statement lists of a compound statement (or module, except clause,
    case), with their field names."""
    out = []
    for f in _BLOCK_FIELDS:
        v = getattr(node, f, None)
        if (
            isinstance(v, list)
            and v
            and isinstance(v[0], ast.stmt | ast.excepthandler | ast.match_case)
        ):
            out.append((f, v))
    return out


def _span(node: ast.AST) -> tuple[int, int]:
    """First and last line of a statement (decorators included)."""
    if isinstance(node, ast.match_case):
        return node.pattern.lineno, node.body[-1].end_lineno or node.pattern.lineno
    first = node.lineno  # type: ignore[attr-defined]
    decorators = getattr(node, "decorator_list", None)
    if decorators:
        first = min(first, *(d.lineno for d in decorators))
    return first, node.end_lineno or first  # type: ignore[attr-defined]


def _own_lines(node: ast.AST) -> tuple[int, int]:
    """The lines of a statement outside its nested blocks (a compound
    statement's header)."""
    first, last = _span(node)
    if isinstance(node, _DEFS):
        return first, node.body[0].lineno - 1 if node.body[0].lineno > node.lineno else node.lineno
    children = [c for _, block in _blocks(node) for c in block]
    if children:
        last = max(first, min(_span(c)[0] for c in children) - 1)
        if any(_span(c)[0] == first for c in children):
            last = first
    return first, last


def _scope_defs(scope: ast.AST) -> Iterable[ast.AST]:
    """Function and class definitions directly in ``scope`` (inside its
    compound statements, not inside other definitions)."""
    for _, block in _blocks(scope):
        for node in block:
            if isinstance(node, _DEFS):
                yield node
            else:
                yield from _scope_defs(node)


def _find_def(tree: ast.Module, qualname: str, firstlineno: int) -> ast.AST | None:
    """The definition (or the module) a code object was compiled from."""
    if qualname == "<module>":
        return tree
    scopes: list[ast.AST] = [tree]
    for part in qualname.split("."):
        if part == "<locals>":
            continue
        scopes = [d for s in scopes for d in _scope_defs(s) if getattr(d, "name", None) == part]
        if not scopes:
            return None
    for d in scopes:
        if _span(d)[0] == firstlineno or getattr(d, "lineno", None) == firstlineno:
            return d
    return None


def _locate(container: ast.AST, line: int) -> list[tuple[str, int]] | None:
    """Path (block field, index) from ``container`` to the innermost statement
    whose lines contain ``line`` (not entering nested definitions)."""
    for field, block in _blocks(container):
        for i, child in enumerate(block):
            first, last = _span(child)
            if first <= line <= last:
                if isinstance(child, _DEFS):
                    return [(field, i)]
                sub = _locate(child, line)
                own = (
                    _own_lines(child)
                    if not isinstance(child, ast.excepthandler | ast.match_case)
                    else None
                )
                if sub is not None and not (
                    own and own[0] <= line <= own[1] and sub and _inline(child)
                ):
                    return [(field, i), *sub]
                return [(field, i)]
    return None


def _inline(node: ast.AST) -> bool:
    """Whether a compound statement's body starts on its header line."""
    first = _span(node)[0]
    return any(_span(c)[0] == first for _, block in _blocks(node) for c in block)


def _sig(node: ast.AST) -> str:
    """What identifies a statement when aligning two versions of a block: a
    definition by its name, a compound statement by its header, any other by
    its whole text."""
    if isinstance(node, _DEFS):
        return f"{type(node).__name__} {node.name}"
    fields = [f for f, _ in _blocks(node)]
    if fields:
        c = copy.copy(node)
        for f in fields:
            setattr(c, f, [])
        return ast.dump(c)
    return ast.dump(node)


def _segment(lines: list[str], node: ast.AST) -> str:
    """The source text of a statement, without its indentation."""
    first, last = node.lineno, node.end_lineno or node.lineno  # type: ignore[attr-defined]
    return "".join(line.strip() + "\n" for line in lines[first - 1 : last])


def _text(lines: list[str], node: ast.AST) -> str:
    first = getattr(node, "lineno", None)
    if first is None or not (1 <= first <= len(lines)):
        return ""
    return lines[first - 1].strip()


@dataclasses.dataclass
class _Mapped:
    """Where a statement of the old body is in the new one."""

    retry: ast.AST | None
    skip: ast.AST | None
    #: The statement itself is unchanged.
    same: bool
    reason: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    #: New statements inserted directly above the statement: retry starts there.
    inserted_above: int = 0


def _map_statement(
    old_root: ast.AST, new_root: ast.AST, path: list[tuple[str, int]], new_lines: list[str]
) -> _Mapped:
    """Follow ``path`` (from :func:`_locate` in the old body) through the new
    body, aligning each block's statements (same text, or the same place among
    changed ones). Blocks around the statement must keep their kind."""
    oc, nc = old_root, new_root
    notes: list[str] = []
    for depth, (field, i) in enumerate(path):
        ob = getattr(oc, field, None) or []
        nb = getattr(nc, field, None) or []
        if not isinstance(nb, list) or not nb:
            what = _describe_block(oc, field)
            return _Mapped(None, None, False, f"{what} no longer exists")
        import difflib

        sm = difflib.SequenceMatcher(
            None, [_sig(n) for n in ob], [_sig(n) for n in nb], autojunk=False
        )
        ops = sm.get_opcodes()
        last = depth == len(path) - 1
        op = next(o for o in ops if o[1] <= i < o[2])
        tag, a1, a2, b1, b2 = op
        if not last:
            if tag == "equal":
                j: int | None = b1 + (i - a1)
            elif tag == "delete":
                j = None
            else:
                # The same kind of statement at the same place among the changed ones.
                kind = type(ob[i])
                k = sum(1 for n in ob[a1:i] if type(n) is kind)
                same_kind = [b for b in range(b1, b2) if type(nb[b]) is kind]
                j = same_kind[k] if k < len(same_kind) else None
            if j is None or type(nb[j]) is not type(ob[i]):
                what = _describe(ob[i])
                return _Mapped(
                    None,
                    None,
                    False,
                    f"the {what} around it was removed or changed into something else",
                )
            notes.extend(_not_run(ops, j, nb, new_lines))
            if tag != "equal" and isinstance(
                ob[i], ast.For | ast.AsyncFor | ast.With | ast.AsyncWith
            ):
                what = (
                    "loop goes on over its old iterator"
                    if isinstance(ob[i], ast.For | ast.AsyncFor)
                    else "block keeps its open context manager"
                )
                notes.append(
                    f"the header of the {_describe(ob[i])} at line {nb[j].lineno} changed: the {what}"
                )
            oc, nc = ob[i], nb[j]
            continue
        if tag == "equal":
            jr = js = b1 + (i - a1)
            same = True
        elif tag == "delete":
            return _Mapped(None, None, False, "the statement was removed")
        else:
            same = False
            jr = b1 + (i - a1) if i - a1 < b2 - b1 else None
            js = b2 - (a2 - i) if a2 - i <= b2 - b1 else None
            if jr is None:
                return _Mapped(
                    None, None, False, "the statement was merged with the ones before it"
                )
        # New statements inserted directly above it run on retry.
        start = jr
        for o in ops:
            if o[0] == "insert" and o[4] == jr:
                start = o[3]
        inserted = jr - start
        notes.extend(_not_run(ops, start, nb, new_lines))
        return _Mapped(nb[start], nb[js] if js is not None else None, same, None, notes, inserted)
    return _Mapped(None, None, False, "the statement is not in a block")


def _not_run(ops, j: int, nb: list, lines: list[str]) -> list[str]:
    """Notes for new statements above position ``j`` of a new block that the
    continuation will not run."""
    out = []
    for tag, _a1, _a2, b1, b2 in ops:
        if tag in ("insert", "replace"):
            what = "was added" if tag == "insert" else "changed"
            for b in range(b1, min(b2, j)):
                n = nb[b]
                out.append(
                    f"line {_span(n)[0]} {what} above it and does not run: `{_text(lines, n)}`"
                )
    return out


def _describe(node: ast.AST) -> str:
    names = {
        ast.For: "`for` loop",
        ast.AsyncFor: "`async for` loop",
        ast.While: "`while` loop",
        ast.With: "`with` block",
        ast.AsyncWith: "`async with` block",
        ast.Try: "`try` statement",
        ast.If: "`if` statement",
        ast.ExceptHandler: "`except` clause",
        ast.Match: "`match` statement",
        ast.match_case: "`case` clause",
    }
    names[ast.TryStar] = "`try` statement"
    return names.get(type(node), type(node).__name__)


def _describe_block(node: ast.AST, field: str) -> str:
    what = _describe(node)
    part = {"orelse": "`else` part", "finalbody": "`finally` part", "handlers": "`except` clauses"}
    return f"the {part[field]} of the {what}" if field in part else f"the body of the {what}"


def _bound_names(stmts: list[ast.stmt]) -> tuple[set[str], bool]:
    """Names bound by the statements of one scope; whether a star import is
    among them."""
    names: set[str] = set()
    star = False

    def visit(node: ast.AST) -> None:
        nonlocal star
        if isinstance(node, _DEFS):
            names.add(node.name)
            return
        if isinstance(
            node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
        ):
            return
        if isinstance(node, ast.Import):
            for a in node.names:
                names.add(a.asname or a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                if a.name == "*":
                    star = True
                else:
                    names.add(a.asname or a.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        for child in ast.iter_child_nodes(node):
            visit(child)

    for s in stmts:
        visit(s)
    return names, star


def _target_names(stmt: ast.stmt) -> list[str] | None:
    """The names an assignment of plain names binds (None for other targets)."""
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        targets = [stmt.target]
    else:
        return None
    out: list[str] = []
    for t in targets:
        if isinstance(t, ast.Name):
            out.append(t.id)
        elif isinstance(t, ast.Tuple | ast.List) and all(isinstance(e, ast.Name) for e in t.elts):
            out.extend(e.id for e in t.elts)  # type: ignore[attr-defined]
        else:
            return None
    return out


# ---------------------------------------------------------------------------
# What a reload reports


@dataclasses.dataclass
class ReloadError:
    """Why a reload changed nothing: a syntax error, or an exception raised by
    a new definition."""

    filename: str
    line: int | None
    message: str
    #: The offending source line (and a caret), or the traceback.
    detail: str = ""

    def __str__(self) -> str:
        where = f"{self.filename}:{self.line}" if self.line else self.filename
        return f"{where}: {self.message}"


@dataclasses.dataclass
class FileReport:
    """What a reload changed in one source file."""

    filename: str
    modules: list[str]
    #: Functions whose code changed (qualified names).
    changed: list[str] = dataclasses.field(default_factory=list)
    #: Functions whose code only moved to other lines.
    moved: list[str] = dataclasses.field(default_factory=list)
    #: New functions, classes, class members, imports and constants.
    added: list[str] = dataclasses.field(default_factory=list)
    #: Definitions that are gone from the source, removed from the module.
    removed: list[str] = dataclasses.field(default_factory=list)
    #: Module- and class-level statements that changed or are new and were not run.
    not_rerun: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    #: Functions that could not be patched, with the reason.
    refused: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    #: Whether the new code has resume points.
    instrumented: bool = True

    @property
    def unchanged(self) -> bool:
        return not (self.changed or self.moved or self.added or self.removed or self.refused)


@dataclasses.dataclass
class FrameStatus:
    """A frame running code from before a reload, and whether and where it can
    continue in the new code."""

    frame: types.FrameType
    thread: str
    function: str
    filename: str
    #: The frame's line (in the old source).
    line: int | None
    #: "current" (runs the newest code), "moved" (its function only moved to
    #: other lines: it keeps running equivalent code), "mapped" (retry/skip
    #: continue in the new code), "unmapped" (no sound mapping: see reason).
    state: str
    reason: str | None = None
    #: The line of the mapped statement in the new source.
    new_line: int | None = None
    #: Why skipping in the new code is impossible (retry may still be possible).
    skip_reason: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    #: Whether this frame is the one paused on an exception.
    paused: bool = False
    #: Unmapped, and restarts continue in the old code (it can never switch:
    #: a generator, code without resume points, an unknown old source).
    keeps_old: bool = False
    #: Unmapped because its function was removed from the source.
    removed: bool = False
    #: It will switch to the new code at the next iteration of its loop.
    switches: bool = False
    # How to build the continuation.
    old_rp: Any = None
    new_code: types.CodeType | None = None
    retry_start: int | None = None
    skip_start: int | None = None

    def refused(self) -> str:
        """Why retry/skip cannot continue in the new code, and what can."""
        if self.removed:
            return f"{self.reason}; `leave` returns from it, `raise` lets the exception propagate"
        return f"{self.reason}; `rerun` calls the new code from its first line"

    def describe(self) -> str:
        what = "module code" if self.function == "<module>" else f"{self.function}()"
        where = f"{what} at {_display(self.filename)}:{self.line}"
        if self.state == "mapped":
            at = f"line {self.new_line} of the new code"
            how = (
                "`retry` and `skip` continue there"
                if self.skip_reason is None
                else "`retry` continues there"
            )
            if not self.paused and self.switches:
                how = "switches to the new code at the next iteration of its loop"
            elif not self.paused:
                how = "runs its old code until it returns; its `retry` (after `up`) continues there"
            return f"{where}: {how} ({at})"
        if self.state == "moved":
            return f"{where}: runs its old code, equivalent to the new one (lines moved or definitions in it changed)"
        if self.state == "unmapped" and self.keeps_old:
            return f"{where}: keeps running its old code (restarts too): {self.reason}"
        if self.state == "unmapped":
            return f"{where}: keeps running its old code: {self.reason}"
        return f"{where}: runs the new code"


def _display(filename: str) -> str:
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        return filename
    return rel if not rel.startswith(".." + os.sep) else filename


@dataclasses.dataclass
class ReloadReport:
    """What :func:`reload` did."""

    files: list[FileReport] = dataclasses.field(default_factory=list)
    #: When not empty, nothing was changed.
    errors: list[ReloadError] = dataclasses.field(default_factory=list)
    #: Frames (of every thread) still running code from before the reload.
    frames: list[FrameStatus] = dataclasses.field(default_factory=list)
    #: Suspended generators and coroutines still running old code.
    generators: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def changed(self) -> bool:
        return any(not f.unchanged for f in self.files)

    def lines(self) -> list[str]:
        """The report as text, one line each."""
        out: list[str] = []
        if self.errors:
            out.append("reload failed; nothing was changed:")
            for e in self.errors:
                out.append(f"  {e}")
                out.extend(f"    {d}" for d in e.detail.splitlines() if d.strip())
            return out
        changed = [f for f in self.files if not f.unchanged or f.not_rerun or f.notes]
        if not changed:
            return ["no source file changed since it was loaded"]
        for f in changed:
            if not f.modules:
                out.append(f"not reloaded: {_display(f.filename)}: " + "; ".join(f.notes))
                continue
            parts = []
            if f.changed:
                parts.append("changed " + ", ".join(f.changed))
            if f.added:
                parts.append("added " + ", ".join(f.added))
            if f.removed:
                parts.append("removed " + ", ".join(f.removed))
            if f.moved and not parts:
                parts.append(f"{len(f.moved)} function{'s' if len(f.moved) != 1 else ''} moved")
            out.append(
                f"reloaded {_display(f.filename)}: " + ("; ".join(parts) or "no definition changed")
            )
            if not f.instrumented:
                out.append("  (the file is not instrumented: the new code has no resume points)")
            for name, reason in f.refused:
                out.append(f"  not patched: {name}: {reason}")
            for line, text in f.not_rerun:
                out.append(f"  not run again (module-level statement): line {line}: {text}")
            for note in f.notes:
                out.append(f"  {note}")
        stale = [s for s in self.frames if s.state not in ("current", "moved")]
        if stale:
            out.append("frames running the code from before the reload:")
            for s in stale:
                out.append(f"  {s.describe()}")
                out.extend(f"    {n}" for n in s.notes)
        if self.generators:
            n = self.generators
            out.append(
                f"{n} suspended generator{'s' if n != 1 else ''} or coroutine{'s' if n != 1 else ''} "
                "keep running the old code (new ones run the new code)"
            )
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


# ---------------------------------------------------------------------------
# Reloading


def _norm(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _modules_by_file() -> dict[str, list[types.ModuleType]]:
    out: dict[str, list[types.ModuleType]] = {}
    for m in list(sys.modules.values()):
        f = getattr(m, "__file__", None)
        if isinstance(m, types.ModuleType) and isinstance(f, str) and f.endswith(".py"):
            out.setdefault(f, []).append(m)
    return out


_library_dirs: list[str] | None = None


def _library(filename: str) -> bool:
    """Whether a file belongs to resurrect, the standard library or installed
    packages (never candidates for a reload without being named)."""
    global _library_dirs
    if _library_dirs is None:
        import sysconfig

        dirs = {os.path.dirname(__file__)}
        for key in ("stdlib", "platstdlib", "purelib", "platlib"):
            path = sysconfig.get_paths().get(key)
            if path:
                dirs.add(path)
        _library_dirs = sorted({_norm(d) + os.sep for d in dirs})
    n = os.path.normcase(os.path.abspath(filename))
    if any(n.startswith(d) for d in _library_dirs) or "site-packages" in n or "dist-packages" in n:
        return True
    return False


def _instrumented_module(module: types.ModuleType) -> bool:
    loader = getattr(module, "__loader__", None)
    if type(loader).__name__ == "_InstrumentingLoader":
        return True
    f = module.__file__
    for v in list(vars(module).values()):
        fn = _unwrap(v)
        if (
            isinstance(fn, types.FunctionType)
            and fn.__code__.co_filename == f
            and _core.is_instrumented(fn.__code__)
        ):
            return True
        if isinstance(v, type) and v.__module__ == module.__name__:
            for m in list(vars(v).values()):
                for g in _functions_in(m):
                    if g.__code__.co_filename == f and _core.is_instrumented(g.__code__):
                        return True
    return False


def _candidates() -> dict[str, list[types.ModuleType]]:
    """Source files reload considers by default: those of instrumented modules
    (and of instrumented code running on some thread)."""
    out: dict[str, list[types.ModuleType]] = {}
    running = set()
    for top in sys._current_frames().values():
        f: types.FrameType | None = top
        while f is not None:
            if _core.is_instrumented(f.f_code):
                running.add(f.f_code.co_filename)
            f = f.f_back
    for filename, modules in _modules_by_file().items():
        loaded = any(
            type(getattr(m, "__loader__", None)).__name__ == "_InstrumentingLoader" for m in modules
        )
        if loaded or filename in _reloaded or filename in running:
            out[filename] = modules
        elif not _library(filename) and any(_instrumented_module(m) for m in modules):
            out[filename] = modules  # `@resumable`, `install(instrument=...)`
    return out


def _unwrap(value: Any) -> Any:
    seen = 0
    while seen < 20:
        seen += 1
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
            continue
        inner = getattr(value, "__wrapped__", None) if not isinstance(value, type) else None
        if inner is None or inner is value:
            return value
        value = inner
    return value


def _functions_in(value: Any) -> list[types.FunctionType]:
    """The functions behind a class member (methods, static/class methods,
    properties, cached properties, decorated functions)."""
    out: list[types.FunctionType] = []
    if isinstance(value, property):
        for f in (value.fget, value.fset, value.fdel):
            if f is not None:
                out.extend(_functions_in(f))
        return out
    func = getattr(value, "func", None)  # functools.cached_property, partialmethod
    if isinstance(func, types.FunctionType) and not isinstance(value, types.FunctionType):
        out.append(func)
    v = _unwrap(value)
    if isinstance(v, types.FunctionType):
        out.append(v)
    return out


def _ours_global(value: Any, name: str, module: types.ModuleType, filename: str) -> bool:
    """Whether a module attribute is a definition of the file under that name."""
    if isinstance(value, type):
        return value.__module__ == module.__name__ and value.__qualname__ == name
    fn = _unwrap(value)
    return (
        isinstance(fn, types.FunctionType)
        and fn.__code__.co_filename == filename
        and fn.__qualname__ == name
    )


def _ours_member(cls: type, name: str, filename: str) -> bool:
    value = cls.__dict__.get(name)
    if value is None:
        return False
    if isinstance(value, type):
        return value.__qualname__ == f"{cls.__qualname__}.{name}"
    return any(
        f.__code__.co_filename == filename and f.__qualname__ == f"{cls.__qualname__}.{name}"
        for f in _functions_in(value)
    )


@dataclasses.dataclass
class _Plan:
    filename: str
    modules: list[types.ModuleType]
    source: _Source
    old: _Source | None
    code: types.CodeType
    index: dict[tuple[str, int], types.CodeType]
    instrumented: bool
    report: FileReport
    patches: list[tuple[types.FunctionType, types.CodeType, types.CodeType]] = dataclasses.field(
        default_factory=list
    )
    #: Per module: the statements to run (new definitions, imports, constants).
    run: list[tuple[types.ModuleType, list[ast.stmt]]] = dataclasses.field(default_factory=list)
    #: (module, top-level class node, [(real class, path of nested class names, names to add)])
    class_adds: list[
        tuple[types.ModuleType, ast.ClassDef, list[tuple[type, tuple[str, ...], list[str]]]]
    ] = dataclasses.field(default_factory=list)
    class_removes: list[tuple[type, str]] = dataclasses.field(default_factory=list)
    removes: list[tuple[types.ModuleType, str]] = dataclasses.field(default_factory=list)
    defaults: list[tuple[types.FunctionType, ast.arguments, dict, dict | None]] = dataclasses.field(
        default_factory=list
    )
    cache_clears: list[Callable[[], Any]] = dataclasses.field(default_factory=list)
    # Filled by the execution step.
    scratch: list[tuple[types.ModuleType, dict]] = dataclasses.field(default_factory=list)
    class_values: list[tuple[type, str, Any]] = dataclasses.field(default_factory=list)
    default_values: list[tuple[types.FunctionType, tuple | None, dict | None]] = dataclasses.field(
        default_factory=list
    )
    extra_codes: list[types.CodeType] = dataclasses.field(default_factory=list)
    keys: dict[int, tuple[str, int] | None] = dataclasses.field(default_factory=dict)
    live_codes: list[types.CodeType] = dataclasses.field(default_factory=list)
    #: Code objects (with resume points) made by this reload.
    new_codes: list[types.CodeType] = dataclasses.field(default_factory=list)
    #: id of a plain code object of the new text -> its key.
    pkeys: dict[int, tuple[str, int]] = dataclasses.field(default_factory=dict)
    new_keys: dict[int, tuple[types.CodeType, tuple[str, int]]] = dataclasses.field(
        default_factory=dict
    )


class _Failed(Exception):
    def __init__(self, error: ReloadError):
        super().__init__(str(error))
        self.error = error


def _syntax_error(filename: str, e: SyntaxError) -> ReloadError:
    detail = ""
    if e.text:
        text = e.text.rstrip("\n")
        stripped = text.lstrip()
        detail = stripped
        if e.offset:
            caret = max(0, e.offset - 1 - (len(text) - len(stripped)))
            detail += "\n" + " " * caret + "^"
    return ReloadError(filename, e.lineno, f"{type(e).__name__}: {e.msg}", detail)


def _exception_error(filename: str, e: BaseException, what: str) -> ReloadError:
    line = None
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    import traceback

    text = "".join(traceback.format_exception_only(type(e), e)).strip()
    source = linecache.getline(filename, line).strip() if line else ""
    return ReloadError(filename, line, f"{what} raised {text}", source)


def reload(
    paths: Iterable[str | os.PathLike] | str | os.PathLike | None = None,
    *,
    failure: engine.Failure | None = None,
) -> ReloadReport:
    """Re-read the source files that changed and patch the running program.

    ``paths``: files (or directories: the loaded modules below them) to reload;
    default: every instrumented module whose file changed since it was loaded
    (or last reloaded). ``failure``: the paused failure, whose frame the report
    maps precisely (found on the stack when not given).

    A syntax error or an exception raised by a new definition changes nothing;
    the report's ``errors`` say where."""
    with _lock:
        _adapt_engine()
        # Syntax trees kept for mapping frames are large: they would slow the
        # search for function objects (parsed again when needed).
        _trees.clear()
        report = ReloadReport()
        files = _select(paths, report)
        plans: list[_Plan] = []
        functions, generators = _scan({f for f in files})
        try:
            for filename, modules in files.items():
                plan = _prepare(filename, modules, functions.get(filename, []), report)
                if plan is not None:
                    plans.append(plan)
            for plan in plans:
                _execute(plan)
        except _Failed as failed:
            report.errors.append(failed.error)
            report.files = []
            return report
        for plan in plans:
            _commit(plan)
        report.files.extend(p.report for p in plans)
        reloaded = {p.filename for p in plans}
        report.generators = sum(1 for g in generators if g[0] in reloaded and not _is_current(g[1]))
        report.frames = stale_frames(failure=failure)
        _switcher.prune()
        for st in _switcher.schedule(report.frames):
            st.switches = True
        _trees.clear()
        return report


def _select(paths, report: ReloadReport) -> dict[str, list[types.ModuleType]]:
    by_file = _modules_by_file()
    if paths is None:
        files = _candidates()
        # Only those whose text differs from what their code was compiled from.
        out = {}
        for f, ms in files.items():
            known = _texts.get(f)
            if known is not None and known.verified:
                try:
                    if _read(f) == known.text:
                        continue
                except (OSError, SyntaxError, UnicodeDecodeError):
                    continue
            out[f] = ms
        return out
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    wanted = [_norm(os.fspath(p)) for p in paths]
    out = {}
    for filename, modules in by_file.items():
        n = _norm(filename)
        for w in wanted:
            if n == w or n.startswith(w.rstrip(os.sep) + os.sep):
                out[filename] = modules
    for p, w in zip(paths, wanted, strict=True):
        if not any(_norm(f) == w or _norm(f).startswith(w.rstrip(os.sep) + os.sep) for f in out):
            report.errors.append(
                ReloadError(os.fspath(p), None, "no loaded module comes from this file")
            )
    if report.errors:
        raise_errors = report.errors
        report.errors = []
        report.files = []
        # Unknown paths are reported but do not stop the others.
        for e in raise_errors:
            report.files.append(FileReport(e.filename, [], notes=[e.message]))
    return out


def _scan(
    filenames: set[str],
) -> tuple[dict[str, list[types.FunctionType]], list[tuple[str, types.CodeType]]]:
    """Every function object whose code comes from ``filenames``, and the
    suspended generators and coroutines of those files."""
    funcs: dict[str, list[types.FunctionType]] = {}
    gens: list[tuple[str, types.CodeType]] = []
    if not filenames:
        return funcs, gens
    ftype = types.FunctionType
    gtypes = (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)
    objects = gc.get_objects()
    for obj in [o for o in objects if type(o) is ftype and o.__code__.co_filename in filenames]:
        code = obj.__code__
        # Module and class bodies run through a function object too (3.11+);
        # their frames are not patched.
        if code.co_flags & _CO_OPTIMIZED and not _is_continuation(code):
            funcs.setdefault(code.co_filename, []).append(obj)
    for obj in [o for o in objects if type(o) in gtypes]:
        code = (
            getattr(obj, "gi_code", None)
            or getattr(obj, "cr_code", None)
            or getattr(obj, "ag_code", None)
        )
        if code is not None and code.co_filename in filenames:
            frame = (
                getattr(obj, "gi_frame", None)
                or getattr(obj, "cr_frame", None)
                or getattr(obj, "ag_frame", None)
            )
            if frame is not None:
                gens.append((code.co_filename, code))
    return funcs, gens


def _is_continuation(code: types.CodeType) -> bool:
    o = _origin(code)
    return o is not None and o.base is not None


def _prepare(
    filename: str,
    modules: list[types.ModuleType],
    functions: list[types.FunctionType],
    report: ReloadReport,
) -> _Plan | None:
    """Compile the new text and decide what changes (nothing is changed yet)."""
    try:
        text = _read(filename)
    except (OSError, UnicodeDecodeError) as e:
        raise _Failed(ReloadError(filename, None, f"cannot read the file: {e}")) from None
    except SyntaxError as e:  # a bad encoding declaration
        raise _Failed(_syntax_error(filename, e)) from None
    live = list({id(fn.__code__): fn.__code__ for fn in functions}.values())
    for top in sys._current_frames().values():
        f: types.FrameType | None = top
        while f is not None:
            if f.f_code.co_filename == filename and not _is_continuation(f.f_code):
                if all(c is not f.f_code for c in live):
                    live.append(f.f_code)
            f = f.f_back
    old = _texts.get(filename)
    if old is None or not old.verified:
        old = _baseline(filename, [c for c in live if _origin(c) is None], modules)
    if old is not None and old.text == text:
        return None
    source = _Source(filename, text)
    try:
        plain = compile(text, filename, "exec", dont_inherit=True)
        # Only the top-level statements whose text changed are parsed.
        changed_stmts = _parse_changes(source, plain, old)
    except (SyntaxError, ValueError) as e:
        if isinstance(e, SyntaxError):
            raise _Failed(_syntax_error(filename, e)) from None
        raise _Failed(ReloadError(filename, None, f"cannot compile: {e}")) from None
    tree = ast.Module(body=changed_stmts, type_ignores=[])
    instrumented = any(_instrumented_module(m) for m in modules) or any(
        _core.is_instrumented(c) for c in live
    )
    pindex = _index(plain)
    pkeys = {id(c): k for k, c in pindex.items()}
    source._adopt(pindex)
    fr = FileReport(filename, [m.__name__ for m in modules], instrumented=instrumented)
    plan = _Plan(filename, modules, source, old, plain, {}, instrumented, fr)
    plan.live_codes = live

    # Which key (function of the new source) each live code is.
    by_qualname: dict[str, set[int]] = {}
    for c in live:
        by_qualname.setdefault(c.co_qualname, set()).add(id(c))
    new_counts: dict[str, int] = {}
    for q, _n in pindex:
        new_counts[q] = new_counts.get(q, 0) + 1
    for c in live:
        o = _origin(c)
        if o is not None and o.base is None and o.key is not None:
            key: tuple[str, int] | None = o.key
        elif len(by_qualname[c.co_qualname]) == 1 and new_counts.get(c.co_qualname, 0) <= 1:
            key = (c.co_qualname, 0)
        elif old is not None:
            key = old.key_of(c)
        else:
            key = None
        plan.keys[id(c)] = key

    # The new code of each key whose live code changed, with resume points
    # added to the changed code only (outermost first: nested code comes with it).
    unchanged: dict[tuple[str, int], types.CodeType] = {}
    changed_keys = set()
    same: dict[int, bool] = {}
    held = {id(fn.__code__) for fn in functions}
    for c in live:
        key = plan.keys[id(c)]
        p = pindex.get(key) if key is not None else None
        if p is None:
            continue
        nested = bool(c.co_flags & _CO_OPTIMIZED)  # module and class bodies: their own code
        same[id(c)] = _same_plain(p, c, nested=nested)
        if same[id(c)]:
            unchanged.setdefault(key, c)
        elif id(c) in held:
            changed_keys.add(key)
    new_of: dict[int, types.CodeType] = {}
    for key, p in pindex.items():
        if key not in changed_keys or id(p) in new_of:
            continue
        if not p.co_flags & _CO_OPTIMIZED:
            continue  # a module or class body: resume points added when a frame needs them
        ip = _core.instrument(p) if instrumented else p
        for a, b in zip(_walk(p), _walk(ip), strict=True):
            if id(a) not in new_of:
                new_of[id(a)] = b
                plan.new_keys[id(b)] = (b, pkeys[id(a)])
    index: dict[tuple[str, int], types.CodeType] = {}
    for key, p in pindex.items():
        index[key] = unchanged.get(key) or new_of.get(id(p)) or p
    plan.index = index
    plan.new_codes = [c for c in new_of.values()]
    plan.pkeys = pkeys

    seen_changed: set[str] = set()
    order: dict[str, int] = {}
    for fn in functions:
        old_code = fn.__code__
        key = plan.keys.get(id(old_code))
        name = fn.__qualname__
        if key is None:
            fr.refused.append(
                (name, "several definitions have this name and the old source is unknown")
            )
            continue
        new_code = index.get(key)
        if new_code is None:
            continue  # its definition is gone (reported as removed where it was bound)
        if new_code is old_code or same.get(id(old_code), True):
            continue
        reason = _incompatible(old_code, new_code)
        if reason is not None:
            fr.refused.append((name, reason))
            continue
        plan.patches.append((fn, old_code, new_code))
        if name not in seen_changed:
            seen_changed.add(name)
            label = name if "<" in name else f"{name}()"
            if _body_key(old_code) == _body_key(new_code):
                fr.moved.append(label)
            else:
                fr.changed.append(label)
                order[label] = new_code.co_firstlineno
    fr.changed.sort(key=lambda label: order.get(label, 0))
    bound = _module_names(plain)
    for m in modules:
        _plan_module(plan, m, tree, bound)
    return plan


def _chunks(lines: list[str], code: types.CodeType) -> list[tuple[int, int]]:
    """Line ranges of the top-level statements of a module (each range may
    hold several statements; comments and blank lines go with the statement
    above): a line at the margin where module-level code starts."""
    starts = set()
    for pos in code.co_positions():
        line = pos[0]
        if line is not None and 1 <= line <= len(lines):
            starts.add(line)
    first = []
    for line in sorted(starts):
        c = lines[line - 1][:1]
        if c and not c.isspace() and c not in "#)]}":
            first.append(line)
    if not first or first[0] != 1:
        first.insert(0, 1)
    return [
        (a, (first[k + 1] - 1) if k + 1 < len(first) else len(lines)) for k, a in enumerate(first)
    ]


def _parse_lines(source: _Source, a: int, b: int) -> list[ast.stmt]:
    """Parse lines a..b of the source, keeping their line numbers."""
    text = "\n" * (a - 1) + "".join(source.lines[a - 1 : b])
    return ast.parse(text, source.filename).body


def _parse_changes(source: _Source, code: types.CodeType, old: _Source | None) -> list[ast.stmt]:
    """The top-level statements of ``source`` whose text is not in ``old``
    (all of them when ``old`` has no outline per chunk); records the outline of
    every chunk of ``source`` for the next reload."""
    lines = source.lines
    chunks = _chunks(lines, code) if lines else []
    known = old.chunk_outlines if old is not None else None
    records: list[tuple[int, int, str, _Outline, list[ast.stmt] | None]] = []
    if known is None:
        # No outline of the old text per chunk: parse everything at once.
        tree = ast.parse(source.text, source.filename)
        source.set_tree(tree)
        body = list(tree.body)
        for a, b in chunks:
            stmts = [st for st in body if a <= _span(st)[0] <= b]
            records.append((a, b, "".join(lines[a - 1 : b]), _Outline(stmts, lines), stmts))
    else:
        k = 0
        pending = list(chunks)
        while k < len(pending):
            a, b = pending[k]
            text = "".join(lines[a - 1 : b])
            outline = known.get(text)
            if outline is not None:
                records.append((a, b, text, outline, None))
                k += 1
                continue
            try:
                stmts = _parse_lines(source, a, b)
            except SyntaxError:
                # A statement cut in two (a line of it at the margin): join.
                if k + 1 < len(pending):
                    pending[k : k + 2] = [(a, pending[k + 1][1])]
                elif records:
                    pa, _pb, _t, _o, _s = records.pop()
                    pending[k] = (pa, b)
                else:
                    raise
                continue
            records.append((a, b, text, _Outline(stmts, lines), stmts))
            k += 1
    source.chunk_outlines = {text: outline for _a, _b, text, outline, _s in records}
    source._outline = _Outline.merge([outline for _a, _b, _t, outline, _s in records])
    return [st for *_rest, stmts in records if stmts is not None for st in stmts]


def _module_names(code: types.CodeType) -> tuple[set[str], bool]:
    """Names bound by a module's top-level statements (from its bytecode), and
    whether one of them is a star import."""
    names: set[str] = set()
    star = False
    store = {opcode.opmap["STORE_NAME"], opcode.opmap["STORE_GLOBAL"]}
    extended = opcode.opmap["EXTENDED_ARG"]
    import_star = opcode.opmap.get("IMPORT_STAR")
    intrinsic = opcode.opmap.get("CALL_INTRINSIC_1")
    raw = code.co_code
    arg = 0
    for i in range(0, len(raw), 2):
        op = raw[i]
        arg = (arg << 8) | raw[i + 1] if op != 0 else 0
        if op == extended:
            continue
        if op in store:
            names.add(code.co_names[arg])
        elif op == import_star or (op == intrinsic and arg == 2):  # INTRINSIC_IMPORT_STAR
            star = True
        arg = 0
    return names, star


_LF = opcode.opmap["LOAD_FAST"]
_LFC = opcode.opmap.get("LOAD_FAST_CHECK", _LF)
_LF_TABLE = bytes(_LF if b == _LFC else b for b in range(256))


def _same_plain(plain: types.CodeType, code: types.CodeType, nested: bool = True) -> bool:
    """Whether ``code`` is ``plain`` (compiled from the same text at the same
    place), with or without resume points. ``nested=False``: the code's own
    instructions only (for module and class bodies)."""
    if plain is code:
        return True
    if (
        plain.co_qualname != code.co_qualname
        or plain.co_firstlineno != code.co_firstlineno
        or plain.co_flags != code.co_flags
        or plain.co_varnames != code.co_varnames
        or plain.co_freevars != code.co_freevars
        or plain.co_cellvars != code.co_cellvars
        or plain.co_argcount != code.co_argcount
        or plain.co_posonlyargcount != code.co_posonlyargcount
        or plain.co_kwonlyargcount != code.co_kwonlyargcount
    ):
        return False
    a = plain.co_code
    b = code.co_code[: len(a)]
    # Resume points leave the original instructions in place; 3.12+ turn
    # LOAD_FAST of non-arguments into LOAD_FAST_CHECK.
    if a != b and (
        a[1::2] != b[1::2] or a[::2].translate(_LF_TABLE) != b[::2].translate(_LF_TABLE)
    ):
        return False
    if code.co_names[: len(plain.co_names)] != plain.co_names:
        return False
    if not code.co_linetable.startswith(plain.co_linetable):
        return False
    pc, cc = plain.co_consts, code.co_consts
    if len(cc) < len(pc):
        return False
    for x, y in zip(pc, cc, strict=False):
        if isinstance(x, types.CodeType):
            if not isinstance(y, types.CodeType):
                return False
            if nested and not _same_plain(x, y):
                return False
            if not nested and x.co_qualname != y.co_qualname:
                return False
        elif type(x) is not type(y) or (x != y and not (x != x and y != y)):
            return False
    return True


def _incompatible(old: types.CodeType, new: types.CodeType) -> str | None:
    if old.co_freevars != new.co_freevars:
        if not old.co_freevars and not new.co_freevars:
            return None
        return (
            f"its closure variables changed ({', '.join(old.co_freevars) or 'none'} -> "
            f"{', '.join(new.co_freevars) or 'none'}): existing function objects keep their "
            "old closure; calls of the enclosing function create the new one"
        )
    mask = _CO_OPTIMIZED | _CO_NEWLOCALS
    if old.co_flags & mask != new.co_flags & mask:
        return "it is no longer a function of the same kind"
    return None


def _plan_module(
    plan: _Plan, module: types.ModuleType, tree: ast.Module, names: tuple[set[str], bool]
) -> None:
    """What changes in a module: ``tree`` holds the top-level statements whose
    text changed, ``names`` the names all its top-level statements bind."""
    ns = module.__dict__
    filename = plan.filename
    fr = plan.report
    outline = plan.old.outline if plan.old is not None else None
    old_stmts = outline.stmts if outline is not None else None
    old_defs = outline.defs if outline is not None else {}
    bound, star = names
    to_run: list[ast.stmt] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            cur = ns.get(stmt.name)
            if cur is not None and _ours_global(cur, stmt.name, module, filename):
                _plan_function_extras(plan, cur, stmt, old_defs.get(stmt.name), ns, None)
                continue
            to_run.append(stmt)
            fr.added.append(f"{stmt.name}()")
        elif isinstance(stmt, ast.ClassDef):
            cur = ns.get(stmt.name)
            if isinstance(cur, type) and _ours_global(cur, stmt.name, module, filename):
                old_node = old_defs.get(stmt.name)
                adds = _plan_class(
                    plan, module, cur, stmt, old_node.body if old_node is not None else None, ()
                )
                if adds:
                    plan.class_adds.append((module, stmt, adds))
                if old_node is not None and old_node.decorators != _decorators(stmt):
                    fr.notes.append(
                        f"the decorators of class {stmt.name} changed: they are not applied again"
                    )
                continue
            to_run.append(stmt)
            fr.added.append(stmt.name)
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
                continue
            names, has_star = _bound_names([stmt])
            if any(n not in ns for n in names):
                to_run.append(stmt)
                fr.added.append(f"import {', '.join(sorted(n for n in names if n not in ns))}")
            elif (
                old_stmts is not None
                and _segment(plan.source.lines, stmt) not in old_stmts
                and has_star
            ):
                fr.not_rerun.append((stmt.lineno, _text(plan.source.lines, stmt)))
        else:
            names_ = _target_names(stmt)
            if names_ and all(n not in ns for n in names_):
                to_run.append(stmt)
                fr.added.extend(names_)
            elif old_stmts is not None and _segment(plan.source.lines, stmt) not in old_stmts:
                fr.not_rerun.append((stmt.lineno, _text(plan.source.lines, stmt)))
    if to_run:
        plan.run.append((module, to_run))
    if not star:
        for name, value in list(ns.items()):
            if name not in bound and _ours_global(value, name, module, filename):
                plan.removes.append((module, name))
                label = name if isinstance(value, type) else f"{name}()"
                if label not in fr.removed:
                    fr.removed.append(label)


def _decorators(node: ast.AST) -> list[str]:
    return [ast.dump(d) for d in getattr(node, "decorator_list", [])]


def _plan_function_extras(
    plan: _Plan,
    value: Any,
    node: ast.FunctionDef | ast.AsyncFunctionDef,
    old_node: _DefOutline | None,
    ns: dict,
    class_ns: dict | None,
) -> None:
    """Default values and decorators of a definition that stays the same object."""
    fn = _unwrap(value)
    if old_node is None or not isinstance(fn, types.FunctionType):
        return
    if old_node.decorators != _decorators(node):
        plan.report.notes.append(
            f"the decorators of {fn.__qualname__}() changed: they are not applied again "
            "(the function's code is replaced)"
        )
    if old_node.defaults is not None and old_node.defaults != _defaults(node.args):
        plan.defaults.append((fn, node.args, ns, class_ns))
    if value is not fn and callable(getattr(value, "cache_clear", None)):
        plan.cache_clears.append(value.cache_clear)


def _plan_class(
    plan: _Plan,
    module: types.ModuleType,
    cls: type,
    node: ast.ClassDef,
    old_node: _Outline | None,
    path: tuple[str, ...],
) -> list[tuple[type, tuple[str, ...], list[str]]]:
    """Members to add to (and remove from) an existing class; the class itself
    stays the same object."""
    fr = plan.report
    filename = plan.filename
    adds: list[tuple[type, tuple[str, ...], list[str]]] = []
    names: list[str] = []
    old_members = old_node.defs if old_node is not None else {}
    old_stmts = old_node.stmts if old_node is not None else None
    for stmt in node.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            if _ours_member(cls, stmt.name, filename):
                value = cls.__dict__[stmt.name]
                if not isinstance(value, property):
                    _plan_function_extras(
                        plan,
                        value,
                        stmt,
                        old_members.get(stmt.name),
                        module.__dict__,
                        dict(cls.__dict__),
                    )
                continue
            if stmt.name in cls.__dict__ and any(
                isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef) and s.name == stmt.name
                for s in node.body
                if s is not stmt and s.lineno < stmt.lineno
            ):
                continue  # a property's setter/deleter: the property is ours already
            names.append(stmt.name)
        elif isinstance(stmt, ast.ClassDef):
            sub = cls.__dict__.get(stmt.name)
            if isinstance(sub, type) and sub.__qualname__ == f"{cls.__qualname__}.{stmt.name}":
                old_sub = old_members.get(stmt.name)
                adds.extend(
                    _plan_class(
                        plan,
                        module,
                        sub,
                        stmt,
                        old_sub.body if old_sub is not None else None,
                        (*path, stmt.name),
                    )
                )
                continue
            names.append(stmt.name)
        else:
            targets = _target_names(stmt)
            if targets and all(n not in cls.__dict__ for n in targets):
                names.extend(targets)
            elif (
                old_stmts is not None
                and _segment(plan.source.lines, stmt) not in old_stmts
                and not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))
            ):
                fr.not_rerun.append((stmt.lineno, _text(plan.source.lines, stmt)))
    if names:
        adds.append((cls, path, names))
        defs = {s.name for s in node.body if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)}
        for n in names:
            is_def = n in defs and not isinstance(cls.__dict__.get(n), property)
            fr.added.append(
                f"{cls.__qualname__}.{n}" + ("()" if is_def and not _is_property(node, n) else "")
            )
    bound, _ = _bound_names(node.body)
    for name in list(cls.__dict__):
        if name not in bound and not name.startswith("__") and _ours_member(cls, name, filename):
            plan.class_removes.append((cls, name))
            label = f"{cls.__qualname__}.{name}"
            fr.removed.append(
                label if isinstance(cls.__dict__[name], type | property) else label + "()"
            )
    return adds


def _is_property(node: ast.ClassDef, name: str) -> bool:
    for s in node.body:
        if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef) and s.name == name:
            return any(
                (isinstance(d, ast.Name) and d.id in ("property", "cached_property"))
                or (
                    isinstance(d, ast.Attribute)
                    and d.attr in ("setter", "getter", "deleter", "cached_property")
                )
                for d in s.decorator_list
            )
    return False


def _compile_statements(plan: _Plan, stmts: list[ast.stmt]) -> types.CodeType:
    module = ast.Module(body=stmts, type_ignores=[])
    flags = plan.code.co_flags & _FUTURE_FLAGS
    code = compile(module, plan.filename, "exec", flags=flags, dont_inherit=True)
    if plan.instrumented:
        code = _core.instrument(code)
    plan.extra_codes.append(code)
    return code


def _execute(plan: _Plan) -> None:
    """Run the new definitions into scratch namespaces (the modules are not
    touched); evaluate changed default values."""
    filename = plan.filename
    for module, stmts in plan.run:
        scratch: dict[str, Any] = {}
        try:
            code = _compile_statements(plan, stmts)
            exec(code, module.__dict__, scratch)
        except _Failed:
            raise
        except SyntaxError as e:
            raise _Failed(_syntax_error(filename, e)) from None
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            raise _Failed(_exception_error(filename, e, "a new definition")) from None
        plan.scratch.append((module, scratch))
    for module, node, adds in plan.class_adds:
        stripped = copy.copy(node)
        stripped.decorator_list = []
        stripped.bases = []
        stripped.keywords = []
        scratch = {}
        try:
            code = _compile_statements(plan, [stripped])
            exec(code, module.__dict__, scratch)
        except SyntaxError as e:
            raise _Failed(_syntax_error(filename, e)) from None
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            raise _Failed(_exception_error(filename, e, f"the body of class {node.name}")) from None
        temp = scratch[node.name]
        for real, path, names in adds:
            t = temp
            for p in path:
                t = t.__dict__[p]
            for name in names:
                if name not in t.__dict__:
                    continue
                value = t.__dict__[name]
                for fn in _functions_in(value):
                    _fix_class_cell(fn, t, real)
                plan.class_values.append((real, name, value))
    for fn, args, ns, class_ns in plan.defaults:
        try:
            defaults = tuple(_eval(plan, d, ns, class_ns) for d in args.defaults) or None
            kw = {
                a.arg: _eval(plan, d, ns, class_ns)
                for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                if d is not None
            } or None
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            raise _Failed(
                _exception_error(filename, e, f"a default value of {fn.__qualname__}()")
            ) from None
        plan.default_values.append((fn, defaults, kw))


def _eval(plan: _Plan, node: ast.expr, ns: dict, class_ns: dict | None) -> Any:
    expr = ast.Expression(body=node)
    code = compile(expr, plan.filename, "eval", dont_inherit=True)
    return eval(code, ns, class_ns if class_ns is not None else ns)


def _fix_class_cell(fn: types.FunctionType, temp: type, real: type) -> None:
    """A method built in the scratch class refers to it through ``__class__``
    (zero-argument ``super()``): point it at the real class."""
    code = fn.__code__
    if "__class__" in code.co_freevars and fn.__closure__:
        cell = fn.__closure__[code.co_freevars.index("__class__")]
        try:
            if cell.cell_contents is temp:
                cell.cell_contents = real
        except ValueError:
            pass


def _commit(plan: _Plan) -> None:
    """Apply a prepared and executed plan (this cannot fail half-way)."""
    filename = plan.filename
    for fn, old_code, new_code in plan.patches:
        fn.__code__ = new_code
        _patched_from.setdefault(id(old_code), []).append(weakref.ref(fn))
        _origins.setdefault(
            id(old_code), _Origin(old_code, filename, plan.old, plan.keys.get(id(old_code)))
        )
    for fn, defaults, kw in plan.default_values:
        fn.__defaults__ = defaults
        fn.__kwdefaults__ = kw
    for clear in plan.cache_clears:
        try:
            clear()
        except Exception:
            pass
    for module, scratch in plan.scratch:
        module.__dict__.update(scratch)
    for cls, name, value in plan.class_values:
        setattr(cls, name, value)
        set_name = getattr(type(value), "__set_name__", None)
        if set_name is not None:
            try:
                set_name(value, cls, name)
            except Exception:
                pass
    for cls, name in plan.class_removes:
        try:
            delattr(cls, name)
        except (AttributeError, TypeError):
            pass
    for module, name in plan.removes:
        module.__dict__.pop(name, None)
    # Remember what the running code is now.
    for c in plan.live_codes:
        if _origin(c) is None:
            _origins[id(c)] = _Origin(c, filename, plan.old, plan.keys.get(id(c)))
    ids = set()
    for key, c in plan.index.items():
        if id(c) not in plan.pkeys:
            ids.add(id(c))  # unchanged live code, or new code with resume points
            o = _origin(c)
            if o is not None and o.source is not plan.source and o.base is None:
                # Unchanged: the new text has it at the same place.
                _origins[id(c)] = _Origin(c, filename, plan.source, key)
    for c, key in plan.new_keys.values():
        _origins[id(c)] = _Origin(c, filename, plan.source, key)
        ids.add(id(c))
    firsts = {(c.co_qualname, c.co_firstlineno): k for k, c in plan.index.items()}
    for extra in plan.extra_codes:
        for c in _walk(extra):
            key = firsts.get((c.co_qualname, c.co_firstlineno))
            _origins[id(c)] = _Origin(c, filename, plan.source, key)
            ids.add(id(c))
    _current[filename] = dict(plan.index)
    _current_ids[filename] = ids
    if plan.instrumented:
        _instrumented_files.add(filename)
    # Syntax trees are large: keep those of the running and the previous text.
    history = _history.setdefault(filename, [])
    history.append(plan.source)
    for src in history[:-2]:
        src.forget()
    del history[:-2]
    _texts[filename] = plan.source
    _reloaded.add(filename)
    st = os.stat(filename) if os.path.exists(filename) else None
    linecache.cache[filename] = (
        len(plan.source.text),
        st.st_mtime if st else None,
        plan.source.lines,
        filename,
    )


# ---------------------------------------------------------------------------
# Frames running old code


def _thread_names() -> dict[int, str]:
    return {t.ident: t.name for t in threading.enumerate() if t.ident is not None}


def _is_own_frame(frame: types.FrameType) -> bool:
    name = frame.f_globals.get("__name__") or ""
    return name == "resurrect" or name.startswith("resurrect.")


def _paused_rp(frame: types.FrameType):
    """The resume point ``frame`` is paused at, when an exception stopped it
    (the engine's hook is deciding what it does, further down this stack)."""
    hook = getattr(engine, "_hook", None)
    hook_code = getattr(hook, "__code__", None)
    f: types.FrameType | None = sys._getframe(1)
    while f is not None:
        if f.f_code is hook_code:
            loc = f.f_locals
            if loc.get("frame") is frame and isinstance(loc.get("rp_index"), int):
                try:
                    return _core.resume_points(frame.f_code)[loc["rp_index"]]
                except (IndexError, Exception):
                    return None
        f = f.f_back
    return None


def stale_frames(failure: engine.Failure | None = None) -> list[FrameStatus]:
    """The frames of every thread (resurrect's own excepted) that run code
    from before a reload, outermost first per thread, with where each can
    continue in the new code."""
    names = _thread_names()
    me = threading.get_ident()
    out: list[FrameStatus] = []
    frames = sys._current_frames()
    handing_over = {k for k, f in list(_handing_over.items()) if f is not None}
    for ident, top in frames.items():
        stack: list[types.FrameType] = []
        f: types.FrameType | None = top
        while f is not None:
            if (
                not _is_own_frame(f)
                and f.f_code.co_filename in _reloaded
                and not _is_current(f.f_code)
                and id(f) not in handing_over
            ):
                stack.append(f)
            f = f.f_back
        for f in reversed(stack):
            rp = None
            paused = False
            if failure is not None and f is failure.frame:
                rp, paused = failure.statement.rp, True
            elif ident == me:
                rp = _paused_rp(f)
                paused = rp is not None
            st = frame_status(f, rp, thread=names.get(ident, str(ident)))
            st.paused = paused
            out.append(st)
    return out


def frame_status(
    frame: types.FrameType, rp: Any = None, *, thread: str | None = None
) -> FrameStatus:
    """Whether ``frame`` runs code from before a reload, and where its
    statement is in the new code. ``rp``: the resume point the frame is
    paused at (default: the one of its current instruction)."""
    code = frame.f_code
    if rp is None:
        rp = _paused_rp(frame)
    if rp is None:
        try:
            rp = _core.resume_point_at(code, frame.f_lasti)
        except Exception:
            rp = None
    line = rp.line if rp is not None and rp.line else frame.f_lineno
    st = FrameStatus(
        frame,
        thread or threading.current_thread().name,
        code.co_qualname,
        code.co_filename,
        line,
        "current",
        old_rp=rp,
    )
    if _is_current(code):
        return st

    def unmapped(reason: str, keeps_old: bool = False, removed: bool = False) -> FrameStatus:
        st.state = "unmapped"
        st.reason = reason
        st.keeps_old = keeps_old
        st.removed = removed
        return st

    o = _origin(code)
    base = o.base if o is not None and o.base is not None else code
    bo = _origin(base)
    key = bo.key if bo is not None else None
    filename = code.co_filename
    name = f"{code.co_qualname}()"
    if key is None:
        return unmapped(f"{name} cannot be matched with a function of the new source")
    new_code = _current.get(filename, {}).get(key)
    if new_code is None:
        return unmapped(f"{name} was removed from {_display(filename)}", removed=True)
    if id(new_code) not in _current_ids.get(filename, ()):
        new_code = _instrument_current(filename, key, new_code)
    st.new_code = new_code
    if _body_key(base) == _body_key(new_code) or (
        not base.co_flags & _CO_OPTIMIZED and _own_key(base) == _own_key(new_code)
    ):
        st.state = "moved"
        return st
    if code.co_flags & _GENERATOR_FLAGS:
        return unmapped(
            "a generator or coroutine cannot switch to new code (new calls run the new code)",
            keeps_old=True,
        )
    if not _core.is_instrumented(code):
        return unmapped(
            f"{name} has no resume points (its file is not instrumented)", keeps_old=True
        )
    if rp is None:
        return unmapped(f"no resume point at line {line}")
    if rp.handover_refusal is not None:
        return unmapped(f"the frame cannot hand over to new code here: {rp.handover_refusal}")
    old_src = bo.source if bo is not None else None
    new_src = _texts.get(filename)
    if old_src is None or old_src.tree is None:
        return unmapped(
            "the source the running code was compiled from is unknown (edited before resurrect "
            "took a copy of it)",
            keeps_old=True,
        )
    if new_src is None or new_src.tree is None:
        return unmapped("the new source cannot be read")
    old_def = _find_def(old_src.tree, base.co_qualname, base.co_firstlineno)
    new_def = _find_def(new_src.tree, new_code.co_qualname, new_code.co_firstlineno)
    if old_def is None or new_def is None:
        return unmapped(f"the definition of {name} cannot be found in the source")
    path = _locate(old_def, rp.line) if rp.line else None
    if not path:
        return unmapped(f"line {line} is not a statement of {name}")
    if rp.kind == "loop":
        # The `for` loop whose next item is fetched.
        node: ast.AST = old_def
        cut = None
        for k, (field, i) in enumerate(path):
            node = getattr(node, field)[i]
            if isinstance(node, ast.For | ast.AsyncFor) and node.lineno == rp.line:
                cut = k + 1
        if cut is None:
            return unmapped(f"the loop at line {line} cannot be found")
        path = path[:cut]
    mapped = _map_statement(old_def, new_def, path, new_src.lines)
    if mapped.reason is not None:
        return unmapped(mapped.reason)
    st.notes.extend(mapped.notes)
    old_leaf: ast.AST = old_def
    for field, i in path:
        old_leaf = getattr(old_leaf, field)[i]
    old_rps = _core.resume_points(code)
    new_rps = _core.resume_points(new_code)

    def candidates(rps, node):
        lo, hi = _own_lines(node)
        return sorted(
            (
                r
                for r in rps
                if r.kind == rp.kind
                and list(r.base) == list(rp.base)
                and r.line
                and lo <= r.line <= hi
            ),
            key=lambda r: r.start,
        )

    olds = candidates(old_rps, old_leaf)
    k = next((n for n, r in enumerate(olds) if r.start == rp.start), 0)
    assert mapped.retry is not None
    retry_c = candidates(new_rps, mapped.retry)
    skip_c = candidates(new_rps, mapped.skip) if mapped.skip is not None else []
    if not retry_c:
        kinds = ", ".join(rp.base) or "none"
        return unmapped(
            f"the loops, `with` blocks or `except` clauses around the statement changed "
            f"(the old statement runs inside: {kinds})"
        )
    same = mapped.same and not mapped.inserted_above
    new_rp = retry_c[k] if same and k < len(retry_c) else retry_c[0]
    st.state = "mapped"
    st.retry_start = new_rp.start
    st.new_line = new_rp.line
    if mapped.inserted_above:
        st.notes.append(f"`retry` starts at line {new_rp.line}, added above the failing statement")
    skip_rp = None
    if skip_c:
        skip_rp = skip_c[k] if mapped.same and k < len(skip_c) else skip_c[0]
    if mapped.skip is None:
        st.skip_reason = "the statement was merged with the ones after it in the new code"
    elif skip_rp is None:
        st.skip_reason = "the statement after it cannot be found in the new code"
    elif skip_rp.skip_to is None:
        st.skip_reason = "in the new code this statement has no single next statement"
    else:
        st.skip_start = skip_rp.skip_to
    return st


def _instrument_current(
    filename: str, key: tuple[str, int], plain: types.CodeType
) -> types.CodeType:
    """Resume points for new code no function held at the reload (a module
    body), made when a frame is to continue in it."""
    code = _core.instrument(plain) if filename in _instrumented_files else plain
    src = _texts.get(filename)
    ids = _current_ids.setdefault(filename, set())
    for a, b in zip(_walk(plain), _walk(code), strict=True):
        k = src.key_of_compiled(a) if src is not None else None
        _origins[id(b)] = _Origin(b, filename, src, k)
        ids.add(id(b))
    _current[filename][key] = code
    return code


# ---------------------------------------------------------------------------
# Continuing a frame in the new code

_set_handled_exception: Any = None


def _set_handled(exc: BaseException | None) -> None:
    """``PyErr_SetHandledException``: the exception ``sys.exception()`` returns."""
    global _set_handled_exception
    if _set_handled_exception is None:
        import ctypes

        _set_handled_exception = ctypes.pythonapi.PyErr_SetHandledException
        _set_handled_exception.argtypes = [ctypes.py_object]
        _set_handled_exception.restype = None
    _set_handled_exception(exc)


def continue_in_new_code(
    target: engine.Failure | types.FrameType, action: str | Action = "retry", *, rp: Any = None
) -> Decision:
    """The decision that makes a frame running code from before a reload
    continue in the new code: ``retry`` runs the mapped statement of the new
    code, ``skip`` continues after it; the frame's locals, loop iterators, open
    ``with`` blocks and handled exceptions carry over. For a frame that runs the
    newest code (or equivalent code that only moved), the plain restart.

    ``target`` is the paused failure (or a frame paused at a call: the
    decision is then for ``engine.UnwindTo``). Raises ``RestartRefused`` with
    the reason when no sound mapping exists."""
    if isinstance(target, engine.Failure):
        frame, rp = target.frame, rp or target.statement.rp
    else:
        frame = target
    act = Action(action) if isinstance(action, str) else action
    if act not in (Action.RETRY, Action.SKIP):
        raise ValueError("action must be 'retry' or 'skip'")
    with _lock:
        st = frame_status(frame, rp)
    if st.state in ("current", "moved"):
        return Decision(act)
    if st.state != "mapped":
        raise RestartRefused(st.refused())
    if act is Action.SKIP and st.skip_start is None:
        raise RestartRefused(st.skip_reason or "cannot skip in the new code")
    start = st.retry_start if act is Action.RETRY else st.skip_start
    assert start is not None and st.new_code is not None
    base = _core.frame_stack(frame, st.old_rp.start)
    if base is None or len(base) != len(st.old_rp.base):
        raise RestartRefused(
            "the frame's loops and `with` blocks cannot be read (not on this thread's stack)"
        )
    closure = _closure_for(frame, st.new_code)
    if closure is False:
        raise RestartRefused("the closure this frame runs in cannot be found")
    missing = _unbound_reads(st.new_code, start, _bound_in(frame, st.new_code))
    if missing:
        names = ", ".join(f"`{n}`" for n in missing)
        raise RestartRefused(
            f"the new code would read {names} before assigning it (assign it at the prompt first)"
        )
    try:
        thunk = _continuation_thunk(frame, st.new_code, start, base, closure)
    except _core.BytecodeError as e:
        raise RestartRefused(f"the continuation cannot be built: {e}") from None
    return Decision(Action.TRANSFER, thunk=thunk)


def checked_continuation(frame: types.FrameType, rp: Any) -> Callable[[], Any]:
    """The hand-over thunk that continues ``frame`` after resume point ``rp``
    in a continuation of its own code (the engine's skip where a local read
    without a check would stay unbound: the continuation's reads check).
    Raises ``RestartRefused`` or ``_core.BytecodeError`` with the reason."""
    code = frame.f_code
    base = _core.frame_stack(frame, rp.start)
    if base is None or len(base) != len(rp.base):
        raise RestartRefused(
            "the frame's loops and `with` blocks cannot be read (not on this thread's stack)"
        )
    closure = _closure_for(frame, code)
    if closure is False:
        raise RestartRefused("the closure this frame runs in cannot be found")
    missing = _unbound_reads(code, rp.skip_to, _bound_in(frame, code))
    if missing:
        names = ", ".join(f"`{n}`" for n in missing)
        raise RestartRefused(f"the code after it would read {names} before assigning it")
    return _continuation_thunk(frame, code, rp.skip_to, base, closure)


def _localsplus(code: types.CodeType) -> list[tuple[str, bool]]:
    cells = set(code.co_cellvars)
    names = [(n, n in cells) for n in code.co_varnames]
    names += [(n, True) for n in code.co_cellvars if n not in code.co_varnames]
    return names


def _bound_in(frame: types.FrameType, new_code: types.CodeType) -> set[str]:
    ns = frame.f_locals
    return {n for n, _ in _localsplus(new_code) if n in ns}


def _continuation_thunk(
    frame: types.FrameType,
    new_code: types.CodeType,
    start: int,
    base: list,
    closure: tuple | None,
) -> Callable[[], Any]:
    """Build the continuation of ``new_code`` at byte offset ``start`` from the
    old frame's state (its locals now, the base slots read from its stack), and
    the thunk of the hand-over that runs it: its result is the old frame's."""
    handled = sys.exception()
    kinds = [k for k, _ in base]
    values = [v for _, v in base]
    excs = [i for i, k in enumerate(kinds) if k == "exc_info"]
    restored = list(base)
    # An exc_info slot holds the exception state saved when its `except` began;
    # the continuation wants the exception that `except` handles: the state the
    # next one saved, or (innermost) the current one.
    for n, i in enumerate(excs):
        restored[i] = ("exc_info", values[excs[n + 1]] if n + 1 < len(excs) else handled)
    optimized = bool(new_code.co_flags & _CO_OPTIMIZED)
    restores = []
    if optimized:
        ns = dict(frame.f_locals)
        for idx, (name, is_cell) in enumerate(_localsplus(new_code)):
            if name in ns:
                restores.append((idx, is_cell, ns[name]))
    cont = _core.continuation(new_code, start, restores, restored)
    with _lock:
        no = _origin(new_code)
        _origins[id(cont)] = _Origin(
            cont,
            new_code.co_filename,
            no.source if no else None,
            no.key if no else None,
            base=new_code,
        )
    outer = values[excs[0]] if excs else None
    globals_ = frame.f_globals
    class_ns = None if optimized or frame.f_locals is globals_ else frame.f_locals

    def call() -> Any:
        if not optimized:
            exec(cont, globals_, class_ns)
            return None
        fn = types.FunctionType(cont, globals_, new_code.co_name, None, closure)
        n = new_code.co_argcount
        kw = {name: None for name in new_code.co_varnames[n : n + new_code.co_kwonlyargcount]}
        return fn(*([None] * n), **kw)

    def thunk() -> Any:
        _handing_over[id(frame)] = frame
        try:
            if not excs:
                return call()
            # The continuation's `except` blocks save the exception state
            # current when they begin: make it the one the old frame's
            # outermost saved.
            current = sys.exception()
            _set_handled(outer)
            try:
                return call()
            finally:
                _set_handled(current)
        finally:
            _handing_over.pop(id(frame), None)

    return thunk


#: Old frames waiting for the continuation they handed over to, by id.
_handing_over: dict[int, types.FrameType] = {}


def _closure_for(frame: types.FrameType, new_code: types.CodeType) -> tuple | bool | None:
    """The closure the frame's function has (its free variables are the
    frame's); False when it cannot be found."""
    if not new_code.co_freevars:
        return None
    fn = function_of(frame)
    if fn is None or fn.__closure__ is None or len(fn.__closure__) != len(new_code.co_freevars):
        return False
    return fn.__closure__


def function_of(frame: types.FrameType) -> types.FunctionType | None:
    """The function object a frame runs, also after a reload replaced its
    code (for ``rerun``, and for the closure of a continuation)."""
    code = frame.f_code
    o = _origin(code)
    if o is not None and o.base is not None:
        code = o.base
    candidates: list[types.FunctionType] = []
    for ref in _patched_from.get(id(code), []):
        fn = ref()
        if fn is not None and fn not in candidates:
            candidates.append(fn)
    for obj in gc.get_referrers(code):
        if isinstance(obj, types.FunctionType) and obj.__code__ is code and obj not in candidates:
            candidates.append(obj)
    if not candidates:
        return None
    if len(candidates) == 1 or not code.co_freevars:
        return candidates[0]
    ns = frame.f_locals
    for fn in candidates:
        if fn.__closure__ is None:
            continue
        ok = True
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__, strict=False):
            try:
                value = cell.cell_contents
            except ValueError:
                ok = name not in ns
            else:
                ok = name in ns and ns[name] is value
            if not ok:
                break
        if ok:
            return fn
    return None


def _unbound_reads(code: types.CodeType, start: int, bound: set[str]) -> list[str]:
    """3.13: locals that a superinstruction (which has no unbound check) may
    read before they are assigned, running ``code`` from byte offset ``start``
    with only ``bound`` (and the arguments) bound."""
    if sys.version_info < (3, 13):
        return []
    nargs = code.co_argcount + code.co_kwonlyargcount
    nargs += bool(code.co_flags & _CO_VARARGS) + bool(code.co_flags & _CO_VARKEYWORDS)
    unchecked = set(_core.unchecked_locals(code)) - bound - set(code.co_varnames[:nargs])
    if not unchecked:
        return []
    import dis

    instrs = list(dis.get_instructions(code))
    at = {ins.offset: n for n, ins in enumerate(instrs)}
    entries = dis.Bytecode(code).exception_entries
    stop = {"RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE"}
    always = {
        "JUMP_FORWARD",
        "JUMP_BACKWARD",
        "JUMP_BACKWARD_NO_INTERRUPT",
        "JUMP",
        "JUMP_NO_INTERRUPT",
    }
    # The stubs appended for resume points: from there, only the program's own
    # handler they carry (propagation) is followed; their retry jumps back to a
    # statement start with the same locals, and a skip is the engine's concern.
    stubs = min(
        (
            ins.offset
            for ins in instrs
            if ins.opname == "LOAD_GLOBAL" and str(ins.argval).startswith("__resurrect_")
        ),
        default=len(code.co_code),
    )
    state: dict[int, frozenset[str]] = {}
    work = [(at.get(start, 0), frozenset(unchecked))]
    found: set[str] = set()
    while work:
        n, unbound = work.pop()
        if n is None or n >= len(instrs):
            continue
        prev = state.get(n)
        if prev is not None and unbound <= prev:
            continue
        unbound = unbound | prev if prev is not None else unbound
        state[n] = unbound
        ins = instrs[n]
        name = ins.opname
        varnames = code.co_varnames
        for e in entries:
            if e.start <= ins.offset < e.end:
                work.append((at.get(e.target), unbound))
                break
        if ins.offset >= stubs:
            continue
        if name == "LOAD_FAST_LOAD_FAST":
            for v in (varnames[ins.arg >> 4], varnames[ins.arg & 15]):
                if v in unbound:
                    found.add(v)
        elif name == "STORE_FAST_LOAD_FAST":
            unbound = unbound - {varnames[ins.arg >> 4]}
            if varnames[ins.arg & 15] in unbound:
                found.add(varnames[ins.arg & 15])
        if name in ("STORE_FAST", "STORE_FAST_MAYBE_NULL"):
            unbound = unbound - {ins.argval}
        elif name == "STORE_FAST_STORE_FAST":
            unbound = unbound - {varnames[ins.arg >> 4], varnames[ins.arg & 15]}
        elif name in ("DELETE_FAST", "LOAD_FAST_AND_CLEAR") and ins.argval in unchecked:
            unbound = unbound | {ins.argval}
        if name in stop:
            continue
        target = ins.jump_target if getattr(ins, "jump_target", None) is not None else None
        if target is not None:
            work.append((at.get(target), unbound))
            if name in always:
                continue
        work.append((n + 1, unbound))
    return sorted(found)


def continued_code(code: types.CodeType) -> types.CodeType | None:
    """The code a continuation made by a hand-over continues (its prologue
    comes first), or ``None`` for other code."""
    o = _origin(code)
    return o.base if o is not None else None


def remembered_text(filename: str) -> str | None:
    """The text the running code of ``filename`` was compiled from, when
    known (remembered when it was loaded, or the text of the last reload)."""
    src = _texts.get(filename)
    return src.text if src is not None else None


def source_lines(code: types.CodeType) -> list[str] | None:
    """The source lines ``code`` was compiled from, when a reload has since
    changed its file (``None`` when linecache's text is the right one)."""
    o = _origin(code)
    if o is None or o.source is None:
        return None
    if o.source is _texts.get(o.filename):
        return None
    return o.source.lines


def _statement_node(tree: ast.Module, line: int) -> ast.stmt | None:
    best = None
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and node.lineno == line:
            if best is None or any(n is node for n in ast.walk(best)):
                best = node
    return best


# ---------------------------------------------------------------------------
# Outer frames switch at the next iteration of their loop


class _Switcher:
    """Frames running code from before a reload (not the paused one) continue
    in the new code at the next iteration of a ``for`` loop around them: when
    the loop is about to fetch its next item (a resume point whose instruction
    is routed to its stub), an ``engine.UnwindTo`` raised there hands the frame
    over to a continuation of the new code at the mapped loop, iterators and
    all. 3.12+: a ``sys.monitoring`` line event on the old code (any thread);
    3.11: the reloading thread's trace function (its own frames only)."""

    TOOL_NAMES = "resurrect"

    def __init__(self) -> None:
        self.frames: dict[int, types.FrameType] = {}
        self.tool: int | None = None
        self.codes: dict[int, types.CodeType] = {}

    def schedule(self, statuses: list[FrameStatus]) -> list[FrameStatus]:
        """Arrange for these frames to switch; returns those that will."""
        out = []
        me = threading.current_thread().name
        for st in statuses:
            if st.state != "mapped" or st.paused or st.frame.f_code.co_flags & _GENERATOR_FLAGS:
                continue
            if not any(
                r.kind == "loop" and r.covered for r in _core.resume_points(st.frame.f_code)
            ):
                continue
            if sys.version_info >= (3, 12):
                if not self._monitor(st.frame.f_code):
                    continue
            elif st.thread != me or not self._trace(st.frame):
                continue
            self.frames[id(st.frame)] = st.frame
            out.append(st)
        return out

    def prune(self) -> None:
        """Forget frames that finished."""
        alive = set()
        for top in sys._current_frames().values():
            f: types.FrameType | None = top
            while f is not None:
                alive.add(id(f))
                f = f.f_back
        for key in [k for k in self.frames if k not in alive]:
            self._drop(self.frames[key])

    def _drop(self, frame: types.FrameType) -> None:
        self.frames.pop(id(frame), None)
        code = frame.f_code
        if self.tool is not None and not any(f.f_code is code for f in self.frames.values()):
            self.codes.pop(id(code), None)
            try:
                sys.monitoring.set_local_events(self.tool, code, 0)
            except (ValueError, TypeError):
                pass

    # -- 3.12+

    def _monitor(self, code: types.CodeType) -> bool:
        mon = sys.monitoring
        if self.tool is None:
            for tool in (4, 3, 5):
                if mon.get_tool(tool) is None:
                    mon.use_tool_id(tool, self.TOOL_NAMES)
                    mon.register_callback(tool, mon.events.LINE, self._line)
                    self.tool = tool
                    break
            else:
                return False
        self.codes[id(code)] = code
        mon.set_local_events(self.tool, code, mon.events.LINE)
        return True

    def _line(self, code: types.CodeType, line: int) -> Any:
        frame = sys._getframe(1)
        if id(frame) not in self.frames or self.frames[id(frame)] is not frame:
            return None
        return self._at_line(frame)

    # -- 3.11

    def _trace(self, frame: types.FrameType) -> bool:
        current = sys.gettrace()
        if current is not None and current is not _no_trace:
            return False  # a debugger or the prompt's stepping owns tracing
        frame.f_trace = self._local
        frame.f_trace_lines = True
        sys.settrace(_no_trace)
        return True

    def _retrace(self) -> None:
        if sys.gettrace() is None:
            for f in self.frames.values():
                f.f_trace = self._local
            sys.settrace(_no_trace)

    def _local(self, frame: types.FrameType, event: str, arg: Any) -> Any:
        if event == "line" and id(frame) in self.frames:
            self._at_line(frame)
        elif event == "return":
            self._drop(frame)
        if not self.frames and sys.gettrace() is _no_trace:
            sys.settrace(None)
        return self._local if id(frame) in self.frames else None

    # -- both

    def _at_line(self, frame: types.FrameType) -> Any:
        code = frame.f_code
        lasti = frame.f_lasti
        try:
            rp = _core.resume_point_at(code, lasti)
        except Exception:
            rp = None
        if rp is None or rp.kind != "loop" or rp.start != lasti or not rp.covered:
            return None
        if not _is_current(code):
            probe = engine.UnwindTo(frame, Decision(Action.PROPAGATE))
            try:
                chain = _core.handler_chain(frame, probe, lasti)
            except Exception:
                return None
            if any(kind == "except" and detail is not False for kind, detail in chain) or any(
                kind == "except*" for kind, _ in chain
            ):
                return None  # the program's own `except` would catch the hand-over
            try:
                with _lock:
                    decision = continue_in_new_code(frame, Action.RETRY, rp=rp)
            except RestartRefused:
                decision = None
            self._drop(frame)
            if decision is not None and decision.action is Action.TRANSFER:
                if sys.version_info < (3, 12) and self.frames:
                    # 3.11 turns tracing off when a trace function raises:
                    # the other waiting frames get it back.
                    inner = decision.thunk
                    assert inner is not None

                    def thunk() -> Any:
                        self._retrace()
                        return inner()

                    decision = Decision(decision.action, decision.value, thunk)
                _print(
                    f"resurrect: {code.co_qualname}() continues in the new code "
                    f"(at the loop of line {rp.line})"
                )
                raise engine.UnwindTo(frame, decision)
        else:
            self._drop(frame)
        return None


def _no_trace(frame: types.FrameType, event: str, arg: Any) -> None:
    """The global trace function while 3.11 frames wait to switch: traces
    nothing new (the waiting frames have their own ``f_trace``)."""
    return None


_switcher = _Switcher()


# ---------------------------------------------------------------------------
# The engine: restarts on frames running replaced code


class _EngineHook:
    """What the engine asks about frames whose code a reload replaced (see
    ``engine.edits``)."""

    def refusal(self, frame: types.FrameType, st: engine.Statement, action: Action) -> str | None:
        if action not in (Action.RETRY, Action.SKIP, Action.USE_VALUE) or _is_current(frame.f_code):
            return None
        with _lock:
            status = frame_status(frame, st.rp)
        if status.state in ("current", "moved") or status.keeps_old:
            return None
        if status.state == "unmapped":
            return status.refused()
        if action in (Action.SKIP, Action.USE_VALUE) and status.skip_reason is not None:
            return status.skip_reason
        return None

    def translate(self, frame: types.FrameType, st: engine.Statement, d: Decision) -> Decision:
        if d.action not in (Action.RETRY, Action.SKIP, Action.USE_VALUE) or _is_current(
            frame.f_code
        ):
            return d
        with _lock:
            status = frame_status(frame, st.rp)
        if status.state in ("current", "moved"):
            return d
        if status.keeps_old:
            _print(f"resurrect: {status.describe()}")
            return d
        if d.action is Action.USE_VALUE:
            node = st.node
            if (
                st.rp.kind == "loop"
                or isinstance(node, ast.Return)
                or not isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.Expr)
            ):
                return d
            decision = continue_in_new_code(frame, Action.SKIP, rp=st.rp)
            if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                from . import _frames

                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    _frames.run_in_frame(
                        frame,
                        ast.unparse(t) + " = __resurrect_use_value__",
                        extra={"__resurrect_use_value__": d.value},
                    )
            return decision
        return continue_in_new_code(frame, d.action, rp=st.rp)

    def function_of(self, frame: types.FrameType) -> types.FunctionType | None:
        return function_of(frame)

    def lines_of(self, code: types.CodeType) -> list[str] | None:
        return source_lines(code)


_HOOK = _EngineHook()
_adapted = False


class _CodeKeyed(dict):
    """A dict keyed by code objects' identity: a continuation holds the values
    it restores in ``co_consts``, so it may not be hashable."""

    def get(self, key, default=None):
        v = super().get(id(key))
        return v[1] if v is not None and v[0] is key else default

    def __getitem__(self, key):
        v = super().get(id(key))
        if v is None or v[0] is not key:
            raise KeyError(key)
        return v[1]

    def __setitem__(self, key, value):
        super().__setitem__(id(key), (key, value))

    def __contains__(self, key):
        v = super().get(id(key))
        return v is not None and v[0] is key


def _adapt_engine() -> None:
    """Connect the engine: restarts on frames running replaced code continue
    in the new code. ``engine.edits`` is the hook (see :class:`_EngineHook`);
    until the engine has it, the four functions it would consult it from are
    wrapped here."""
    global _adapted
    if _adapted:
        return
    _adapted = True
    if hasattr(engine, "edits"):
        engine.edits = _HOOK
        return
    if type(getattr(engine, "_rp_cache", None)) is dict:
        # Continuations hold the values they restore in co_consts: they may
        # not be hashable, and this engine looks statements up by code object.
        keyed = _CodeKeyed()
        for k, v in engine._rp_cache.items():
            keyed[k] = v
        engine._rp_cache = keyed
    orig_apply = engine._apply
    orig_refusal = engine.refusal
    orig_function_of = engine._function_of
    orig_statement = engine.statement

    def _apply(frame, st, exc, d):
        return orig_apply(frame, st, exc, _HOOK.translate(frame, st, d))

    def refusal(frame, st, action):
        reason = orig_refusal(frame, st, action)
        return reason if reason is not None else _HOOK.refusal(frame, st, action)

    def _function_of(frame):
        return orig_function_of(frame) or _HOOK.function_of(frame)

    def statement(code, rp_index):
        st = orig_statement(code, rp_index)
        lines = source_lines(code)
        o = _origin(code)
        if lines is not None and st.line and o is not None and o.source is not None:
            st.text = lines[st.line - 1].strip() if st.line <= len(lines) else ""
            tree = o.source.tree
            st.node = _statement_node(tree, st.line) if tree is not None else None
            if st.rp.kind == "loop" and not isinstance(st.node, ast.For | ast.AsyncFor):
                st.node = None
        return st

    engine._apply = _apply
    engine.refusal = refusal
    engine._function_of = _function_of
    engine.statement = statement


# ---------------------------------------------------------------------------
# The prompt's `reload` and `edit`


def _show(prompt: Any, report: ReloadReport) -> None:
    lines = report.lines()
    if not report.ok:
        prompt.error(lines[0])
        lines = lines[1:]
    for line in lines:
        prompt.message(line)


def _cmd_reload(prompt: Any, arg: str) -> None:
    """reload [FILE...]: re-read edited source files and patch the live code."""
    failure = getattr(getattr(prompt, "pause", None), "failure", None)
    import shlex

    paths = shlex.split(arg) or None
    _show(prompt, reload(paths, failure=failure))


def _cmd_edit(prompt: Any, arg: str) -> None:
    """edit [FILE[:LINE]]: open $EDITOR at the line of the selected frame (or
    FILE:LINE), then reload."""
    arg = arg.strip()
    if arg:
        path, _, line_s = (
            arg.rpartition(":") if ":" in arg and arg.rsplit(":", 1)[1].isdigit() else (arg, "", "")
        )
        line = int(line_s) if line_s else 1
    else:
        frame = prompt.frame
        path = frame.f_code.co_filename
        line = prompt._lineno(frame) if hasattr(prompt, "_lineno") else frame.f_lineno
    if not os.path.exists(path):
        prompt.error(f"no such file: {path}")
        return
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    import shlex
    import subprocess

    argv = [*shlex.split(editor), f"+{line}", path]
    console = getattr(prompt, "console", None)
    fd = getattr(console, "fd", None)
    try:
        status = subprocess.call(argv, stdin=fd, stdout=fd, stderr=fd)
    except OSError as e:
        prompt.error(f"cannot run the editor {editor!r}: {e}")
        return
    if status != 0:
        prompt.message(f"the editor exited with status {status}")
    failure = getattr(getattr(prompt, "pause", None), "failure", None)
    _show(prompt, reload(None, failure=failure))


def install(prompt_commands: bool = True) -> None:
    """Connect edit and continue: the engine hook, the prompt's ``reload`` and
    ``edit`` commands, and a copy of the current text of every instrumented
    module's source (what a later reload compares against)."""
    with _lock:
        _adapt_engine()
        if prompt_commands:
            from . import prompt

            prompt.extensions.setdefault("reload", _cmd_reload)
            prompt.extensions.setdefault("edit", _cmd_edit)
        for filename in _candidates():
            if filename not in _texts:
                remember(filename, verified=False)


# ---------------------------------------------------------------------------
# Watching the files


class Watcher:
    """Polls source files from a background thread and reloads those that
    change (see :func:`watch`)."""

    def __init__(
        self,
        paths: Iterable[str | os.PathLike] | None = None,
        interval: float = 0.5,
        on_reload: Callable[[ReloadReport], Any] | None = None,
    ):
        self.paths = [os.fspath(p) for p in paths] if paths is not None else None
        self.interval = interval
        self.on_reload = on_reload or _print_report
        self._stats: dict[str, tuple[int, int] | None] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reports: list[ReloadReport] = []
        for f in self._files():
            self._stats[f] = _stat(f)
            if f not in _texts:
                remember(f, verified=False)

    def _files(self) -> list[str]:
        if self.paths is None:
            return list(_candidates())
        wanted = [_norm(p) for p in self.paths]
        out = []
        for f in _modules_by_file():
            n = _norm(f)
            if any(n == w or n.startswith(w.rstrip(os.sep) + os.sep) for w in wanted):
                out.append(f)
        return out

    def check(self) -> ReloadReport | None:
        """Poll once: reload the files whose modification time or size changed."""
        changed = []
        for f in self._files():
            st = _stat(f)
            if f not in self._stats:
                # First seen (loaded since the last poll): compare with the
                # text it was loaded from, if known.
                self._stats[f] = st
                known = _texts.get(f)
                if known is None:
                    remember(f, verified=False)
                elif known.verified:
                    try:
                        if _read(f) != known.text:
                            changed.append(f)
                    except (OSError, SyntaxError, UnicodeDecodeError):
                        pass
                continue
            if st != self._stats[f]:
                changed.append(f)
        if not changed:
            return None
        time.sleep(min(0.05, self.interval / 4))  # let the editor finish writing
        for f in changed:
            self._stats[f] = _stat(f)
        report = reload(changed)
        self.reports.append(report)
        try:
            self.on_reload(report)
        except Exception:
            pass
        return report

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as e:
                _print(f"resurrect: watching the source files failed: {type(e).__name__}: {e}")

    def start(self) -> Watcher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="resurrect-watch", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


def _print(text: str) -> None:
    stream = sys.__stderr__ or sys.stderr
    try:
        stream.write(text + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def _print_report(report: ReloadReport) -> None:
    if report.ok and not report.changed:
        return
    _print("\n".join("resurrect: " + line for line in report.lines()))


def watch(
    paths: Iterable[str | os.PathLike] | None = None,
    interval: float = 0.5,
    on_reload: Callable[[ReloadReport], Any] | None = None,
) -> Watcher:
    """Reload edited source files while the program runs: a daemon thread polls
    the files of the instrumented modules (or ``paths``) every ``interval``
    seconds and reloads those that changed. Functions get the new code at
    their next call; frames already running keep their old code until they
    return. Reports go to ``on_reload`` (default: printed on standard error)."""
    with _lock:
        _adapt_engine()
    return Watcher(paths, interval, on_reload).start()


def _take_over_loaded_sources() -> None:
    """Texts of modules the import hook loaded before this module existed."""
    from . import instrument

    while instrument.loaded_sources:
        path, source = instrument.loaded_sources.popitem()
        remember(path, source)


_take_over_loaded_sources()


class _CallableModule(types.ModuleType):
    """``resurrect.reload(...)`` calls :func:`reload` while
    ``resurrect.reload.watch`` etc. stay reachable."""

    def __call__(self, *args: Any, **kwargs: Any) -> ReloadReport:
        return reload(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
