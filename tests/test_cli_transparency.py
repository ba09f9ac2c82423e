"""Programs that handle their own exceptions run under ``resurrect run`` exactly
as under ``python``: same output, same exit status, and never a pause.

Each program runs twice under resurrect with ``--on-error pause``: without a
terminal (the prompt would then write on stderr and read end-of-input: any
pause shows in the output), and in a pseudo-terminal with the default options
(where a pause would wait for a command and time out).
"""

from __future__ import annotations

import sys

import pytest
from cli_helpers import PROGRAMS, PROMPT, Session, child_env, clean, python, resurrect

DIR = PROGRAMS / "transparency"

PROGRAMS_ = [
    ("catch_own.py", []),
    ("suppress.py", []),
    ("generators.py", []),
    ("threads_catch.py", []),
    ("asyncio_catch.py", []),
    ("exit_codes.py", []),
    ("exit_codes.py", ["0"]),
    pytest.param("own_context_manager.py", [], id="own_context_manager"),
    ("with_pytest.py", []),
]


def _ids(p):
    if hasattr(p, "values"):
        return p.id
    return "-".join([p[0].removesuffix(".py"), *p[1]])


def _name(p) -> str:
    return p.values[0] if hasattr(p, "values") else p[0]


@pytest.mark.parametrize("program, args", PROGRAMS_, ids=[_ids(p) for p in PROGRAMS_])
def test_same_as_python_without_a_terminal(program, args):
    if program == "with_pytest.py":
        pytest.importorskip("pytest")
    plain = python(program, *args, cwd=DIR)
    ours = resurrect("run", "--on-error", "pause", program, *args, cwd=DIR)
    assert PROMPT not in ours.stderr, "the program paused:\n" + ours.stderr
    assert (ours.status, ours.stdout, ours.stderr) == (plain.status, plain.stdout, plain.stderr)


def _in_terminal(argv: list[str]) -> tuple[str, int]:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        argv[0], argv[1:], cwd=str(DIR), env=child_env(), encoding="utf-8", timeout=30
    )
    i = child.expect_exact([PROMPT, pexpect.EOF])
    out = clean(child.before)
    if i == 0:
        child.terminate(force=True)
        raise AssertionError("the program paused:\n" + out)
    child.close()
    return out, child.exitstatus if child.signalstatus is None else -child.signalstatus


@pytest.mark.parametrize(
    "program, args",
    [p for p in PROGRAMS_ if _name(p) != "with_pytest.py"],
    ids=[_ids(p) for p in PROGRAMS_ if _name(p) != "with_pytest.py"],
)
def test_same_as_python_in_a_terminal(program, args):
    plain = _in_terminal([sys.executable, program, *args])
    ours = _in_terminal([sys.executable, "-m", "resurrect", "run", program, *args])
    assert ours == plain


def test_a_pause_would_be_seen_by_these_tests():
    # The harness itself: an unhandled exception does pause in a terminal.
    with Session("divide.py", cwd=PROGRAMS) as s:
        assert "paused before unwinding" in s.opened()
        s.finish("quit")
