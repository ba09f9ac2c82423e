"""Which code gets resume points: `@resumable`, and the import hook behind
`install(instrument=[globs])`."""

from __future__ import annotations

import fnmatch
import importlib.machinery
import os
import sys
import types
from collections.abc import Iterable

from . import _core

__all__ = ["InstrumentingFinder", "instrument_code", "instrument_module", "matches", "resumable"]


def instrument_code(code: types.CodeType) -> types.CodeType:
    """``code`` with resume points (nested code objects included)."""
    return _core.instrument(code)


def resumable(fn):
    """Give ``fn`` (a function, method, generator or coroutine function, or a
    class, whose methods all get them) resume points."""
    _remember_importing(fn)
    if isinstance(fn, type):
        for value in vars(fn).values():
            _instrument_member(value)
        return fn
    target = getattr(fn, "__func__", fn)
    target.__code__ = instrument_code(target.__code__)
    return fn


#: The module spec whose source was last remembered, by path (one read per import).
_remembered_specs: dict[str, object] = {}


def _remember_importing(obj) -> None:
    """Remember the source of ``obj``'s module while that module is being
    imported (decorators run then): it is the text the code was compiled from,
    what a later reload compares the file with. Without it, a reload must
    recompile the file and compare code, which fails for code another import
    hook rewrote (pytest's assertions) and for a file edited since: the module
    would look changed to every reload."""
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    spec = getattr(module, "__spec__", None)
    path = getattr(module, "__file__", None)
    # `_initializing`: set by importlib while the module's code runs (3.4+).
    if not getattr(spec, "_initializing", False) or not isinstance(path, str):
        return
    if _remembered_specs.get(path) is spec:
        return
    _remembered_specs[path] = spec
    loader = getattr(spec, "loader", None)
    try:
        data = loader.get_data(path) if hasattr(loader, "get_data") else None
    except OSError:
        data = None
    if data is None:
        return
    reload = sys.modules.get("resurrect.reload")
    if reload is not None:
        reload.remember(path, data)
    else:
        loaded_sources[path] = data


def _instrument_member(value, module: str | None = None, seen: set[int] | None = None) -> None:
    """Instrument a function, or the functions of a class (and of its nested
    classes defined in ``module``), visiting each class once: classes may refer
    to each other (``urllib.parse``'s result types)."""
    if seen is None:
        seen = set()
    if isinstance(value, types.FunctionType):
        value.__code__ = instrument_code(value.__code__)
    elif isinstance(value, staticmethod | classmethod):
        _instrument_member(value.__func__, module, seen)
    elif isinstance(value, property):
        for f in (value.fget, value.fset, value.fdel):
            if f is not None:
                _instrument_member(f, module, seen)
    elif isinstance(value, type):
        if id(value) in seen or (module is not None and value.__module__ != module):
            return
        seen.add(id(value))
        for v in vars(value).values():
            _instrument_member(v, module or value.__module__, seen)


def instrument_module(module: types.ModuleType) -> None:
    """Give the functions and classes defined in an already loaded module resume points."""
    name = module.__name__
    for value in list(vars(module).values()):
        if isinstance(value, types.FunctionType) and value.__module__ == name:
            _instrument_member(value)
        elif isinstance(value, type) and value.__module__ == name:
            _instrument_member(value)


def _norm(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def matches(path: str | None, globs: Iterable[str]) -> bool:
    """Whether a source file is selected by any of ``globs`` (shell patterns on the
    absolute path; a directory selects everything below it)."""
    if not path or not path.endswith(".py"):
        return False
    p = _norm(path)
    for g in globs:
        gn = _norm(g) if not any(ch in g for ch in "*?[") else g
        if os.path.isdir(gn) and (p.startswith(gn.rstrip(os.sep) + os.sep)):
            return True
        if fnmatch.fnmatch(p, gn) or fnmatch.fnmatch(p, _norm(g)):
            return True
    return False


#: Source of modules loaded with resume points before `resurrect.reload` was
#: imported (it takes them over when it is), by path.
loaded_sources: dict[str, bytes] = {}


class _InstrumentingLoader(importlib.machinery.SourceFileLoader):
    """A source loader whose code objects get resume points. The `.pyc` cache
    keeps the original code: a later run without resurrect is unaffected."""

    def get_code(self, fullname):
        code = super().get_code(fullname)
        if code is None:
            return None
        # What a later reload compares the edited file with (only when reload
        # is in use: importing it here could import `typing` while `typing`
        # itself is being imported through this loader).
        reload = sys.modules.get("resurrect.reload")
        if reload is not None:
            reload.remember(self.path)
        else:
            try:
                loaded_sources[self.path] = self.get_data(self.path)
            except OSError:
                pass
        return instrument_code(code)


class InstrumentingFinder:
    """Finds modules as the normal path finder does and loads those matching
    the globs through :class:`_InstrumentingLoader`. (A meta path finder by
    protocol: ``importlib.abc`` would cost start-up time for nothing.)"""

    def invalidate_caches(self) -> None:
        pass

    def __init__(self, globs: Iterable[str]):
        self.globs = list(globs)

    def find_spec(self, fullname, path, target=None):
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return None  # let the normal finders handle it
        if not matches(spec.origin, self.globs):
            return None
        spec.loader = _InstrumentingLoader(spec.loader.name, spec.loader.path)
        return spec


_finder: InstrumentingFinder | None = None


def add_globs(globs: Iterable[str]) -> InstrumentingFinder:
    """Instrument modules matching ``globs`` from now on, and those already loaded."""
    global _finder
    globs = list(globs)
    if _finder is None:
        _finder = InstrumentingFinder(globs)
        sys.meta_path.insert(0, _finder)
    else:
        _finder.globs.extend(g for g in globs if g not in _finder.globs)
    for module in list(sys.modules.values()):
        f = getattr(module, "__file__", None)
        if isinstance(module, types.ModuleType) and matches(f, globs):
            instrument_module(module)
    return _finder
