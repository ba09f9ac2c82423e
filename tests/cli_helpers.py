"""Running ``resurrect`` as a user does: a subprocess for the command line, a
pseudo-terminal (pexpect) for the prompt.

The child finds the ``resurrect`` package the tests themselves import, whether
it is installed in a virtual environment or taken from the source tree
(``python/``). Lines of the test programs are found by ``# @marker`` comments.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
PROGRAMS = TESTS / "programs"
REPO = TESTS.parent
PROMPT = "(resurrect) "
TIMEOUT = 30

_ANSI = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[()][A-B0-2]|[=>])")


def package_root() -> str:
    """The directory that holds the ``resurrect`` package under test."""
    spec = importlib.util.find_spec("resurrect")
    if spec is not None:
        for location in spec.submodule_search_locations or []:
            if (Path(location) / "cli.py").exists():
                return str(Path(location).parent)
    return str(REPO / "python")


def child_env(color: bool = False, **extra: str) -> dict[str, str]:
    """The environment of a child: the package on ``PYTHONPATH``, readline
    without bracketed paste, no colour unless asked."""
    env = dict(os.environ)
    paths = [package_root()]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["INPUTRC"] = str(PROGRAMS / "inputrc")
    env["TERM"] = "xterm"
    env.pop("PYTHONSTARTUP", None)
    env.pop("PYTHONINSPECT", None)
    if color:
        env.pop("NO_COLOR", None)
    else:
        env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def marker(program: str, name: str) -> int:
    """The line number of ``# @name`` in ``tests/programs/<program>``."""
    for n, line in enumerate((PROGRAMS / program).read_text().splitlines(), 1):
        if re.search(rf"#\s*@{re.escape(name)}\b", line):
            return n
    raise LookupError(f"no marker @{name} in {program}")


def clean(text: str) -> str:
    """Terminal output as plain text: no escape sequences, ``\\n`` line ends."""
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "")


# ---------------------------------------------------------------------------
# The command line in a subprocess


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str


def run(
    argv: list[str],
    cwd: Path | str = PROGRAMS,
    stdin: str | None = None,
    timeout: float = TIMEOUT,
    new_session: bool = True,
    env: dict[str, str] | None = None,
) -> Result:
    """Run ``python ARGV`` (e.g. ``["-m", "resurrect", "run", "x.py"]``) with
    pipes for its streams and, by default, no controlling terminal."""
    p = subprocess.run(
        [sys.executable, *argv],
        cwd=cwd,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or child_env(),
        start_new_session=new_session,
    )
    return Result(p.returncode, p.stdout, p.stderr)


def resurrect(*args: str, **kw) -> Result:
    return run(["-m", "resurrect", *args], **kw)


def python(*args: str, **kw) -> Result:
    return run(list(args), **kw)


# ---------------------------------------------------------------------------
# The prompt in a pseudo-terminal


class Session:
    """``resurrect run ARGS`` in a pseudo-terminal, driven like a transcript:
    :meth:`opened` is what was shown up to the first prompt, :meth:`do` sends
    a command and returns what it printed before the next prompt."""

    def __init__(
        self,
        *args: str,
        cwd: Path | str = PROGRAMS,
        color: bool = False,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        wait: bool = True,
    ):
        pexpect = pytest.importorskip("pexpect")
        self.pexpect = pexpect
        argv = command if command is not None else [sys.executable, "-m", "resurrect", "run", *args]
        self.child = pexpect.spawn(
            argv[0],
            argv[1:],
            cwd=str(cwd),
            env=env or child_env(color=color),
            encoding="utf-8",
            codec_errors="replace",
            timeout=TIMEOUT,
            dimensions=(50, 200),
        )
        self.transcript: list[str] = []
        try:
            self.shown = self.prompt() if wait else ""
        except BaseException:
            self.close()
            raise

    def _log(self, text: str) -> str:
        self.transcript.append(text)
        return text

    def prompt(self) -> str:
        """Wait for the prompt; what was printed before it."""
        try:
            self.child.expect_exact(PROMPT)
        except (self.pexpect.TIMEOUT, self.pexpect.EOF):
            raise AssertionError(
                "no prompt; the output was:\n" + clean(str(self.child.before))
            ) from None
        return self._log(clean(self.child.before))

    def opened(self) -> str:
        return self.shown

    def expect(self, text: str) -> str:
        """Wait for ``text`` in the output; what came before it."""
        try:
            self.child.expect_exact(text)
        except (self.pexpect.TIMEOUT, self.pexpect.EOF):
            raise AssertionError(
                f"{text!r} not seen; the output was:\n" + clean(str(self.child.before))
            ) from None
        return self._log(clean(self.child.before))

    def do(self, command: str) -> str:
        """Send ``command``; what it printed (without the echoed command line)."""
        self.child.sendline(command)
        out = self.prompt()
        first, _, rest = out.partition("\n")
        return rest if command.strip() and command.strip() in first else out

    def send(self, text: str) -> None:
        self.child.send(text)

    def interrupt(self) -> None:
        self.child.sendintr()

    def finish(self, command: str | None = None, eof: bool = False) -> tuple[str, int]:
        """Send ``command`` (or end of input) and wait for the program to end;
        its remaining output and its exit status (``-N`` when killed by signal N)."""
        if eof:
            self.child.sendeof()
        elif command is not None:
            self.child.sendline(command)
        try:
            self.child.expect(self.pexpect.EOF)
        except self.pexpect.TIMEOUT:
            raise AssertionError(
                "the program did not end; output:\n" + clean(str(self.child.before))
            ) from None
        out = self._log(clean(self.child.before))
        self.child.close()
        if self.child.signalstatus is not None:
            return out, -self.child.signalstatus
        return out, self.child.exitstatus

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def after_command(output: str, command: str) -> str:
    """``output`` without the echoed ``command`` line."""
    lines = output.split("\n")
    if lines and lines[0].strip() == command.strip():
        lines = lines[1:]
    return "\n".join(lines)


def printed(text: str, line: str) -> bool:
    """Whether ``line`` is a whole line of ``text``."""
    return line in text.split("\n")


def in_order(text: str, *parts: str) -> None:
    """Assert each of ``parts`` occurs in ``text``, in this order."""
    pos = 0
    for part in parts:
        found = text.find(part, pos)
        assert found >= 0, f"{part!r} not found (in order) in:\n{text}"
        pos = found + len(part)
