"""Checkpoints, end to end: programs run, are stopped (signal, crash, kill),
and are resumed in new processes, as a user does it.

The commands are ``python -m resurrect run|resume|checkpoints``, in
subprocesses.

Every test has its own key (``XDG_CONFIG_HOME``) and its own directory, with
copies of the programs (some tests edit them). ``RESURRECT_SEED`` replays the
random moments of a failed run (the seed is in the failure message).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import PROGRAMS, REPO, child_env, marker

TERM_TRIALS = int(os.environ.get("RESURRECT_TERM_TRIALS", "20"))
KILL9_TRIALS = int(os.environ.get("RESURRECT_KILL9_TRIALS", "6"))


def _seed() -> int:
    return int(os.environ.get("RESURRECT_SEED") or random.randrange(1 << 30))


class Work:
    """A directory with copies of test programs, a private signing key, and
    the ``resurrect`` commands run in it."""

    def __init__(self, root: Path, name: str = "job"):
        self.root = root
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.env = child_env(XDG_CONFIG_HOME=str(root / "config"))

    def copy(self, *names: str) -> None:
        for name in names:
            shutil.copy(PROGRAMS / name, self.dir / name)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "resurrect", *args]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(*args),
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def python(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self, *args: str, out: Path, err: Path) -> subprocess.Popen:
        with open(out, "w") as o, open(err, "w") as e:
            return subprocess.Popen(
                self.command(*args),
                cwd=self.dir,
                env=self.env,
                stdout=o,
                stderr=e,
                stdin=subprocess.DEVNULL,
            )

    def checkpoints(self) -> list[Path]:
        d = self.dir / ".resurrect"
        if not d.is_dir():
            return []
        return sorted(
            (p for p in d.iterdir() if p.name.endswith(".ckpt") and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
        )

    def newest(self) -> Path:
        found = self.checkpoints()
        assert found, f"no checkpoint in {self.dir / '.resurrect'}"
        return found[-1]


@pytest.fixture
def work(tmp_path):
    return Work(tmp_path)


def _wait_for(predicate, timeout: float = 30, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return predicate()
        time.sleep(0.005)
    return False


def _one_line_refusal(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("resurrect: cannot resume: "), lines[0]
    assert r.stdout == ""
    return lines[0]


# ---------------------------------------------------------------------------
# SIGTERM at random moments


JOB_ARGS = ("20", "20000")  # batches, busy work per record


class _Runs:
    """The processes of one trial, each with its own stdout and stderr files."""

    def __init__(self, work: Work):
        self.work = work
        self.outs: list[Path] = []

    def start(self, *args: str) -> tuple[subprocess.Popen, Path]:
        n = len(self.outs) + 1
        out, err = self.work.dir / f"stdout{n}", self.work.dir / f"stderr{n}"
        self.outs.append(out)
        return self.work.start(*args, out=out, err=err), err


def test_sigterm_at_random_moments_then_resume(tmp_path):
    """The three-calls-deep job is killed with SIGTERM at random moments
    (``--checkpoint-on TERM``), and so are some of the resumed processes;
    resuming until it ends gives exactly the output of an uninterrupted run."""
    seed = _seed()
    rng = random.Random(seed)
    ref = Work(tmp_path, "reference")
    ref.copy("ckpt_job.py")
    t0 = time.monotonic()
    plain = ref.python("ckpt_job.py", "out.txt", *JOB_ARGS)
    duration = time.monotonic() - t0
    assert plain.returncode == 0, plain.stderr
    expected_out = (ref.dir / "out.txt").read_text()
    checkpoints_taken = 0
    for trial in range(TERM_TRIALS):
        w = Work(tmp_path, f"trial{trial}")
        w.env = ref.env
        w.copy("ckpt_job.py")
        context = f"(seed {seed}, trial {trial})"
        runs = _Runs(w)
        p, err = runs.start("run", "--checkpoint-on", "TERM", "ckpt_job.py", "out.txt", *JOB_ARGS)
        # The job has started (and checkpoints are installed) once it opened its output.
        assert _wait_for(lambda w=w: (w.dir / "out.txt").exists(), proc=p), context
        kills = 1 + rng.randrange(3)
        for k in range(10):
            if k < kills:
                time.sleep(rng.uniform(0, duration))
                p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=120)
            text = err.read_text()
            if rc == 0:
                break
            assert rc == -signal.SIGTERM, f"{context} status {rc}: {text}"
            assert "checkpoint written (signal SIGTERM)" in text, f"{context}: {text}"
            checkpoints_taken += 1
            p, err = runs.start("resume")
            if k + 1 < kills:
                assert _wait_for(
                    lambda err=err: "resurrect: resuming" in err.read_text(), proc=p
                ), context
        else:
            pytest.fail(f"{context}: did not finish")
        stdout = "".join(o.read_text() for o in runs.outs)
        assert stdout == plain.stdout, f"{context}\n{stdout}"
        assert (w.dir / "out.txt").read_text() == expected_out, context
    assert checkpoints_taken >= TERM_TRIALS // 2, (
        f"only {checkpoints_taken} checkpoints in {TERM_TRIALS} trials"
    )


# ---------------------------------------------------------------------------
# A crash, a fix, a resume


def _crash(work: Work) -> subprocess.CompletedProcess:
    work.copy("ckpt_crash.py")
    r = work.run("run", "--on-error", "checkpoint", "ckpt_crash.py", "log.txt", "out.txt")
    assert r.returncode == 1, r.stderr
    return r


def test_crash_checkpoint_fix_and_resume(work):
    r = _crash(work)
    lines = r.stderr.splitlines()
    assert lines[-2] == "ZeroDivisionError: integer division or modulo by zero"
    assert lines[-1].startswith("resume with: resurrect resume .resurrect/ckpt_crash-")
    assert "Traceback (most recent call last):" in r.stderr
    path = lines[-1].split()[-1]
    assert (work.dir / path).is_file()
    assert (work.dir / "log.txt").read_text().split("\n")[:-1] == [f"work {i}" for i in range(1, 8)]

    source = (work.dir / "ckpt_crash.py").read_text()
    (work.dir / "ckpt_crash.py").write_text(
        source.replace("return 100 // value  # @bug", "return 100 // value if value else 0  # @bug")
    )
    r = work.run("resume", path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "sum 488\n"
    assert (
        f"resurrect: resuming at convert() at ckpt_crash.py:{marker('ckpt_crash.py', 'bug')}"
        in r.stderr
    )
    # no work before the crash was done again: every item is in the log once
    assert (work.dir / "log.txt").read_text().split("\n")[:-1] == [
        f"work {i}" for i in range(1, 15)
    ]
    assert (
        work.dir / "out.txt"
    ).read_text() == "[100, 50, 33, 25, 20, 16, 0, 100, 50, 33, 25, 20, 16, 0]\n"


def test_the_bundled_example_crashes_is_fixed_and_resumes(work):
    """The README's example, as a user meets it without a terminal: the
    default is a checkpoint. Its outer call statements computed values before
    the call in progress (`main(Path(...) if ... else ...)`, a dict display
    half built around `parse_price(price)`): they come back from the
    checkpoint, nothing of them runs again."""
    shutil.copy(REPO / "examples" / "records_job.py", work.dir / "records_job.py")
    r = work.run("run", "records_job.py", "out.txt")
    assert r.returncode == 1
    assert "ValueError: could not convert string to float: 'n/a'" in r.stderr
    assert r.stderr.splitlines()[-1].startswith("resume with: resurrect resume .resurrect/")
    p = work.dir / "records_job.py"
    p.write_text(
        p.read_text().replace(
            "    return round(float(text), 2)\n",
            "    return round(float(text), 2) if text != 'n/a' else 0.0\n",
        )
    )
    resumed = work.run("resume")
    assert resumed.returncode == 0, resumed.stderr
    plain = work.python("records_job.py", "plain.txt")
    assert plain.returncode == 0, plain.stderr
    assert resumed.stdout == plain.stdout.replace("plain.txt", "out.txt")
    assert (work.dir / "out.txt").read_text() == (work.dir / "plain.txt").read_text()


def test_resume_without_the_fix_fails_again_and_checkpoints_again(work):
    _crash(work)
    first = work.newest()
    r = work.run("resume", "--on-error", "checkpoint", str(first))
    assert r.returncode == 1
    assert r.stderr.splitlines()[-2].startswith("ZeroDivisionError")
    assert len(work.checkpoints()) == 2
    # the log shows the failing item once: the retry did not redo `work 7`
    assert (work.dir / "log.txt").read_text().count("work 7\n") == 1


def test_resume_skip_continues_after_the_failed_statement(work):
    work.copy("ckpt_skip.py")
    r = work.run("run", "--on-error", "checkpoint", "ckpt_skip.py")
    assert r.returncode == 1
    r = work.run("resume", "--skip")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[-5, -10, 10, 5] [1, 2, 2, 3, 4]\n"
    assert "resuming after risky()" in r.stderr


def test_skip_where_there_is_no_next_statement_is_refused(work):
    _crash(work)
    line = _one_line_refusal(work.run("resume", "--skip"))
    assert "--skip" in line and "no single next statement" in line


def test_state_comes_back_shared_and_whole(work):
    """Shared references, a __main__ dataclass, closure cells, an except
    body, dict iterators under enumerate(zip()), an open file, numpy views."""
    work.copy("ckpt_state.py")
    (work.dir / "flag").write_text("5")
    plain = work.python("ckpt_state.py", "flag", "out.txt")
    assert plain.returncode == 0, plain.stderr
    (work.dir / "flag").unlink()
    r = work.run("run", "--on-error", "checkpoint", "ckpt_state.py", "flag", "out.txt")
    assert r.returncode == 1 and "FileNotFoundError" in r.stderr, r.stderr
    (work.dir / "flag").write_text("5")
    r = work.run("resume")
    assert r.returncode == 0, r.stderr
    assert r.stdout == plain.stdout


def test_api_checkpoint_returns_its_path_and_the_resumed_program_continues(work):
    work.copy("ckpt_api.py")
    r = work.run("run", "ckpt_api.py")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "checkpoint at 2 True\ntotal 10 [0, 1, 2, 3, 4]\n"
    r = work.run("resume")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "checkpoint at 2 True\ntotal 10 [0, 1, 2, 3, 4]\n"
    assert len(work.checkpoints()) == 1  # the resumed call did not write another


# ---------------------------------------------------------------------------
# What cannot be saved is named


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("generator", "variable `gen` of job() at ckpt_unsaveable.py:"),
        ("lock", "variable `lock` of job() at ckpt_unsaveable.py:"),
        ("socket", "(at `holder['conn']`): a socket cannot be saved"),
        ("thread", "thread worker is running"),
        ("file-iter", "variable `f` of job() at ckpt_unsaveable.py:"),
        ("for-generator", "the iterator of a `for` loop around job() at ckpt_unsaveable.py:"),
    ],
)
def test_what_cannot_be_saved_is_named(work, kind, message):
    work.copy("ckpt_unsaveable.py")
    r = work.run("run", "--on-error", "checkpoint", "ckpt_unsaveable.py", kind)
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if line.startswith("resurrect:")]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("resurrect: cannot checkpoint: ")
    assert message in lines[0]
    assert "ZeroDivisionError" in r.stderr  # the program's own error still propagates
    assert work.checkpoints() == []


# ---------------------------------------------------------------------------
# Edits that cannot be mapped


def test_an_edited_loop_around_the_statement_is_refused(work):
    _crash(work)
    p = work.dir / "ckpt_crash.py"
    p.write_text(p.read_text().replace("for item in items:", "for item in sorted(items):"))
    line = _one_line_refusal(work.run("resume"))
    assert (
        "the block around it changed (`for item in items:` -> `for item in sorted(items):`)" in line
    )


def test_an_edited_call_statement_of_an_outer_frame_is_refused(work):
    _crash(work)
    p = work.dir / "ckpt_crash.py"
    p.write_text(p.read_text().replace("return convert(item % 7)", "return convert(item % 7) + 0"))
    line = _one_line_refusal(work.run("resume"))
    assert "it is the call that re-enters the next frame" in line


def test_a_changed_signature_is_refused(work):
    _crash(work)
    p = work.dir / "ckpt_crash.py"
    p.write_text(p.read_text().replace("def convert(value):", "def convert(value, scale=1):"))
    line = _one_line_refusal(work.run("resume"))
    assert "parameters or decorators of convert changed" in line


def test_a_new_helper_function_is_available_after_the_fix(work):
    _crash(work)
    p = work.dir / "ckpt_crash.py"
    text = p.read_text().replace(
        "return 100 // value  # @bug", "return safe_div(100, value)  # @bug"
    )
    text = text.replace(
        "def convert(", "def safe_div(a, b):\n    return a // b if b else 0\n\n\ndef convert("
    )
    p.write_text(text)
    r = work.run("resume")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "sum 488\n"


# ---------------------------------------------------------------------------
# Integrity and trust


def _resign(path: Path, env: dict[str, str], edit) -> None:
    """Rewrite a checkpoint's header with ``edit(header)`` and sign it again
    with the test's key (as only its owner could)."""
    from resurrect import checkpoint_format as fmt

    data = path.read_bytes()
    (hlen,) = struct.unpack(">I", data[len(fmt.MAGIC) : len(fmt.MAGIC) + 4])
    start = len(fmt.MAGIC) + 4
    header = json.loads(data[start : start + hlen])
    edit(header)
    head = json.dumps(header).encode()
    signed = fmt.MAGIC + struct.pack(">I", len(head)) + head
    body = data[start + hlen : -fmt.SEAL_SIZE]
    seal = data[-fmt.SEAL_SIZE :]
    digest = seal[4:36]
    saved = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = env["XDG_CONFIG_HOME"]
    try:
        key = fmt.load_key(create=False)
    finally:
        if saved is None:
            del os.environ["XDG_CONFIG_HOME"]
        else:
            os.environ["XDG_CONFIG_HOME"] = saved
    assert key is not None
    new_seal = seal[:4] + digest + fmt.key_id(key) + fmt._mac(key, signed, digest) + seal[-4:]
    path.write_bytes(signed + body + new_seal)


@pytest.fixture
def crashed(work):
    _crash(work)
    return work, work.newest()


def test_truncated_checkpoints_are_refused(crashed):
    work, path = crashed
    data = path.read_bytes()
    rng = random.Random(_seed())
    for n in sorted(
        {
            0,
            5,
            16,
            19,
            40,
            len(data) // 2,
            len(data) - 1,
            *(rng.randrange(len(data)) for _ in range(10)),
        }
    ):
        cut = work.dir / f"cut{n}.ckpt"
        cut.write_bytes(data[:n])
        line = _one_line_refusal(work.run("resume", str(cut)))
        assert "truncated" in line, line


def test_a_changed_byte_of_the_body_is_refused(crashed):
    work, path = crashed
    data = bytearray(path.read_bytes())
    data[-200] ^= 0x40
    path.write_bytes(data)
    line = _one_line_refusal(work.run("resume", str(path)))
    assert "tampered with or damaged (its content does not match its signed checksum)" in line


def test_a_changed_header_is_refused(crashed):
    work, path = crashed
    data = path.read_bytes()
    i = data.index(b'"reason":"ZeroDivisionError')
    path.write_bytes(data[:i] + data[i:].replace(b"ZeroDivisionError", b"ZeroDivisionErrOr", 1))
    line = _one_line_refusal(work.run("resume", str(path)))
    assert "tampered with (its signature does not match)" in line


def test_an_unsigned_checkpoint_is_refused(crashed):
    work, path = crashed
    data = bytearray(path.read_bytes())
    data[-44:-4] = bytes(40)  # key id and signature
    path.write_bytes(data)
    line = _one_line_refusal(work.run("resume", str(path)))
    assert "unsigned" in line


def test_a_checkpoint_of_another_user_is_refused(crashed, tmp_path):
    work, path = crashed
    work.env = child_env(XDG_CONFIG_HOME=str(tmp_path / "someone-else"))
    other = Work(tmp_path, "other")
    other.env = work.env
    other.copy("ckpt_skip.py")
    other.run("run", "--on-error", "checkpoint", "ckpt_skip.py")  # creates that user's key
    line = _one_line_refusal(work.run("resume", str(path)))
    assert "signed with another key" in line


def test_a_readable_key_is_refused(crashed, tmp_path):
    work, path = crashed
    key = tmp_path / "config" / "resurrect" / "key"
    assert key.stat().st_mode & 0o777 == 0o600
    key.chmod(0o644)
    line = _one_line_refusal(work.run("resume", str(path)))
    assert "can be read by other users" in line


def test_a_checkpoint_of_another_python_version_is_refused(crashed):
    work, path = crashed
    _resign(path, work.env, lambda h: h.update(python="3.99", python_full="3.99.0"))
    line = _one_line_refusal(work.run("resume", str(path)))
    assert "written by Python 3.99; this is Python" in line


def _other_python() -> str | None:
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    try:
        root = subprocess.run(
            ["pyenv", "root"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        root = ""
    for v in ("3.11", "3.12", "3.13"):
        if v == here:
            continue
        found = shutil.which(f"python{v}")
        if root and os.path.isdir(os.path.join(root, "versions")):
            for d in sorted(os.listdir(os.path.join(root, "versions"))):
                if d.startswith(v + "."):
                    found = os.path.join(root, "versions", d, "bin", "python")
        if found and os.path.exists(found):
            return found
    return None


def test_a_checkpoint_written_by_another_python_is_refused(work):
    other = _other_python()
    if other is None:
        pytest.skip("no other supported Python found")
    work.copy("ckpt_crash.py")
    r = subprocess.run(
        [
            other,
            "-m",
            "resurrect",
            "run",
            "--on-error",
            "checkpoint",
            "ckpt_crash.py",
            "log.txt",
            "out.txt",
        ],
        cwd=work.dir,
        env=work.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "resume with:" in r.stderr, r.stderr
    line = _one_line_refusal(work.run("resume"))
    assert "written by Python 3.1" in line and "resume it with Python" in line


def test_missing_source_is_refused(crashed):
    work, path = crashed
    (work.dir / "ckpt_crash.py").unlink()
    line = _one_line_refusal(work.run("resume", str(path)))
    assert "ckpt_crash.py is missing" in line


def test_not_a_checkpoint_is_refused(work):
    (work.dir / "x.ckpt").write_bytes(b"hello, world\n" * 10)
    line = _one_line_refusal(work.run("resume", "x.ckpt"))
    assert "not a resurrect checkpoint" in line


def test_checkpoint_files_are_private(crashed):
    _work, path = crashed
    assert path.stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------------------
# kill -9 while checkpoints are written


EVERY_STEPS = "400"


def test_kill_9_while_checkpoints_are_written(tmp_path):
    """A job writing periodic checkpoints of a few megabytes is killed with
    SIGKILL at random moments: no file under a checkpoint's name is ever torn,
    temporary files are never taken for checkpoints, and every checkpoint
    left resumes to the uninterrupted result."""
    seed = _seed()
    rng = random.Random(seed)
    ref = Work(tmp_path, "reference")
    ref.copy("ckpt_every.py")
    plain = ref.python("ckpt_every.py", "out.txt", EVERY_STEPS)
    assert plain.returncode == 0, plain.stderr
    expected = (ref.dir / "out.txt").read_text()
    resumed = temporaries = 0
    for trial in range(KILL9_TRIALS):
        w = Work(tmp_path, f"trial{trial}")
        w.env = ref.env
        w.copy("ckpt_every.py")
        context = f"(seed {seed}, trial {trial})"
        p = w.start(
            "run",
            "--checkpoint-every",
            "0.03",
            "ckpt_every.py",
            "out.txt",
            EVERY_STEPS,
            out=w.dir / "stdout",
            err=w.dir / "stderr",
        )
        assert _wait_for(lambda w=w: w.checkpoints(), proc=p), (
            f"{context}: {(w.dir / 'stderr').read_text()}"
        )
        time.sleep(rng.uniform(0, 0.8))
        p.kill()
        p.wait()
        names = sorted(os.listdir(w.dir / ".resurrect"))
        temps = [n for n in names if n.startswith(".")]
        temporaries += len(temps)
        listing = w.run("checkpoints")
        assert listing.returncode == 0
        for t in temps:
            assert t not in listing.stdout
        snapshot = (w.dir / "out.txt").read_bytes()
        # (resumed programs take periodic checkpoints too: list those of the killed one first)
        finals = w.checkpoints()
        for t in temps:
            r = w.run("resume", str(w.dir / ".resurrect" / t))
            if r.returncode == 2:
                continue  # refused: it was torn
            # complete (killed between its fsync and its rename): it must be right
            assert r.returncode == 0, f"{context}: {r.stderr}"
            assert (w.dir / "out.txt").read_text() == expected, context
            (w.dir / "out.txt").write_bytes(snapshot)
        assert finals, context
        for path in reversed(finals):
            (w.dir / "out.txt").write_bytes(snapshot)
            r = w.run("resume", str(path))
            assert r.returncode == 0, f"{context} {path.name}: {r.stderr}"
            assert r.stdout == plain.stdout, context
            assert (w.dir / "out.txt").read_text() == expected, f"{context} {path.name}"
            resumed += 1
    print(
        f"kill -9: {KILL9_TRIALS} trials, {resumed} checkpoints resumed, {temporaries} temporary files refused or checked"
    )


# ---------------------------------------------------------------------------
# Listing


def test_checkpoints_lists_what_is_there(crashed):
    work, path = crashed
    torn = work.dir / ".resurrect" / "torn.ckpt"
    torn.write_bytes(path.read_bytes()[:100])
    r = work.run("checkpoints")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == [
        "TIME",
        "(UTC)",
        "SCRIPT",
        "STOPPED",
        "AT",
        "REASON",
        "SIZE",
        "FILE",
    ]
    row = next(line for line in lines if path.name in line)
    assert f"ckpt_crash.py  ckpt_crash.py:{marker('ckpt_crash.py', 'bug')} in convert" in row
    assert "ZeroDivisionError" in row
    assert any("torn.ckpt" in line and "truncated" in line for line in lines)


def test_resume_with_no_checkpoint_says_so(work):
    r = work.run("resume")
    assert r.returncode == 2
    assert r.stderr == "resurrect: no checkpoint in .resurrect (no such directory)\n"


# ---------------------------------------------------------------------------
# The prompt's `checkpoint`


def test_checkpoint_at_the_prompt_then_resume_after_the_fix(work):
    from cli_helpers import Session

    work.copy("ckpt_crash.py")
    command = [*work.command("run", "--on-error", "pause", "ckpt_crash.py", "log.txt", "out.txt")]
    with Session(command=command, cwd=work.dir, env=work.env) as s:
        assert "ZeroDivisionError" in s.opened()
        out = s.do("checkpoint")
        assert "checkpoint written; resume with: resurrect resume .resurrect/ckpt_crash-" in out, (
            out
        )
        out = s.do("checkpoint mine.ckpt")
        assert "resume with: resurrect resume mine.ckpt" in out, out
        _, status = s.finish("quit")
    assert status == 1
    p = work.dir / "ckpt_crash.py"
    p.write_text(
        p.read_text().replace(
            "return 100 // value  # @bug", "return 100 // value if value else 0  # @bug"
        )
    )
    r = work.run("resume", "mine.ckpt")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "sum 488\n"
    assert (work.dir / "log.txt").read_text().count("work 7\n") == 1


def test_state_of_an_imported_module_comes_back(work):
    work.copy("ckpt_pkg_main.py", "ckpt_pkg_helper.py")
    r = work.run("run", "--on-error", "checkpoint", "ckpt_pkg_main.py")
    assert r.returncode == 1 and "KeyError: 'gamma'" in r.stderr, r.stderr
    p = work.dir / "ckpt_pkg_helper.py"
    p.write_text(p.read_text().replace('"delta": 4}[word]', '"delta": 4, "gamma": 3}[word]'))
    r = work.run("resume")
    assert r.returncode == 0, r.stderr
    # `measure` ran once per word (its call was not repeated), the instances are
    # of the module's current class
    assert r.stdout == "[5, 8, 15, 20] 4 ['alpha', 'beta', 'gamma', 'delta'] <alpha>\n"


def test_a_module_run_with_dash_m_resumes(work):
    work.copy("ckpt_crash.py")
    r = work.run("run", "--on-error", "checkpoint", "-m", "ckpt_crash", "log.txt", "out.txt")
    assert r.returncode == 1 and "resume with: resurrect resume .resurrect/ckpt_crash-" in r.stderr
    p = work.dir / "ckpt_crash.py"
    p.write_text(
        p.read_text().replace(
            "return 100 // value  # @bug", "return 100 // value if value else 0  # @bug"
        )
    )
    r = work.run("resume")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "sum 488\n"


def test_usr1_checkpoints_and_the_program_goes_on(work):
    work.copy("ckpt_job.py")
    ref = work.python("ckpt_job.py", "ref.txt", "12", "20000")
    p = work.start(
        "run",
        "--checkpoint-on",
        "USR1",
        "ckpt_job.py",
        "out.txt",
        "12",
        "20000",
        out=work.dir / "o",
        err=work.dir / "e",
    )
    assert _wait_for(lambda: (work.dir / "out.txt").exists(), proc=p)
    for _ in range(2):
        time.sleep(0.15)
        p.send_signal(signal.SIGUSR1)
    assert p.wait(timeout=120) == 0
    assert (work.dir / "o").read_text() == ref.stdout
    assert (work.dir / "e").read_text().count("checkpoint written (signal SIGUSR1)") == 2
    first = work.checkpoints()[0]
    r = work.run("resume", str(first))
    assert r.returncode == 0, r.stderr
    assert ref.stdout.endswith(r.stdout) and r.stdout.endswith("\n")
    assert (work.dir / "out.txt").read_text() == (work.dir / "ref.txt").read_text()
