"""Child side of ``scripts/stdlib_suite.py``: instrument, then run ``python -m test``.

Usage: ``python _stdlib_suite_boot.py REGRTEST-ARGS...`` with, in the environment,

* ``RESURRECT_SUITE_GLOBS``: the source files to instrument (shell globs on
  absolute paths), one per line;
* ``RESURRECT_SUITE_REPORT``: where to write the JSON report at exit;
* ``RESURRECT_SUITE_SYSPATH`` (optional): a directory to append to ``sys.path``
  so that ``resurrect`` can be imported.

Before regrtest starts it calls ``resurrect.install(on_error="raise",
instrument=GLOBS)``, which installs the import hook, so the target modules
imported later (by regrtest, by the test module, by
``import_fresh_module``) are loaded through it. Target modules that are already
loaded (``os``, ``posixpath``, ``stat`` ... are imported at start-up, ``enum``,
``ast``, ``dataclasses`` ... by resurrect itself) are not re-imported: a second
copy of a module would give its classes a second identity (``enum.Enum`` of the
tests would not be the ``enum.Enum`` the rest of the process uses). Instead every
live function object whose code comes from a target file gets its ``__code__``
replaced by the instrumented code (functions in module and class namespaces,
closures, functions held only by other objects alike). Nested code objects are
instrumented with their parent, so functions created later from instrumented
code are instrumented too.

The report counts, per target file, the functions reachable from the module
namespace after each load (module functions, methods, static/class methods,
properties) and the live function objects at exit, and how many of each run
instrumented code. Functions with nothing to cover (a body of ``pass`` or
``return CONST`` on 3.12+, which the core leaves unchanged) are counted apart;
any other function left uninstrumented is named in the report.
"""

import os
import sys

GLOBS = [g for g in os.environ.get("RESURRECT_SUITE_GLOBS", "").splitlines() if g]
if os.environ.get("RESURRECT_SUITE_SYSPATH"):
    sys.path.append(os.environ["RESURRECT_SUITE_SYSPATH"])

# Everything imported before `add_globs` below that is a target is patched there.
import atexit  # noqa: E402
import gc  # noqa: E402
import types  # noqa: E402
import weakref  # noqa: E402

import resurrect  # noqa: E402
from resurrect import _core, engine  # noqa: E402
from resurrect import instrument as _instrument  # noqa: E402

_FunctionType = types.FunctionType

#: Per target file: how it was loaded and its module functions, instrumented/total.
STATS: dict[str, dict] = {}
_is_target_cache: dict[str, bool] = {}


def is_target(filename) -> bool:
    if not isinstance(filename, str):
        return False
    hit = _is_target_cache.get(filename)
    if hit is None:
        hit = _is_target_cache[filename] = _instrument.matches(filename, GLOBS)
    return hit


def code_filenames(mod) -> set[str]:
    """The ``co_filename`` of ``mod``'s code: its source path, or for a module
    frozen into the interpreter (``os``, ``posixpath``, ``stat`` ... since 3.11)
    ``<frozen NAME>``."""
    out = set()
    filename = getattr(mod, "__file__", None)
    if isinstance(filename, str):
        out.update((filename, os.path.abspath(filename)))
    spec = getattr(mod, "__spec__", None)
    if spec is not None and spec.origin == "frozen":
        out.add(f"<frozen {spec.name}>")
    return out


def module_functions(mod) -> list:
    """The functions defined by ``mod`` reachable from its namespace: module
    functions, methods, static and class methods, property accessors, and the
    functions behind ``functools`` wrappers (``__wrapped__``)."""
    out: list = []
    seen: set[int] = set()
    names = code_filenames(mod)

    def add(value, depth: int = 0) -> None:
        if id(value) in seen or depth > 8:
            return
        seen.add(id(value))
        if type(value) is _FunctionType:  # not a Mock(spec=function)
            if value.__code__.co_filename in names:
                out.append(value)
            wrapped = getattr(value, "__wrapped__", None)
            if wrapped is not None:
                add(wrapped, depth + 1)
        elif isinstance(value, staticmethod | classmethod):
            add(value.__func__, depth + 1)
        elif isinstance(value, property):
            for f in (value.fget, value.fset, value.fdel):
                if f is not None:
                    add(f, depth + 1)
        elif isinstance(value, type):
            if getattr(value, "__module__", None) == mod.__name__:
                for v in list(vars(value).values()):
                    add(v, depth + 1)
        else:
            wrapped = getattr(value, "__wrapped__", None)  # lru_cache, singledispatch
            if type(wrapped) is _FunctionType:
                add(wrapped, depth + 1)

    for v in list(vars(mod).values()):
        add(v)
    return out


_trivial_cache: dict = {}


def nothing_to_cover(code) -> bool:
    """Whether ``code`` has no instruction a resume point would cover (a body
    of ``pass`` or ``return CONST`` on 3.12+): the core leaves it unchanged."""
    hit = _trivial_cache.get(code)
    if hit is None:
        try:
            hit = all(rp.covered == 0 for rp in _core.resume_points(code))
        except Exception:
            hit = False
        _trivial_cache[code] = hit
    return hit


def classify(fns) -> tuple[int, int, list[str]]:
    """(instrumented, nothing to cover, names of the others) of ``fns``."""
    inst = trivial = 0
    missing = []
    for f in fns:
        if _core.is_instrumented(f.__code__):
            inst += 1
        elif nothing_to_cover(f.__code__):
            trivial += 1
        else:
            missing.append(f.__qualname__)
    return inst, trivial, sorted(missing)


def record_module(mod, how: str) -> None:
    filename = getattr(mod, "__file__", None)
    if not filename:
        return
    fns = module_functions(mod)
    inst, trivial, missing = classify(fns)
    entry = STATS.setdefault(
        os.path.abspath(filename),
        {"module": mod.__name__, "loads": 0, "how": how, "module_fns": [0, 0, 0], "missing": []},
    )
    entry["loads"] += 1
    # Keep the most complete load (a fresh import may block a C accelerator).
    if len(fns) >= entry["module_fns"][1]:
        entry["module_fns"] = [inst, len(fns) - trivial, trivial]
        entry["missing"] = missing[:20]


def patch_live_functions() -> int:
    """Give every live function whose code comes from a target file
    instrumented code; returns how many were changed."""
    cache: dict = {}
    patched = 0
    for obj in gc.get_objects():
        if type(obj) is _FunctionType:
            code = obj.__code__
            if is_target(code.co_filename) and not _core.is_instrumented(code):
                new = cache.get(code)
                if new is None:
                    new = cache[code] = resurrect.instrument_code(code)
                obj.__code__ = new
                patched += 1
    return patched


def live_counts() -> dict[str, list]:
    """Per target file: [instrumented, total less those with nothing to cover,
    names of the others] of the live function objects."""
    by_file: dict[str, list] = {}
    for obj in gc.get_objects():
        if type(obj) is _FunctionType:
            fn = obj.__code__.co_filename
            if is_target(fn):
                key = fn if fn.startswith("<") else os.path.abspath(fn)
                by_file.setdefault(key, []).append(obj)
    live = {}
    for key, fns in by_file.items():
        inst, trivial, missing = classify(fns)
        live[key] = [inst, len(fns) - trivial, missing[:20]]
    return live


def write_report(path: str, early: list[str], patched: int, hook_error: str | None) -> None:
    import json

    record_pending(final=True)
    data = {
        "globs": GLOBS,
        "hook_error": hook_error,
        "early": early,
        "patched": patched,
        "modules": STATS,
        "live": live_counts(),
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)


#: Modules the import hook created and that were not counted yet: (weak
#: reference to the module, source path).
_pending: list[tuple[weakref.ref, str]] = []


def record_pending(final: bool = False) -> None:
    """Count the modules loaded through the hook whose code has finished
    running (all of them when ``final``). Counting happens after the fact, at
    the next import through the hook or at exit: a wrapper around
    ``exec_module`` would be a frame on the stack while the module runs, and
    shift the location of warnings the module issues at import."""
    keep = []
    for ref, path in _pending:
        mod = ref()
        if mod is None:
            continue  # gone already: the live count at exit still sees its functions
        if not final and getattr(getattr(mod, "__spec__", None), "_initializing", False):
            keep.append((ref, path))  # still running (a nested import)
        elif getattr(mod, "__file__", None) == path:
            record_module(mod, "import hook")
    _pending[:] = keep


def main() -> None:
    loader_cls = _instrument._InstrumentingLoader
    original_create = loader_cls.create_module

    def create_module(self, spec):
        # What importlib does when create_module returns None, keeping a handle
        # on the module to count its functions once it has run.
        module = original_create(self, spec)
        if module is None:
            module = types.ModuleType(spec.name)
        record_pending()
        _pending.append((weakref.ref(module), self.path))
        return module

    loader_cls.create_module = create_module
    hook_error = None
    try:
        # The public way in: every exception propagates as plain Python would.
        resurrect.install(on_error="raise", instrument=GLOBS)
    except Exception as e:  # a resurrect bug: reported, and the patching below still runs
        hook_error = f"install(instrument=...) raised {type(e).__name__}: {e}"
        engine.config.on_error = "raise"
        engine.enable()
        if not any(isinstance(f, _instrument.InstrumentingFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _instrument.InstrumentingFinder(GLOBS))

    early = sorted(
        name for name, mod in list(sys.modules.items()) if is_target(getattr(mod, "__file__", None))
    )
    for name in early:
        for filename in code_filenames(sys.modules[name]):
            _is_target_cache[filename] = True
    patched = patch_live_functions()
    for name in early:
        record_module(sys.modules[name], "already loaded: code of live functions replaced")
    report = os.environ.get("RESURRECT_SUITE_REPORT")
    if report:
        atexit.register(write_report, report, early, patched, hook_error)

    # Run regrtest as `python -m test ARGS` would.
    import runpy

    sys.path[0] = os.getcwd()
    runpy.run_module("test", run_name="__main__", alter_sys=True)


main()
