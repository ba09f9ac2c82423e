"""Edit and continue at the prompt, driven in a pseudo-terminal as a user does:
the program pauses on an exception, the user fixes the file, types `reload`
(or `edit`), then `retry`, and the program finishes with the fixed code.

The programs are copied to a temporary directory and edited there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import PROGRAMS, Session, child_env, in_order, marker


def run_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "resurrect", "run", *args]


def session(tmp_path: Path, program: str, *args: str, env: dict | None = None) -> Session:
    shutil.copy(PROGRAMS / program, tmp_path / program)
    return Session(cwd=tmp_path, command=run_command(program, *args), env=env)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


FAIL = marker("reload_divide.py", "fail")


def test_fix_the_paused_function_reload_and_retry(tmp_path):
    with session(tmp_path, "reload_divide.py") as s:
        assert f"paused before unwinding at reload_divide.py:{FAIL} in ratio()" in s.opened()
        edit(
            tmp_path / "reload_divide.py",
            "quotient = numerator / denominator  # @fail",
            "quotient = numerator / denominator if denominator else 0.0",
        )
        out = s.do("reload")
        in_order(
            out,
            "reloaded reload_divide.py: changed ratio()",
            "frames running the code from before the reload:",
            f"ratio() at reload_divide.py:{FAIL}: `retry` and `skip` continue there (line {FAIL} of the new code)",
        )
        out, status = s.finish("retry")
    assert "results [10.0, 5.0, 0.0, 2.5]" in out
    assert status == 0


def test_a_new_helper_added_and_called_from_the_fixed_line(tmp_path):
    path = tmp_path / "reload_divide.py"
    with session(tmp_path, "reload_divide.py") as s:
        edit(
            path,
            "quotient = numerator / denominator  # @fail",
            "quotient = safe_divide(numerator, denominator)",
        )
        edit(
            path,
            "def main():",
            "def safe_divide(a, b):\n    return a / b if b else -1.0\n\n\ndef main():",
        )
        out = s.do("reload")
        assert "reloaded reload_divide.py: changed ratio(); added safe_divide()" in out
        out, status = s.finish("retry")
    assert "results [10.0, 5.0, -1.0, 2.5]" in out
    assert status == 0


def test_a_method_changed_while_instances_are_alive(tmp_path):
    fail = marker("reload_accounts.py", "fail")
    path = tmp_path / "reload_accounts.py"
    with session(tmp_path, "reload_accounts.py") as s:
        shown = s.opened()
        assert "ValueError: invalid literal for int() with base 10: '2.5'" in shown
        assert (
            f"reload_accounts.py:{fail} in Account.apply()" in shown
            or f":{fail} in apply()" in shown
        )
        edit(path, "amount = int(op)  # @fail", "amount = round(float(op))")
        out = s.do("reload")
        assert "changed Account.apply()" in out
        out, status = s.finish("retry")
    assert "balances [('a', 7), ('b', 8)]" in out
    assert "isinstance True" in out
    assert status == 0


def test_lines_inserted_above_the_paused_statement(tmp_path):
    path = tmp_path / "reload_divide.py"
    with session(tmp_path, "reload_divide.py") as s:
        text = path.read_text()
        text = text.replace('"""\n', '"""\n\nimport math\n\n# Lines added above everything.\n', 1)
        text = text.replace(
            "def ratio(numerator, denominator):\n",
            "def ratio(numerator, denominator):\n    # a comment above the paused line\n    denominator = denominator or math.inf\n",
        )
        path.write_text(text)
        out = s.do("reload")
        new_line = FAIL + 6
        assert (
            f"ratio() at reload_divide.py:{FAIL}: `retry` and `skip` continue there (line {new_line - 1}"
            in out
        )
        assert f"`retry` starts at line {new_line - 1}, added above the failing statement" in out
        out, status = s.finish("retry")
    assert "results [10.0, 5.0, 0.0, 2.5]" in out
    assert status == 0


def test_a_syntax_error_then_the_fix(tmp_path):
    path = tmp_path / "reload_divide.py"
    with session(tmp_path, "reload_divide.py") as s:
        edit(
            path,
            "quotient = numerator / denominator  # @fail",
            "quotient = (numerator / denominator if denominator else 0.0",
        )
        out = s.do("reload")
        in_order(
            out, "reload failed; nothing was changed:", f"reload_divide.py:{FAIL}: SyntaxError"
        )
        # Still paused, the old code untouched.
        assert "denominator = 0" in s.do("args")
        edit(path, "quotient = (numerator", "quotient = (numerator)")
        edit(
            path,
            "(numerator) / denominator if denominator else 0.0",
            "numerator / denominator if denominator else 0.5",
        )
        out = s.do("reload")
        assert "reloaded reload_divide.py: changed ratio()" in out
        out, status = s.finish("retry")
    assert "results [10.0, 5.0, 0.5, 2.5]" in out
    assert status == 0


def test_skip_after_reload_continues_in_the_new_code(tmp_path):
    path = tmp_path / "reload_divide.py"
    with session(tmp_path, "reload_divide.py") as s:
        edit(path, "    return quotient\n", "    return 'skipped'\n")
        # The paused statement is unchanged; the statement after it changed.
        s.do("reload")
        out, status = s.finish("skip")
    assert "results [10.0, 5.0, 'skipped', 'skipped']" in out
    assert status == 0


def test_edit_opens_the_editor_at_the_line_and_reloads(tmp_path):
    log = tmp_path / "editor.log"
    env = child_env(
        EDITOR=f"{sys.executable} {PROGRAMS / 'reload_editor.py'}",
        RELOAD_EDIT="numerator / denominator  # @fail=>numerator / (denominator or 5)",
        RELOAD_EDITOR_LOG=str(log),
    )
    env.pop("VISUAL", None)
    with session(tmp_path, "reload_divide.py", env=env) as s:
        out = s.do("edit")
        assert log.read_text() == f"+{FAIL} reload_divide.py\n"
        assert "reloaded reload_divide.py: changed ratio()" in out
        out, status = s.finish("retry")
    assert "results [10.0, 5.0, 2.0, 2.5]" in out
    assert status == 0


def test_a_frame_without_a_sound_mapping_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "reload_divide.py"
    call = marker("reload_divide.py", "call")
    with session(tmp_path, "reload_divide.py") as s:
        edit(
            path,
            "quotient = numerator / denominator  # @fail",
            "quotient = numerator / denominator if denominator else 0.0",
        )
        edit(
            path,
            "    results = []\n    for b in [1, 2, 0, 4]:\n        results.append(ratio(10, b))  # @call\n",
            "    results = [ratio(10, b) for b in [1, 2, 0, 4]]\n",
        )
        out = s.do("reload")
        in_order(
            out,
            f"main() at reload_divide.py:{call}: keeps running its old code: "
            "the `for` loop around it was removed or changed into something else",
            f"ratio() at reload_divide.py:{FAIL}: `retry` and `skip` continue there",
        )
        s.do("up")
        out = s.do("retry")
        assert "cannot retry here: the `for` loop around it was removed" in out
        assert "`rerun` calls the new code from its first line" in out
        s.do("down")
        out, status = s.finish("retry")
    # `main` finishes in its old code; `ratio` ran the new code.
    assert "results [10.0, 5.0, 0.0, 2.5]" in out
    assert status == 0


def test_watch_changes_a_long_loop_from_the_next_iteration_on(tmp_path):
    """`resurrect run --watch` (or `reload.watch()` in the program): the
    loop calls `work`, and both `work` and the loop's own body are edited while
    it runs. The next calls of `work` run the new code; the loop's frame
    switches to the new code at its next iteration (3.12+: from the watching
    thread; 3.11 cannot reach another thread's frame, so the loop keeps its
    old body until `main` returns)."""
    program = tmp_path / "reload_watch.py"
    shutil.copy(PROGRAMS / "reload_watch.py", program)
    command = [sys.executable, "-m", "resurrect", "run", "--watch"]
    proc = subprocess.Popen(
        [*command, "--on-error", "raise", "reload_watch.py", "120"],
        cwd=tmp_path,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    edited_at = 5
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if len(lines) == edited_at:
                time.sleep(0.2)  # the watcher has seen the file
                text = program.read_text()
                text = text.replace("return i * 2  # @work", "return i * 1000")
                text = text.replace('label = "step"  # @label', 'label = "STEP"')
                program.write_text(text)
            if line.startswith("finished"):
                break
        proc.wait(timeout=60)
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    steps = [line.split() for line in lines if line.lower().startswith("step")]
    assert len(steps) == 120
    values = [(label, int(n), int(v)) for label, n, v in steps]
    first_new = next(k for k, (_, n, v) in enumerate(values) if n and v == n * 1000)
    assert first_new >= edited_at
    assert all(v == n * 2 for _, n, v in values[:first_new])
    assert all(v == n * 1000 for _, n, v in values[first_new:])  # from the next call on
    assert "resurrect: reloaded reload_watch.py: changed work(), main()" in err
    labels = [label for label, _, _ in values]
    if sys.version_info >= (3, 12):
        first_upper = labels.index("STEP")
        assert set(labels[:first_upper]) == {"step"} and set(labels[first_upper:]) == {"STEP"}
        assert first_upper <= first_new + 1  # the loop switched at its next iteration
        assert "resurrect: main() continues in the new code (at the loop of line" in err
    else:
        assert set(labels) == {"step"}
        assert "main() at reload_watch.py:" in err and "runs its old code until it returns" in err


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a pseudo-terminal")
def test_reload_with_nothing_changed(tmp_path):
    with session(tmp_path, "reload_divide.py") as s:
        assert "no source file changed since it was loaded" in s.do("reload")
        s.finish("quit")
