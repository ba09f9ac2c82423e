"""Code identity across processes and source edits.

A checkpoint never holds instrumented code: it names each code object by its
source file and its **path** in the file's tree of code objects — one
``(co_name, n)`` step per level, ``n`` counting earlier siblings of the same
name (``(("Job", 0), ("run", 0))`` is method ``run`` of class ``Job``). When
resuming, the path is followed in the *current* source, compiled and given
resume points, so a fixed bug stays fixed.

Statements are mapped as edit-and-continue maps them: a frame's statement is
the innermost AST statement owning its resume point; its position in the
function (the chain of ``body``/``orelse``/``handlers`` steps) must lead, in
the edited function, to a statement of the same kind under the same block
headers (same ``for`` targets and iterables, ``with`` items, ``try`` clauses,
``if``/``while`` tests), so that the saved loop iterators, context managers and
handled exceptions still belong to the blocks they were taken from. The
innermost frame's statement itself may change (that is the fix; it is retried
from its start); an outer frame's call statement may not (it is re-entered to
call the next frame). Anything else is refused with the reason.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import os
import sys
import types
from typing import Any

from . import _core
from .checkpoint_format import CheckpointError

#: Source text of files as they were loaded, by absolute path (see :func:`note_source`).
_snapshots: dict[str, str] = {}

#: Continuations built when resuming: ``id(continuation) -> (continuation, code, shift)``
#: where ``code`` is the code it continues and ``shift`` the prologue's size in bytes.
continuations: dict[int, tuple[types.CodeType, types.CodeType, int]] = {}


def note_source(path: str, text: str | bytes) -> None:
    """Record the text a file had when its code was compiled (the launcher
    calls this for ``__main__``): a checkpoint then names code in it even if
    the file was edited on disk since."""
    if isinstance(text, bytes):
        text = _decode(text)
    _snapshots[os.path.abspath(path)] = text


def _decode(data: bytes) -> str:
    import io
    import tokenize

    return tokenize.TextIOWrapper(io.BytesIO(data)).read() if data else ""


def read_source(path: str) -> str:
    with open(path, "rb") as f:
        return _decode(f.read())


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def origin(code: types.CodeType) -> tuple[types.CodeType, int]:
    """The code a continuation continues and the prologue's size (bytes), or
    ``(code, 0)`` for ordinary code. Knows the continuations built when
    resuming and those built by ``reload`` (edit and continue)."""
    entry = continuations.get(id(code))
    if entry is not None and entry[0] is code:
        return entry[1], entry[2]
    reload = sys.modules.get("resurrect.reload")
    get = getattr(reload, "_origin", None)
    if get is not None:
        try:
            base = getattr(get(code), "base", None)
        except Exception:
            base = None
        if isinstance(base, types.CodeType):
            return base, len(code.co_code) - len(base.co_code)
    return code, 0


def _texts_of(path: str) -> list[str]:
    """Texts the running code of ``path`` may have been compiled from, most
    likely first: a snapshot taken when it was loaded, the text ``reload``
    last compiled, the file now."""
    out = []
    if path in _snapshots:
        out.append(_snapshots[path])
    from . import instrument

    loaded = instrument.loaded_sources.get(path)  # until `reload` takes them over
    if loaded is not None:
        try:
            text = _decode(loaded)
        except (SyntaxError, UnicodeDecodeError):
            text = None
        if text is not None and text not in out:
            out.append(text)
    reload = sys.modules.get("resurrect.reload")
    remembered = getattr(reload, "_texts", {}).get(path)
    text = getattr(remembered, "text", None)
    if isinstance(text, str) and text not in out:
        out.append(text)
    try:
        disk = read_source(path)
    except (OSError, SyntaxError, UnicodeDecodeError):
        disk = None
    if disk is not None and disk not in out:
        out.append(disk)
    return out


@dataclasses.dataclass(frozen=True)
class CodeRef:
    """A code object named by file and path (see the module's docstring)."""

    file: str
    path: tuple[tuple[str, int], ...]
    qualname: str
    firstlineno: int
    freevars: tuple[str, ...]

    def describe(self) -> str:
        name = self.qualname if self.path else "<module>"
        return f"{name} ({os.path.basename(self.file)}:{self.firstlineno})"


def _children(code: types.CodeType) -> list[tuple[tuple[str, int], types.CodeType]]:
    seen: dict[str, int] = {}
    out = []
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            n = seen.get(c.co_name, 0)
            seen[c.co_name] = n + 1
            out.append(((c.co_name, n), c))
    return out


class SourceTree:
    """A source file's text, compiled and instrumented, with its code paths."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text
        self.sha256 = sha256_text(text)
        try:
            code = compile(text, path, "exec", dont_inherit=True)
        except SyntaxError as e:
            raise CheckpointError(f"{path}: line {e.lineno}: {e.msg}") from None
        self.code = _core.instrument(code)
        self.by_path: dict[tuple, types.CodeType] = {(): self.code}
        self.by_key: dict[tuple[str, int], list[tuple]] = {}
        stack = [((), self.code)]
        while stack:
            p, c = stack.pop()
            self.by_key.setdefault((c.co_qualname, c.co_firstlineno), []).append(p)
            for step, child in _children(c):
                cp = (*p, step)
                self.by_path[cp] = child
                stack.append((cp, child))
        self._ast: ast.Module | None = None

    @property
    def ast(self) -> ast.Module:
        if self._ast is None:
            self._ast = ast.parse(self.text, self.path)
        return self._ast

    def find(self, code: types.CodeType) -> tuple | None:
        """The path of a code object equal to ``code`` (same instructions), if any."""
        for p in self.by_key.get((code.co_qualname, code.co_firstlineno), ()):
            c = self.by_path[p]
            if (
                c.co_code == code.co_code
                and c.co_names == code.co_names
                and c.co_varnames == code.co_varnames
            ):
                return p
        return None


class SourceIndex:
    """Names running code objects (when taking a checkpoint)."""

    def __init__(self) -> None:
        self.trees: dict[str, SourceTree] = {}

    def tree(self, path: str, code: types.CodeType | None = None) -> SourceTree:
        """The text of ``path`` the running code comes from: the first one
        that compiles to ``code`` (when given); one text per file."""
        tree = self.trees.get(path)
        if tree is not None:
            return tree
        texts = _texts_of(path)
        if not texts:
            raise CheckpointError(f"the source file {path} cannot be read")
        for text in texts:
            try:
                candidate = SourceTree(path, text)
            except CheckpointError:
                continue
            if code is None or candidate.find(code) is not None:
                self.trees[path] = candidate
                return candidate
        what = code.co_qualname if code is not None else "it"
        raise CheckpointError(
            f"{path} was edited since {what} was loaded: the running code no longer "
            "matches its source (reload it, or checkpoint before editing)"
        )

    def ref(self, code: types.CodeType) -> CodeRef | None:
        """The name of instrumented ``code`` (or of the code a continuation
        continues); ``None`` for code without resume points."""
        code, _ = origin(code)
        if not _core.is_instrumented(code):
            return None
        path = code.co_filename
        if not os.path.isabs(path) or not os.path.isfile(path):
            raise CheckpointError(
                f"{code.co_qualname} comes from {path}, which is not a source file: "
                "code without a file cannot be resumed against its source"
            )
        tree = self.tree(path, code)
        p = tree.find(code)
        if p is None:
            raise CheckpointError(
                f"the running code of {path} comes from more than one version of it "
                f"({code.co_qualname} does not match the rest): reload it first"
            )
        return CodeRef(path, p, code.co_qualname, code.co_firstlineno, code.co_freevars)


# ---------------------------------------------------------------------------
# Resolving against the current source


def _def_node(
    tree: ast.Module, code: types.CodeType | None, name: str, firstlineno: int, path: tuple
):
    """The AST node a code object was compiled from (``tree`` for module code)."""
    if not path:
        return tree
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, kinds):
            continue
        node_name = "<lambda>" if isinstance(node, ast.Lambda) else node.name
        if node_name != name:
            continue
        decorators = getattr(node, "decorator_list", None)
        first = decorators[0].lineno if decorators else node.lineno
        if first == firstlineno:
            found.append(node)
    if len(found) == 1:
        return found[0]
    return None


def _dump(node: ast.AST | None) -> str:
    return "" if node is None else ast.dump(node, annotate_fields=False, include_attributes=False)


def signature_of(node: ast.AST) -> str:
    """What must not change for a function object to take new code: its
    parameters (with their default expressions), decorators and for classes
    the bases."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return _dump(node.args) + "|" + "|".join(_dump(d) for d in node.decorator_list)
    if isinstance(node, ast.Lambda):
        return _dump(node)
    if isinstance(node, ast.ClassDef):
        return (
            "|".join(_dump(b) for b in node.bases) + "|" + "|".join(_dump(k) for k in node.keywords)
        )
    return ""


class Resolver:
    """Maps the code and statements of a checkpoint to the current source."""

    def __init__(self, old_sources: dict[str, str]):
        self.old_sources = old_sources
        self.new: dict[str, SourceTree] = {}
        self.old: dict[str, SourceTree] = {}
        self.notes: list[str] = []

    def changed(self, file: str) -> bool:
        return self.new_tree(file).sha256 != sha256_text(self.old_sources.get(file, ""))

    def new_tree(self, file: str) -> SourceTree:
        tree = self.new.get(file)
        if tree is None:
            try:
                text = read_source(file)
            except FileNotFoundError:
                raise CheckpointError(f"the source file {file} is missing") from None
            except OSError as e:
                raise CheckpointError(
                    f"the source file {file} cannot be read: {e.strerror}"
                ) from None
            tree = self.new[file] = SourceTree(file, text)
        return tree

    def old_tree(self, file: str) -> SourceTree:
        tree = self.old.get(file)
        if tree is None:
            text = self.old_sources.get(file)
            if text is None:
                raise CheckpointError(f"the checkpoint lacks the source of {file}")
            tree = self.old[file] = SourceTree(file, text)
        return tree

    def code(self, ref: CodeRef) -> types.CodeType:
        """The current code at ``ref``'s path (checked to be the same function)."""
        tree = self.new_tree(ref.file)
        code = tree.by_path.get(ref.path)
        what = ref.describe()
        if code is None:
            raise CheckpointError(f"{what} no longer exists in {ref.file}")
        if code.co_freevars != ref.freevars:
            raise CheckpointError(
                f"the variables {ref.qualname} takes from enclosing functions changed "
                f"({', '.join(ref.freevars) or 'none'} -> {', '.join(code.co_freevars) or 'none'})"
            )
        if self.changed(ref.file) and ref.path:
            old_node = self.old_def(ref)
            new_node = _def_node(tree.ast, code, code.co_name, code.co_firstlineno, ref.path)
            if old_node is None or new_node is None:
                raise CheckpointError(f"{what} cannot be found in the edited {ref.file}")
            if signature_of(old_node) != signature_of(new_node):
                kind = "bases" if isinstance(old_node, ast.ClassDef) else "parameters or decorators"
                raise CheckpointError(
                    f"the {kind} of {ref.qualname} changed; they were evaluated before the "
                    "checkpoint and cannot be evaluated again"
                )
        return code

    def old_def(self, ref: CodeRef):
        return _def_node(
            self.old_tree(ref.file).ast,
            None,
            ref.path[-1][0] if ref.path else "",
            ref.firstlineno,
            ref.path,
        )

    def new_def(self, ref: CodeRef, code: types.CodeType):
        return _def_node(
            self.new_tree(ref.file).ast, code, code.co_name, code.co_firstlineno, ref.path
        )


# ---------------------------------------------------------------------------
# Statements


_BLOCK_FIELDS = ("body", "orelse", "handlers", "finalbody", "cases")
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def _child_blocks(node: ast.AST):
    """``(field, index, child)`` for the statements (and handlers/cases) directly in ``node``."""
    for f in _BLOCK_FIELDS:
        items = getattr(node, f, None)
        if isinstance(items, list):
            for i, child in enumerate(items):
                if isinstance(child, ast.stmt | ast.excepthandler | ast.match_case):
                    yield f, i, child


def _span(node: ast.AST) -> tuple[int, int]:
    if isinstance(node, ast.match_case):
        start = node.pattern.lineno
        end = max((_span(s)[1] for s in node.body), default=start)
        return start, end
    decorators = getattr(node, "decorator_list", None)
    start = decorators[0].lineno if decorators else node.lineno
    return start, node.end_lineno or node.lineno


def header(node: ast.AST) -> str:
    """The part of a block statement that its body depends on."""
    if isinstance(node, ast.For | ast.AsyncFor):
        return f"for {_dump(node.target)} in {_dump(node.iter)}"
    if isinstance(node, ast.While | ast.If):
        return f"{type(node).__name__} {_dump(node.test)}"
    if isinstance(node, ast.With | ast.AsyncWith):
        return "with " + ",".join(_dump(i) for i in node.items)
    if isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
        handlers = ",".join(f"{_dump(h.type)} as {h.name}" for h in node.handlers)
        return f"{type(node).__name__} [{handlers}] else={bool(node.orelse)} finally={bool(node.finalbody)}"
    if isinstance(node, ast.ExceptHandler):
        return f"except {_dump(node.type)} as {node.name}"
    if isinstance(node, ast.Match):
        return f"match {_dump(node.subject)}"
    if isinstance(node, ast.match_case):
        return f"case {_dump(node.pattern)} if {_dump(node.guard)}"
    if isinstance(node, _SCOPES):
        return signature_of(node)
    return _dump(node)


def owner_path(scope: ast.AST, line: int, loop: bool) -> list[tuple[str, int, ast.AST]] | None:
    """The steps from a function (or module) node to the innermost statement
    that owns a resume point on ``line`` (for a ``loop`` resume point: the
    innermost ``for`` around it). Nested functions and classes are statements
    of their scope; their bodies are not entered."""
    steps: list[tuple[str, int, ast.AST]] = []
    node = scope
    while True:
        nxt = None
        for f, i, child in _child_blocks(node):
            lo, hi = _span(child)
            if lo <= line <= hi:
                nxt = (f, i, child)
                break
        if nxt is None:
            break
        steps.append(nxt)
        if isinstance(nxt[2], _SCOPES):
            break
        node = nxt[2]
    if loop:
        while steps and not isinstance(steps[-1][2], ast.For | ast.AsyncFor):
            steps.pop()
    else:
        # except handlers and match cases are blocks, not statements
        while steps and not isinstance(steps[-1][2], ast.stmt):
            steps.pop()
    return steps or None


def key(node: ast.AST) -> tuple:
    """What identifies a statement among its siblings across an edit: a
    function or class by its name, a block by its header, any other
    statement by its whole text (without positions)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return (type(node).__name__, node.name)
    if any(True for _ in _child_blocks(node)):
        return (type(node).__name__, header(node))
    return (type(node).__name__, _dump(node))


def _align(old: list, new: list, i: int, last: bool) -> int | None:
    """The index in ``new`` of ``old[i]`` after an edit of the list (a diff of
    the statements' keys). An edited statement is found in the edited run of
    statements that replaced it: at the same offset when the run kept its
    length, else (for the last step only) at the run's start."""
    import difflib

    sm = difflib.SequenceMatcher(a=[key(n) for n in old], b=[key(n) for n in new], autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if not i1 <= i < i2:
            continue
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            return j1 + (i - i1)
        if tag == "replace" and last and i2 - i1 == 1:
            return j1
        return None
    return None


def follow(
    scope: ast.AST, steps: list[tuple[str, int, Any]], old_scope: ast.AST | None = None
) -> list[tuple[str, int, ast.AST]] | None:
    """The steps in ``scope`` (an edited function) that correspond to
    ``steps`` in ``old_scope`` (its saved version)."""
    out = []
    node = scope
    old_node = old_scope
    for k, (f, i, old_child) in enumerate(steps):
        items = getattr(node, f, None)
        if not isinstance(items, list):
            return None
        if old_node is not None:
            old_items = getattr(old_node, f, None)
            j = (
                _align(old_items, items, i, k == len(steps) - 1)
                if isinstance(old_items, list)
                else None
            )
        else:
            j = i if i < len(items) else None
        if j is None:
            return None
        node = items[j]
        old_node = old_child
        out.append((f, j, node))
    return out


def owned_points(code: types.CodeType, scope: ast.AST) -> dict[tuple, list[Any]]:
    """Resume points of ``code`` grouped by owner (a tuple of steps) and kind,
    in order of their offsets."""
    groups: dict[tuple, list[Any]] = {}
    for rp in sorted(_core.resume_points(code), key=lambda r: r.start):
        if rp.line is None:
            continue
        steps = owner_path(scope, rp.line, rp.kind == "loop")
        key = (tuple((f, i) for f, i, _ in steps or ()), rp.kind)
        groups.setdefault(key, []).append(rp)
    return groups


def text_of(tree: SourceTree, node: ast.AST) -> str:
    seg = ast.get_source_segment(tree.text, node) or ""
    first = seg.splitlines()[0] if seg else ""
    return first.strip()
