"""What checkpoints cost: writing one of a program holding numpy arrays
against a plain ``pickle.dump`` of the same arrays to the same disk, and the
time from ``resurrect resume`` to the first resumed statement.

Prints (never asserts):

* write speed of ``resurrect.checkpoint()`` (header, one pickle with the
  arrays out-of-band, SHA-256 of the body, HMAC seal, ``fsync``, rename)
  against ``pickle.dump(arrays, f, protocol=5)`` (goal: >= 0.8 of its speed),
  and against ``pickle.dump`` followed by ``fsync``, which is what makes a
  file survive a crash — the page cache absorbs a plain dump without it;
* resume time: from starting ``resurrect resume`` to the first resumed
  statement (process start-up, imports, signature and checksum check,
  reading, unpickling, rebuilding the frames), and the same for a tiny
  checkpoint (the fixed part).

    python benches/bench_checkpoint.py [--size-mb 1024] [--reps 3] [--dir DIR]

Needs numpy in the interpreter that runs it, and about three times
``--size-mb`` of free disk in ``--dir`` (default: a temporary directory next
to this file's repository, i.e. the same disk as the project).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

PROGRAM = textwrap.dedent(
    """\
    import json
    import os
    import pickle
    import sys
    import time

    import numpy

    from resurrect import checkpoint

    SIZE, REPS, WORKDIR = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]


    def make(size):
        n = max(1, size // 8 // 8)
        return {f"a{i}": numpy.random.default_rng(i).random(n) for i in range(8)}


    def plain_dump(arrays, fsync):
        path = os.path.join(WORKDIR, "plain.pkl")
        os.sync()  # every measurement starts without dirty pages to write back
        t = time.perf_counter()
        with open(path, "wb") as f:
            pickle.dump(arrays, f, protocol=5)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        dt = time.perf_counter() - t
        os.unlink(path)
        return dt


    def measure(arrays, reps):
        nbytes = sum(a.nbytes for a in arrays.values())
        previous = None
        for r in range(reps):
            plain = plain_dump(arrays, False)
            synced = plain_dump(arrays, True)
            target = os.path.join(WORKDIR, f"bench{r}.ckpt")
            os.sync()
            t = time.perf_counter()
            path = checkpoint(target)
            print("AFTER", time.time(), flush=True)
            took = time.perf_counter() - t
            print(json.dumps({"bytes": nbytes, "plain": plain, "synced": synced, "checkpoint": took}), flush=True)
            if previous is not None and previous != path and os.path.exists(previous):
                os.unlink(previous)
            previous = path
        return previous


    arrays = make(SIZE)
    last = measure(arrays, REPS)
    print("END", float(sum(float(a[:10].sum()) for a in arrays.values())), flush=True)
    """
)


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "resurrect", *args]


def env(config: Path) -> dict[str, str]:
    e = dict(os.environ)
    paths = [str(REPO / "python")] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else [])
    e["PYTHONPATH"] = os.pathsep.join(paths)
    e["XDG_CONFIG_HOME"] = str(config)
    return e


def run_program(
    workdir: Path, size: int, reps: int, config: Path
) -> tuple[list[dict], subprocess.CompletedProcess]:
    p = subprocess.run(
        command("run", "prog.py", str(size), str(reps), str(workdir)),
        cwd=workdir,
        env=env(config),
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        sys.exit(f"the benchmark program failed:\n{p.stderr}")
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    return rows, p


def resume_time(workdir: Path, checkpoint: Path, config: Path) -> tuple[float, str]:
    """Seconds from starting `resume` to the first resumed statement."""
    start = time.time()
    p = subprocess.run(
        command("resume", str(checkpoint)),
        cwd=workdir,
        env=env(config),
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        sys.exit(f"resume failed:\n{p.stderr}")
    first = next(
        float(line.split()[1]) for line in p.stdout.splitlines() if line.startswith("AFTER")
    )
    end = next(line for line in p.stdout.splitlines() if line.startswith("END"))
    return first - start, end


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024, help="size of the arrays (default 1024)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--dir",
        default=None,
        help="where files are written (default: a temporary directory on the project's disk)",
    )
    a = ap.parse_args(argv)
    try:
        import numpy  # noqa: F401
    except ImportError:
        sys.exit("bench_checkpoint needs numpy (pip install numpy)")
    parent = Path(a.dir) if a.dir else REPO
    tmp = Path(tempfile.mkdtemp(prefix=".bench-checkpoint-", dir=parent))
    try:
        config = tmp / "config"
        for name, size in (("tiny", 1 << 16), ("large", a.size_mb << 20)):
            work = tmp / name
            work.mkdir()
            (work / "prog.py").write_text(PROGRAM)
            rows, p = run_program(work, size, a.reps if name == "large" else 1, config)
            ckpt = sorted(work.glob("bench*.ckpt"))[-1]
            expected_end = next(line for line in p.stdout.splitlines() if line.startswith("END"))
            resumes = []
            for _ in range(a.reps if name == "large" else 3):
                t, end = resume_time(work, ckpt, config)
                if end != expected_end:
                    sys.exit(f"the resumed program computed {end!r}, not {expected_end!r}")
                resumes.append(t)
            if name == "tiny":
                tiny_resume = statistics.median(resumes)
                continue
            nbytes = rows[0]["bytes"]
            gb = nbytes / 1e9
            plain = statistics.median(r["plain"] for r in rows)
            synced = statistics.median(r["synced"] for r in rows)
            took = statistics.median(r["checkpoint"] for r in rows)
            resume = statistics.median(resumes)
            size_note = (
                ""
                if a.size_mb >= 1024
                else f"  (smaller than the 1 GB of the goal: --size-mb {a.size_mb})"
            )
            print(
                f"Python {sys.version.split()[0]}, {gb:.2f} GB of numpy arrays (8 arrays), medians of {a.reps}, on {parent}{size_note}"
            )
            print(f"  checkpoint file: {ckpt.stat().st_size / 1e9:.3f} GB")
            print("  write")
            print(f"    pickle.dump (no fsync)       {plain:7.3f} s  {gb / plain:6.2f} GB/s")
            print(f"    pickle.dump + fsync          {synced:7.3f} s  {gb / synced:6.2f} GB/s")
            print(f"    resurrect.checkpoint()       {took:7.3f} s  {gb / took:6.2f} GB/s")
            print(f"    speed vs pickle.dump         {plain / took:7.2f}   (goal >= 0.8)")
            print(f"    speed vs pickle.dump + fsync {synced / took:7.2f}")
            print("  resume, to the first resumed statement")
            print(f"    {gb:.2f} GB checkpoint          {resume:7.3f} s")
            print(f"    tiny checkpoint (fixed part) {tiny_resume:7.3f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
