#!/usr/bin/env python3
"""What resume points cost: instrumented against plain CPython, side by side in
one process. Prints ratios and the goals next to them; never asserts.

1. **pyperformance** workloads (richards, nbody, chaos, deltablue, raytrace, go
   and more pure-Python ones): each benchmark's ``run_benchmark.py`` is loaded
   twice, plain and with every code object instrumented, and their workloads
   are timed in interleaved repetitions. Goal: geometric mean of the ratios
   instrumented/plain <= 1.01 (the happy path runs the original instructions).
2. **Caught exceptions**: loops in which half of the iterations raise a
   ``KeyError`` that the program's own ``except`` catches, in the same frame and
   in called functions. Every raise passes a resume point, whose dispatcher
   must find out that the program handles it. Goal: ratio <= 1.2.
3. **Instrumenting the stdlib**: every code object of every stdlib module,
   timed (goal <= 5 us per code object on average) and measured (goal: total
   ``co_code`` at most 2.5x; exception and line table growth reported).

Usage::

    python benches/run_all.py                 # everything (a few minutes)
    python benches/run_all.py --quick         # fewer, shorter repetitions
    python benches/run_all.py --only exceptions,stdlib
    python benches/run_all.py --benchmarks richards,go --reps 15

``benches/README.md`` explains how to read the output.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import gc
import glob
import importlib.util
import marshal
import math
import os
import statistics
import sys
import sysconfig
import time
import traceback
import types
from collections.abc import Callable, Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
if importlib.util.find_spec("resurrect") is None:  # run from a source checkout
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

import resurrect  # noqa: E402
from resurrect import _core, engine  # noqa: E402

#: The pyperformance benchmarks the goal is about.
REQUIRED = ("richards", "nbody", "chaos", "deltablue", "raytrace", "go")
#: More pure-Python ones, reported too.
EXTRA = (
    "fannkuch",
    "float",
    "hexiom",
    "nqueens",
    "spectral_norm",
    "unpack_sequence",
    "generators",
    "coroutines",
    "comprehensions",
    "richards_super",
    "deepcopy",
    "pyflate",
)

GOAL_PYPERF = 1.01
GOAL_EXC = 1.2
GOAL_US_PER_CODE = 5.0
GOAL_CODE_GROWTH = 2.5

perf = time.perf_counter


# ---------------------------------------------------------------------------
# Loading a file twice: plain and instrumented


def count_code(code: types.CodeType) -> int:
    return 1 + sum(count_code(c) for c in code.co_consts if isinstance(c, types.CodeType))


def _functions(ns: dict) -> Iterator[types.FunctionType]:
    seen: set[int] = set()
    stack = list(ns.values())
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if isinstance(v, types.FunctionType):
            yield v
        elif isinstance(v, staticmethod | classmethod):
            stack.append(v.__func__)
        elif isinstance(v, property):
            stack.extend(f for f in (v.fget, v.fset, v.fdel) if f is not None)
        elif isinstance(v, type) and v.__module__ == ns.get("__name__"):
            stack.extend(vars(v).values())


def load_variant(path: str, instrument: bool, name: str) -> tuple[dict, int, int]:
    """Execute ``path`` in a fresh namespace called ``name``, with every code
    object instrumented or not. Returns the namespace and how many of its
    functions are instrumented, out of how many (those with nothing to cover
    left out)."""
    with open(path, encoding="utf-8") as f:
        code = compile(f.read(), path, "exec")
    if instrument:
        code = resurrect.instrument_code(code)
    ns: dict = {"__name__": name, "__file__": path, "__builtins__": builtins}
    exec(code, ns)
    fns = [f for f in _functions(ns) if f.__code__.co_filename == path]
    fns = [f for f in fns if _core.is_instrumented(f.__code__) or not _nothing_to_cover(f.__code__)]
    return ns, sum(_core.is_instrumented(f.__code__) for f in fns), len(fns)


def _nothing_to_cover(code: types.CodeType) -> bool:
    """A body of ``pass`` or ``return CONST`` (3.12+): no instruction can raise,
    the core leaves the code as it is."""
    try:
        return all(rp.covered == 0 for rp in _core.resume_points(code))
    except Exception:
        return False


# ---------------------------------------------------------------------------
# Timing: interleaved repetitions, minimum per variant


class Sample:
    """One workload in both variants, timed ``reps`` times each, interleaved
    (plain, instrumented, instrumented, plain, ...), so that drift in the
    machine's speed hits both alike."""

    def __init__(self, name: str, plain: Callable[[int], float], inst: Callable[[int], float]):
        self.name = name
        self.plain_fn, self.inst_fn = plain, inst
        self.plain: list[float] = []
        self.inst: list[float] = []
        self.loops = 1

    def calibrate(self, target: float) -> None:
        """Choose the loop count so one timing takes about ``target`` seconds
        (the timers return seconds per loop)."""
        self.plain_fn(1)
        self.inst_fn(1)  # warm up both
        per = max(self.plain_fn(1), 1e-9)
        if per * 20 < target:  # too short to trust: measure again on more loops
            per = max(self.plain_fn(max(1, int(target / 10 / per))), 1e-9)
        self.loops = max(1, round(target / per))

    def run(self, reps: int, budget: float = math.inf) -> None:
        """Time each variant ``reps`` times, fewer (at least 3) if that would take
        more than ``budget`` seconds per variant (a workload whose single call
        is long, such as fannkuch)."""
        if budget < math.inf:
            per_timing = self.plain_fn(self.loops) * self.loops
            reps = max(3, min(reps, int(budget / max(per_timing, 1e-9))))
        for r in range(reps):
            order = (self.plain_fn, self.inst_fn) if r % 2 == 0 else (self.inst_fn, self.plain_fn)
            for fn in order:
                t = fn(self.loops)
                (self.plain if fn is self.plain_fn else self.inst).append(t)

    @property
    def ratio(self) -> float:
        return min(self.inst) / min(self.plain)

    @property
    def median_ratio(self) -> float:
        return statistics.median(i / p for i, p in zip(self.inst, self.plain, strict=True))


def _timer_func(func, args) -> Callable[[int], float]:
    """A ``bench_func`` workload: seconds per call."""

    def timed(loops: int) -> float:
        t0 = perf()
        for _ in range(loops):
            func(*args)
        return (perf() - t0) / loops

    return timed


def _timer_time_func(func, args) -> Callable[[int], float]:
    """A ``bench_time_func`` workload (it times ``loops`` iterations itself)."""

    def timed(loops: int) -> float:
        return func(loops, *args) / loops

    return timed


# ---------------------------------------------------------------------------
# 1. pyperformance


class _Recorder:
    """Stands in for ``pyperf.Runner`` while a benchmark's ``__main__`` block
    runs: records the workloads instead of spawning worker processes."""

    def __init__(self, *args, add_cmdline_args=None, **kwargs):
        self.metadata: dict = {}
        self.argparser = argparse.ArgumentParser(add_help=False)
        self.workloads: list[tuple[str, Callable[[int], float]]] = []

    def parse_args(self, args=None):
        self.args = self.argparser.parse_args([])
        return self.args

    def bench_func(self, name, func, *args, inner_loops=None, **kwargs):
        self.workloads.append((name, _timer_func(func, args)))

    def bench_time_func(self, name, func, *args, inner_loops=None, **kwargs):
        self.workloads.append((name, _timer_time_func(func, args)))

    def bench_async_func(self, name, func, *args, inner_loops=None, **kwargs):
        import asyncio

        def call(*a):
            return asyncio.run(func(*a))

        self.workloads.append((name, _timer_func(call, args)))


@contextlib.contextmanager
def _recording() -> Iterator[list[_Recorder]]:
    import pyperf

    made: list[_Recorder] = []

    def runner(*args, **kwargs):
        r = _Recorder(*args, **kwargs)
        made.append(r)
        return r

    saved = pyperf.Runner
    pyperf.Runner = runner
    try:
        yield made
    finally:
        pyperf.Runner = saved


def pyperformance_dir() -> str | None:
    spec = importlib.util.find_spec("pyperformance")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = os.path.join(spec.submodule_search_locations[0], "data-files", "benchmarks")
    return d if os.path.isdir(d) else None


def bench_pyperformance(names: list[str], reps: int, target: float) -> list[dict]:
    root = pyperformance_dir()
    if root is None or importlib.util.find_spec("pyperf") is None:
        print("  pyperformance is not installed: `pip install pyperformance` (skipped)")
        return []
    rows = []
    print(
        f"  {'benchmark':<24} {'fns instr':>9} {'loops':>6} {'plain':>10} {'instr':>10}"
        f" {'ratio':>7} {'median':>7}"
    )
    for name in names:
        path = os.path.join(root, f"bm_{name}", "run_benchmark.py")
        if not os.path.exists(path):
            print(f"  {name:<24} not in this pyperformance version")
            continue
        sys.path.insert(0, os.path.dirname(path))
        try:
            variants = []
            for inst in (False, True):
                with _recording() as made:
                    _, n_inst, n_fns = load_variant(path, inst, "__main__")
                workloads = [w for r in made for w in r.workloads]
                variants.append((workloads, n_inst, n_fns))
        except Exception as e:  # a benchmark that cannot load here is reported, not fatal
            print(f"  {name:<24} cannot load: {type(e).__name__}: {e}")
            continue
        finally:
            sys.path.remove(os.path.dirname(path))
        (plain_w, _, _), (inst_w, n_inst, n_fns) = variants
        for (wname, plain_fn), (_, inst_fn) in zip(plain_w, inst_w, strict=True):
            s = Sample(wname, plain_fn, inst_fn)
            gc.collect()
            s.calibrate(target)
            s.run(reps, budget=max(2.0, reps * target * 2))
            rows.append(
                {"bench": name, "workload": wname, "ratio": s.ratio, "median": s.median_ratio}
            )
            print(
                f"  {wname:<24} {f'{n_inst}/{n_fns}':>9} {s.loops:>6} {_fmt_t(min(s.plain)):>10}"
                f" {_fmt_t(min(s.inst)):>10} {s.ratio:>7.3f} {s.median_ratio:>7.3f}",
                flush=True,
            )
    return rows


def _fmt_t(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.2f} us"


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


# ---------------------------------------------------------------------------
# 2. Caught exceptions


def bench_exceptions(reps: int, target: float) -> list[dict]:
    path = os.path.join(HERE, "workloads_exceptions.py")
    plain_ns, _, _ = load_variant(path, False, "workloads_exceptions")
    inst_ns, n_inst, n_fns = load_variant(path, True, "workloads_exceptions")
    print(f"  workloads_exceptions.py: {n_inst}/{n_fns} functions instrumented")
    print(
        f"  {'workload':<16} {'plain/iter':>11} {'instr/iter':>11} {'ratio':>7} {'median':>7}"
        f" {'extra/raise':>12}  what"
    )
    table = {i: i for i in range(0, 1 << 16, 2)}
    n = 1000
    rows = []
    for key, (plain_fn, what) in plain_ns["WORKLOADS"].items():
        inst_fn = inst_ns["WORKLOADS"][key][0]
        if plain_fn(n, table) != inst_fn(n, table):
            print(f"  {key:<16} DIFFERENT RESULTS plain {plain_fn(n, table)} / {inst_fn(n, table)}")
            continue

        s = Sample(key, _timer_func(plain_fn, (n, table)), _timer_func(inst_fn, (n, table)))
        s.calibrate(target)
        s.run(reps)
        p, i = min(s.plain) / n, min(s.inst) / n  # per iteration
        extra = (i - p) * 2  # per raise: half of the iterations raise
        rows.append({"workload": key, "ratio": s.ratio, "median": s.median_ratio})
        print(
            f"  {key:<16} {_fmt_t(p):>11} {_fmt_t(i):>11} {s.ratio:>7.3f}"
            f" {s.median_ratio:>7.3f} {_fmt_t(extra):>12}  {what}",
            flush=True,
        )
    return rows


# ---------------------------------------------------------------------------
# 3. Instrumenting the stdlib


def stdlib_files(with_tests: bool) -> list[str]:
    paths = sysconfig.get_paths()
    root = paths["stdlib"]
    skip = {os.path.abspath(paths["purelib"]), os.path.abspath(paths["platlib"])}
    out = []
    for path in sorted(glob.glob(os.path.join(root, "**", "*.py"), recursive=True)):
        if any(path.startswith(s + os.sep) for s in skip) or "site-packages" in path:
            continue
        rel = os.path.relpath(path, root).split(os.sep)
        if not with_tests and any(p in ("test", "tests", "idle_test") for p in rel[:-1]):
            continue
        out.append(path)
    return out


def load_code(path: str) -> types.CodeType | None:
    """The module code of ``path``: from its ``.pyc`` when that is current (fast),
    else compiled."""
    try:
        pyc = importlib.util.cache_from_source(path)
        with open(pyc, "rb") as f:
            data = f.read()
        st = os.stat(path)
        flags = int.from_bytes(data[4:8], "little")
        if (
            data[:4] == importlib.util.MAGIC_NUMBER
            and flags == 0
            and int.from_bytes(data[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(data[12:16], "little") == st.st_size & 0xFFFFFFFF
        ):
            return marshal.loads(data[16:])
    except (OSError, ValueError, EOFError):
        pass
    try:
        with open(path, "rb") as f:
            return compile(f.read(), path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, UnicodeDecodeError, OSError):
        return None  # lib2to3 test data and the like


def _sizes(code: types.CodeType) -> tuple[int, int, int, int]:
    """Total (code objects, co_code, co_exceptiontable, co_linetable) bytes of
    ``code`` and everything nested in it."""
    n, c, e, line = 1, len(code.co_code), len(code.co_exceptiontable), len(code.co_linetable)
    for k in code.co_consts:
        if isinstance(k, types.CodeType):
            n2, c2, e2, l2 = _sizes(k)
            n, c, e, line = n + n2, c + c2, e + e2, line + l2
    return n, c, e, line


def _count_instrumented(code: types.CodeType) -> int:
    own = 1 if _core.is_instrumented(code) else 0
    return own + sum(
        _count_instrumented(k) for k in code.co_consts if isinstance(k, types.CodeType)
    )


def bench_stdlib(with_tests: bool, reps: int) -> dict:
    files = stdlib_files(with_tests)
    best = math.inf
    before = after = (0, 0, 0, 0)
    instrumented = 0
    errors: list[str] = []
    for rep in range(reps):
        codes = [c for c in (load_code(p) for p in files) if c is not None]
        gc.collect()
        gc.disable()
        try:
            total = 0.0
            out = []
            for code in codes:
                t0 = perf()
                try:
                    new = _core.instrument(code)
                except Exception as e:  # a bug in the core: report it
                    total += perf() - t0
                    if rep == 0:
                        errors.append(f"{code.co_filename}: {type(e).__name__}: {e}")
                    new = code
                else:
                    total += perf() - t0
                out.append(new)
        finally:
            gc.enable()
        best = min(best, total)
        if rep == 0:
            b = [_sizes(c) for c in codes]
            a = [_sizes(c) for c in out]
            before = tuple(sum(x[i] for x in b) for i in range(4))
            after = tuple(sum(x[i] for x in a) for i in range(4))
            instrumented = sum(_count_instrumented(c) for c in out)
    n_code = before[0]
    res = {
        "files": len(files),
        "code_objects": n_code,
        "instrumented": instrumented,
        "seconds": best,
        "us_per_code": best / n_code * 1e6 if n_code else float("nan"),
        "code": (before[1], after[1]),
        "exceptiontable": (before[2], after[2]),
        "linetable": (before[3], after[3]),
        "errors": errors,
    }
    print(
        f"  {len(files)} files, {n_code} code objects, {instrumented} given resume points "
        f"({n_code - instrumented} left as they were: nothing to cover, or not analysable)"
    )
    print(f"  instrument(): {best:.3f} s in all, {res['us_per_code']:.2f} us per code object")
    for label, key in (
        ("co_code", "code"),
        ("co_exceptiontable", "exceptiontable"),
        ("co_linetable", "linetable"),
    ):
        b, a = res[key]
        print(f"  {label:<18} {b / 1e6:8.2f} MB -> {a / 1e6:8.2f} MB  ({a / b:.2f}x)")
    total_b = res["code"][0] + res["exceptiontable"][0] + res["linetable"][0]
    total_a = res["code"][1] + res["exceptiontable"][1] + res["linetable"][1]
    res["all_tables"] = (total_b, total_a)
    print(
        f"  {'all three':<18} {total_b / 1e6:8.2f} MB -> {total_a / 1e6:8.2f} MB  ({total_a / total_b:.2f}x)"
    )
    for e in errors[:10]:
        print(f"  ERROR {e}")
    if len(errors) > 10:
        print(f"  ... {len(errors) - 10} more errors")
    return res


# ---------------------------------------------------------------------------
# Summary


def _row(label: str, value: str, goal: str, ok: bool | None) -> None:
    mark = "" if ok is None else ("ok" if ok else "MISSED")
    print(f"  {label:<44} {value:>12}   {goal:<10} {mark}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--only",
        default="pyperformance,exceptions,stdlib",
        help="sections to run (comma-separated)",
    )
    ap.add_argument(
        "--benchmarks",
        help=f"pyperformance benchmarks (default: {','.join(REQUIRED + EXTRA)})",
    )
    ap.add_argument("--reps", type=int, default=11, help="timings per variant (default 11)")
    ap.add_argument("--target", type=float, default=0.05, help="seconds per timing (default 0.05)")
    ap.add_argument(
        "--quick", action="store_true", help="--reps 5 --target 0.02, the six required benchmarks"
    )
    ap.add_argument(
        "--with-tests", action="store_true", help="stdlib section: include test packages"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.reps, args.target = 5, 0.02
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    names = (
        [b.strip() for b in args.benchmarks.split(",") if b.strip()]
        if args.benchmarks
        else list(REQUIRED if args.quick else REQUIRED + EXTRA)
    )

    engine.config.on_error = "raise"
    engine.enable()
    print(
        f"resurrect benchmarks: CPython {sys.version.split()[0]} ({sys.executable}); "
        f"{args.reps} interleaved timings of ~{args.target * 1e3:.0f} ms per variant, "
        "ratio = min(instrumented) / min(plain), median = median of paired ratios"
    )

    py_rows: list[dict] = []
    exc_rows: list[dict] = []
    std: dict | None = None

    def section(title, run, default):
        print(f"\n== {title}", flush=True)
        try:
            return run()
        except Exception:  # report and go on: this script measures, it does not gate
            traceback.print_exc(file=sys.stdout)
            print("  (section failed)")
            return default

    if "pyperformance" in sections:
        py_rows = section(
            "pyperformance workloads, every function of the benchmark instrumented",
            lambda: bench_pyperformance(names, args.reps, args.target),
            [],
        )
    if "exceptions" in sections:
        exc_rows = section(
            "half of the iterations raise a KeyError the program's own `except` catches",
            lambda: bench_exceptions(args.reps, args.target),
            [],
        )
    if "stdlib" in sections:
        std = section(
            "instrumenting every code object of the stdlib",
            lambda: bench_stdlib(args.with_tests, reps=1 if args.quick else 3),
            None,
        )

    print(f"\n== summary (CPython {sys.version.split()[0]})")
    print(f"  {'measure':<44} {'measured':>12}   {'goal':<10}")
    if py_rows:
        req = [r["ratio"] for r in py_rows if r["bench"] in REQUIRED]
        allr = [r["ratio"] for r in py_rows]
        if req:
            g = geomean(req)
            _row(
                f"pyperformance geomean, the {len(req)} of the goal",
                f"{g:.3f}",
                f"<= {GOAL_PYPERF}",
                g <= GOAL_PYPERF,
            )
            med = geomean([r["median"] for r in py_rows if r["bench"] in REQUIRED])
            _row("  the same from paired medians (noise check)", f"{med:.3f}", "", None)
        if len(allr) > len(req):
            g = geomean(allr)
            _row(
                f"pyperformance geomean (all {len(allr)} workloads)",
                f"{g:.3f}",
                f"<= {GOAL_PYPERF}",
                g <= GOAL_PYPERF,
            )
        worst = max(py_rows, key=lambda r: r["ratio"])
        _row(f"  worst: {worst['workload']}", f"{worst['ratio']:.3f}", "", None)
    for r in exc_rows:
        _row(
            f"KeyError caught: {r['workload']}",
            f"{r['ratio']:.3f}",
            f"<= {GOAL_EXC}",
            r["ratio"] <= GOAL_EXC,
        )
    if std is not None:
        us = std["us_per_code"]
        _row(
            "instrument time per code object",
            f"{us:.2f} us",
            f"<= {GOAL_US_PER_CODE} us",
            us <= GOAL_US_PER_CODE,
        )
        b, a = std["code"]
        _row(
            "co_code size after/before",
            f"{a / b:.2f}x",
            f"<= {GOAL_CODE_GROWTH}x",
            a / b <= GOAL_CODE_GROWTH,
        )
        b, a = std["exceptiontable"]
        _row("co_exceptiontable size after/before", f"{a / b:.2f}x", "", None)
        b, a = std["linetable"]
        _row("co_linetable size after/before", f"{a / b:.2f}x", "", None)
        b, a = std["all_tables"]
        _row("code + both tables after/before", f"{a / b:.2f}x", "", None)
        if std["errors"]:
            _row("instrument() errors (bugs)", str(len(std["errors"])), "0", False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
