"""How quickly the prompt appears, and what `resurrect run` costs when nothing fails.

Prints (never asserts):

* the time from an exception to the prompt on the terminal (goal: < 50 ms),
  for a small program and for one whose source file is long (highlighting);
* the happy-path cost of ``resurrect run`` against ``python`` on small
  pure-Python workloads, start-up included (goal: ratio <= 1.02 on real work).

    python benches/bench_prompt.py [--runs N]

Run it with the interpreter to measure; ``resurrect`` must be importable (an
installed venv, or ``PYTHONPATH=python``). Needs ``pexpect`` for the prompt
latency.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

FAILING = textwrap.dedent(
    """\
    import sys, time

    def parse(text):
        return int(text)

    def main():
        values = ["1", "2", "x"]
        total = 0
        for v in values:
            if v == "x":
                sys.stdout.write(f"T0 {time.time():.6f}\\n")
                sys.stdout.flush()
            total += parse(v)
        print(total)

    main()
    """
)

WORKLOADS = {
    "start-up (empty program)": "pass\n",
    "compute (loops, calls, dicts, strings)": textwrap.dedent(
        """\
        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)

        def words(n):
            counts = {}
            for i in range(n):
                w = "w" + str(i % 97)
                counts[w] = counts.get(w, 0) + 1
            return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]

        def primes(n):
            sieve = bytearray([1]) * (n + 1)
            sieve[0:2] = b"\\0\\0"
            for i in range(2, int(n ** 0.5) + 1):
                if sieve[i]:
                    sieve[i * i :: i] = bytes(len(range(i * i, n + 1, i)))
            return sum(sieve)

        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y

            def norm2(self):
                return self.x * self.x + self.y * self.y

        print(fib(27), words(600_000), primes(1_000_000))
        print(sum(Point(i, i + 1).norm2() for i in range(600_000)))
        """
    ),
    "exceptions the program catches itself": textwrap.dedent(
        """\
        def lookup(d, k):
            try:
                return d[k]
            except KeyError:
                return None

        def convert(s):
            try:
                return int(s)
            except ValueError:
                return 0

        d = {i: i for i in range(100)}
        hits = sum(1 for i in range(600_000) if lookup(d, i % 200) is not None)
        zeros = sum(convert("x" if i % 3 else str(i)) for i in range(300_000))
        print(hits, zeros)
        """
    ),
}


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    try:
        import resurrect

        root = str(Path(resurrect.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    except (ImportError, TypeError):
        repo_python = Path(__file__).resolve().parent.parent / "python"
        env["PYTHONPATH"] = os.pathsep.join(
            [str(repo_python), *filter(None, [env.get("PYTHONPATH")])]
        )
    env["NO_COLOR"] = "1"
    env["TERM"] = "xterm"
    # As installed: bytecode caches in use (the warm-up run writes them).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def prompt_latency(program: Path, runs: int, env: dict[str, str]) -> list[float] | None:
    try:
        import pexpect
    except ImportError:
        print("  (pexpect is not installed: skipped)")
        return None
    times = []
    for _ in range(runs):
        child = pexpect.spawn(
            sys.executable,
            ["-m", "resurrect", "run", str(program)],
            env=env,
            encoding="utf-8",
            timeout=30,
        )
        child.expect(r"T0 (\d+\.\d+)")
        t0 = float(child.match.group(1))
        child.expect_exact("(resurrect) ")
        times.append(time.time() - t0)
        child.sendline("quit")
        child.expect(pexpect.EOF)
        child.close()
    return times


def wall(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def happy_path(program: Path, runs: int, env: dict[str, str]) -> tuple[float, float]:
    plain = [sys.executable, str(program)]
    ours = [sys.executable, "-m", "resurrect", "run", "--on-error", "raise", str(program)]
    wall(plain, env)  # warm the caches (.pyc, file system)
    wall(ours, env)
    a, b = [], []
    for _ in range(runs):  # interleaved, so drifts in machine load hit both
        a.append(wall(plain, env))
        b.append(wall(ours, env))
    return statistics.median(a), statistics.median(b)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    env = child_env()
    print(f"python {sys.version.split()[0]} ({sys.executable}), {args.runs} runs each")
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        small = tmpdir / "fails.py"
        small.write_text(FAILING)
        long = tmpdir / "fails_long.py"
        filler = "".join(
            f"def helper_{i}(x):\n    '''Padding {i}.'''\n    return x + {i}  # comment\n\n\n"
            for i in range(600)
        )
        long.write_text(filler + FAILING)

        print("\nexception -> prompt on screen (goal < 50 ms)")
        for label, program in (
            ("small program", small),
            (f"long source ({len(long.read_text().splitlines())} lines)", long),
        ):
            times = prompt_latency(program, args.runs, env)
            if times:
                print(
                    f"  {label:32} median {ms(statistics.median(times))}, "
                    f"min {ms(min(times))}, max {ms(max(times))}"
                )

        print("\nhappy path: `resurrect run` / `python` (goal <= 1.02)")
        print("  (`total` includes start-up; `work` subtracts each one's empty-program time)")
        empty_plain = empty_ours = None
        for label, source in WORKLOADS.items():
            program = tmpdir / "workload.py"
            program.write_text(source)
            plain, ours = happy_path(program, args.runs, env)
            line = (
                f"  {label:40} python {ms(plain):>10}  resurrect {ms(ours):>10}  "
                f"total {ours / plain:.3f}"
            )
            if empty_plain is None:
                empty_plain, empty_ours = plain, ours
                line += f"  (start-up costs {ms(ours - plain)} more)"
            else:
                assert empty_ours is not None
                work = (ours - empty_ours) / max(plain - empty_plain, 1e-9)
                line += f"  work {work:.3f}"
            print(line)


if __name__ == "__main__":
    main()
