"""How long edit and continue takes: from saving an edited 2,000-line module to
the running program calling the patched code.

Prints (never asserts), in milliseconds (goal: < 50 ms):

* ``reload()`` after one function body changed (lines unchanged);
* ``reload()`` after a line was inserted at the top (every function moves);
* ``reload()`` with a class method changed while instances are alive;
* through ``watch()`` (polling every 50 ms): save to patched code (goal: the
  polling interval plus 50 ms);
* the parts: compiling the text, finding the function objects (one pass over
  the garbage collector's objects), adding resume points and parsing for the
  whole module (a reload does these for the changed parts only), and the ratio
  of a reload to a plain ``compile()`` of the same text.

Wall and CPU time are both printed: on a busy machine the wall time grows.

    python benches/bench_reload.py [--runs N] [--lines N]

Run it with the interpreter to measure; ``resurrect`` must be importable (an
installed venv, or ``PYTHONPATH=python``).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from resurrect import _core, instrument
from resurrect import reload as rl


def generate(lines: int) -> str:
    """A module of about ``lines`` lines: functions with loops, `with` and
    `try` blocks, classes with methods, properties and static methods."""
    out = ['"""A generated module."""', "", "import math", "", "SCALE = 3", ""]
    i = 0
    while len(out) < lines:
        out += [
            f"def func_{i}(a, b=2):",
            "    total = 0",
            "    for k in range(a):",
            f"        if k % 3 == {i % 3}:",
            f"            total += k * b + {i}",
            "        else:",
            f"            total -= math.sqrt(k + {i})",
            "    try:",
            "        values = [v * SCALE for v in range(b)]",
            "    except ValueError as e:",
            "        values = [str(e)]",
            "    return total + len(values)  # @marker",
            "",
            "",
        ]
        if i % 8 == 0:
            out += [
                f"class Model{i}:",
                "    def __init__(self, x):",
                "        self.x = x",
                "",
                "    def value(self):",
                f"        return self.x + {i}  # @method",
                "",
                "    @property",
                "    def double(self):",
                "        return self.x * 2",
                "",
                "    @staticmethod",
                "    def make():",
                f"        return Model{i}(1)",
                "",
                "",
            ]
        i += 1
    return "\n".join(out) + "\n"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def summary(
    name: str, times: list[float], cpu: list[float] | None = None, goal: float = 0.050
) -> None:
    med = statistics.median(times)
    verdict = "within" if med < goal else "over"
    line = f"  {name:<50} median {ms(med)}   min {ms(min(times))}"
    if cpu:
        line += f"   cpu {ms(statistics.median(cpu))}"
    print(f"{line}   ({verdict} the {goal * 1000:.0f} ms goal)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--lines", type=int, default=2000)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_reload_"))
    source = generate(args.lines)
    path = tmp / "generated_module.py"
    path.write_text(source)
    sys.path.insert(0, str(tmp))
    instrument.add_globs([str(path)])
    module = importlib.import_module("generated_module")
    rl.install(prompt_commands=False)
    n_lines = len(source.splitlines())
    n_funcs = sum(1 for name in vars(module) if name.startswith("func_"))
    instances = [module.Model0(k) for k in range(100)]  # alive while methods change
    print(
        f"reload latency, Python {sys.version.split()[0]}: a {n_lines}-line module, {n_funcs} functions"
    )
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        print(
            f"(load average {load:.1f} on {os.cpu_count()} CPUs: wall times above the cpu times mean a busy machine)"
        )

    counter = [0]

    def edit_body() -> tuple[str, int]:
        counter[0] += 1
        c = counter[0]
        text = path.read_text().replace(
            "    return total + len(values)  # @marker",
            f"    return total + len(values) + {c}  # @marker",
            1,
        )
        return text, c

    def undo(c: int) -> None:
        path.write_text(path.read_text().replace(f" + {c}  # @marker", "  # @marker", 1))
        rl.reload()

    def timed(change, check) -> tuple[float, float]:
        """Save ``change()``'s text, reload, call the patched code: (wall, cpu)."""
        text, expected = change()
        t0, c0 = time.perf_counter(), time.process_time()
        path.write_text(text)
        report = rl.reload()
        value = check()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert report.ok and value == expected, (str(report), value, expected)
        return wall, cpu

    print()
    # 0. the first reload of the file also compares with the text it was loaded from
    wall, cpu = timed(lambda: (edit_body()[0], 2 + counter[0]), lambda: module.func_0(0))
    undo(counter[0])
    print(f"  {'first reload of the file':<50} {ms(wall)}   cpu {ms(cpu)}")

    # 1. one function body changed
    walls, cpus = [], []
    for _ in range(args.runs):
        w, c = timed(lambda: (edit_body()[0], 2 + counter[0]), lambda: module.func_0(0))
        walls.append(w)
        cpus.append(c)
        undo(counter[0])
    summary("one function changed: save -> new code", walls, cpus)

    # 2. everything moves
    walls, cpus = [], []
    for r in range(args.runs):
        w, c = timed(lambda r=r: (f"# moved {r}\n" + path.read_text(), 2), lambda: module.func_0(0))
        walls.append(w)
        cpus.append(c)
    summary("a line inserted at the top (every function moves)", walls, cpus)

    # 3. a method changed while instances are alive
    walls, cpus = [], []
    for r in range(args.runs):
        w, c = timed(
            lambda r=r: (
                path.read_text().replace(
                    "return self.x + 0  # @method", f"return self.x + {1000 + r}  # @method", 1
                ),
                5 + 1000 + r,
            ),
            lambda: instances[5].value(),
        )
        walls.append(w)
        cpus.append(c)
        path.write_text(
            path.read_text().replace(
                f"return self.x + {1000 + r}  # @method", "return self.x + 0  # @method", 1
            )
        )
        rl.reload()
    summary("a method changed, 100 instances alive", walls, cpus)

    # 4. through the watcher
    times = []
    seen = threading.Event()
    watcher = rl.watch([str(path)], interval=0.05, on_reload=lambda report: seen.set())
    try:
        time.sleep(0.1)
        for _ in range(args.runs):
            text, c = edit_body()
            seen.clear()
            t0 = time.perf_counter()
            path.write_text(text)
            seen.wait(5)
            while module.func_0(0) != 2 + c and time.perf_counter() - t0 < 5:
                time.sleep(0.001)
            times.append(time.perf_counter() - t0)
            seen.clear()
            path.write_text(path.read_text().replace(f" + {c}  # @marker", "  # @marker", 1))
            seen.wait(5)
            time.sleep(0.06)
    finally:
        watcher.stop()
    summary("watch(interval=0.05): save -> new code", times, goal=0.050 + 0.050)

    # 5. the parts
    text = path.read_text()

    def best(fn, runs=args.runs):
        out = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return min(out)

    t_read = best(lambda: rl._read(str(path)))
    t_scan = best(lambda: rl._scan({str(path)}))
    t_compile = best(lambda: compile(text, str(path), "exec", dont_inherit=True))
    t_instrument = (
        best(lambda: _core.instrument(compile(text, str(path), "exec", dont_inherit=True)))
        - t_compile
    )
    t_parse = best(lambda: ast.parse(text))
    print()
    print("  the parts (best of the runs):")
    print(f"    read the file                          {ms(t_read)}")
    print(f"    compile() the text                     {ms(t_compile)}   (reload: always)")
    print(f"    find the function objects (gc pass)    {ms(t_scan)}   (reload: always)")
    print(
        f"    resume points for the whole module     {ms(t_instrument)}   (reload: changed functions only)"
    )
    print(
        f"    parse the whole text (ast)             {ms(t_parse)}   (reload: changed statements only)"
    )
    print()
    print(
        f"  ratio reload() / plain compile() of the text: {statistics.median(walls) / t_compile:.1f}x"
    )
    for k in list(sys.modules):
        if k == "generated_module":
            del sys.modules[k]
    os.environ.get("NO_CLEANUP") or [p.unlink() for p in tmp.glob("*.py")]


if __name__ == "__main__":
    main()
