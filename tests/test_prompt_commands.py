"""pdb's commands at the prompt, with pdb's names, as transcripts."""

from __future__ import annotations

import os
import subprocess
import sys

from cli_helpers import PROGRAMS, Session, child_env, in_order, marker, printed

FAIL = marker("divide.py", "fail")
CALL = marker("divide.py", "call")
MAIN = marker("divide.py", "main")


def test_where_lists_the_programs_frames_oldest_first():
    with Session("divide.py") as s:
        for command in ("where", "w", "bt"):
            out = s.do(command)
            in_order(
                out,
                f"  divide.py:{MAIN} in <module>",
                "    main()",
                f"  divide.py:{CALL} in main()",
                "    r = ratio(10, b)",
                f"> divide.py:{FAIL} in ratio()",
                "    quotient = numerator / denominator",
            )
            assert "resurrect" not in out and "runpy" not in out
        s.finish("quit")


def test_up_and_down_select_frames():
    with Session("divide.py") as s:
        out = s.do("up")
        assert f"> divide.py:{CALL} in main()" in out
        assert "-> r = ratio(10, b)  # @call" in out
        assert "> divide.py" in s.do("w").split("\n")[2]  # main is now selected
        assert f"> divide.py:{MAIN} in <module>" in s.do("u")
        assert "*** oldest frame" in s.do("up")
        assert f"> divide.py:{FAIL} in ratio()" in s.do("down 5")
        assert "*** newest frame" in s.do("d")
        assert f"> divide.py:{MAIN} in <module>" in s.do("up 2")
        assert s.do("p b").strip().startswith("***")  # module level: no `b`
        s.do("down")
        assert s.do("p b").strip() == "0"
        s.finish("quit")


def test_list_and_longlist():
    with Session("divide.py") as s:
        out = s.do("list")
        assert f"->  {FAIL}      quotient = numerator / denominator  # @fail" in out
        assert out.count("\n") == 11  # 11 lines around the current one
        more = s.do("l")
        assert f"{CALL}          r = ratio(10, b)  # @call" in more
        assert "->" not in more
        again = s.do("l .")
        assert f"->  {FAIL}" in again
        assert s.do("l 1, 2").split("\n")[:2] == [
            '   1  """Divides 10 by a few numbers; one of them is zero."""',
            "   2",
        ]
        whole = s.do("ll")
        assert whole.split("\n")[:3] == [
            f"   {FAIL - 1}  def ratio(numerator, denominator):",
            f"-> {FAIL}      quotient = numerator / denominator  # @fail",
            f"   {FAIL + 1}      return quotient  # @return",
        ]
        assert s.do("longlist") == whole
        s.finish("quit")


def test_p_pp_whatis_args():
    with Session("divide.py") as s:
        assert s.do("p numerator * 3").strip() == "30"
        assert s.do("p 'x' * 3").strip() == "'xxx'"
        assert s.do("pp {'k': list(range(3))}").strip() == "{'k': [0, 1, 2]}"
        assert s.do("whatis ratio").strip() == "Function ratio"
        assert s.do("whatis numerator").strip() == "<class 'int'>"
        assert s.do("whatis ValueError").strip() == "Class builtins.ValueError"
        assert s.do("args").strip().split("\n") == ["numerator = 10", "denominator = 0"]
        assert s.do("a").strip().split("\n") == ["numerator = 10", "denominator = 0"]
        assert "usage: p EXPR" in s.do("p")
        s.finish("quit")


def test_bare_expressions_and_statements_run_in_the_selected_frame():
    with Session("divide.py") as s:
        assert s.do("numerator + 1").strip() == "11"
        assert s.do("extra = numerator * 2") == ""
        assert s.do("p extra").strip() == "20"
        assert s.do("!denominator = 4") == ""  # `!` forces Python
        assert s.do("p denominator").strip() == "4"
        assert s.do("# a comment does nothing") == ""
        out, status = s.finish("retry")
    assert "results [10.0, 5.0, 2.5, 2.5]" in out
    assert status == 0


def test_assignment_in_an_outer_frame_changes_it():
    with Session("divide.py") as s:
        s.do("up")
        s.do("results.append('marker')")
        s.do("down")
        out, status = s.finish("use 1")
    assert "results [10.0, 5.0, 'marker', 1, 2.5]" in out
    assert status == 0


def test_interact_runs_python_in_the_frame():
    with Session("divide.py") as s:
        s.child.sendline("interact")
        s.expect(">>> ")
        s.child.sendline("denominator = 8")
        s.expect(">>> ")
        s.child.sendline("denominator * 2")
        assert "16" in s.expect(">>> ")
        s.child.sendeof()
        s.prompt()
        assert s.do("p denominator").strip() == "8"
        out, status = s.finish("retry")
    assert "results [10.0, 5.0, 1.25, 2.5]" in out
    assert status == 0


def test_help_lists_commands_and_explains_one():
    with Session("divide.py") as s:
        out = s.do("help")
        for usage in (
            "retry",
            "use EXPR",
            "leave [EXPR]",
            "where (w, bt)",
            "up [COUNT] (u)",
            "list [FIRST[, LAST] | .] (l)",
            "p EXPR",
            "interact",
            "!STATEMENT",
            "restarts",
        ):
            assert printed(out, "  " + usage), usage
        assert s.do("h") == out
        one = s.do("help use")
        assert one.startswith("use EXPR\n")
        assert "binds its targets" in one
        assert s.do("help w").startswith("where (w, bt)")
        assert "no help for 'nonesuch'" in s.do("help nonesuch")
        s.finish("quit")


def test_restarts_lists_the_restarts():
    with Session("divide.py") as s:
        out = s.do("restarts")
        in_order(out, "1 retry", "2 skip", "3 use EXPR", "7 quit")
        s.do("up")
        s.do("up")
        out = s.do("restarts")  # at module level: no `skip` of the last statement
        in_order(out, "1 retry", "raise", "quit")
        s.finish("quit")


def test_tab_completion_of_names_and_commands():
    with Session("divide.py") as s:
        s.send("p denomi\t")
        s.send("\n")
        out = s.prompt()
        assert "p denominator" in out
        assert out.rstrip().endswith("0")
        s.send("whati\t numerator\n")
        assert "<class 'int'>" in s.prompt()
        s.finish("quit")


def test_history_recalls_the_previous_command():
    with Session("divide.py") as s:
        assert s.do("p numerator + 32").strip() == "42"
        s.send("\x1b[A\n")  # up arrow, enter
        assert s.prompt().strip().endswith("42")
        s.finish("quit")


def test_colour_follows_no_color():
    with Session("divide.py", color=True) as s:
        raw = s.child.before
        assert "\x1b[1;31m" in raw  # the exception type, the marker
        assert ("\x1b[" in raw and "\x1b[35m" in raw) or "\x1b[1;35m" in raw  # keywords
        s.finish("quit")
    with Session("divide.py", color=False) as s:
        raw = s.child.before
        assert "\x1b[1;31m" not in raw and "\x1b[1;35m" not in raw
        s.finish("quit")


def test_the_prompt_talks_on_the_terminal_when_stdout_is_redirected(tmp_path):
    out_file = tmp_path / "out.txt"
    shell = f"exec {sys.executable} -m resurrect run divide.py > {out_file}"
    with Session(command=["/bin/sh", "-c", shell], cwd=PROGRAMS) as s:
        s.do("denominator = 10")
        _, status = s.finish("retry")
    assert status == 0
    assert out_file.read_text() == "results [10.0, 5.0, 1.0, 2.5]\n"


def test_the_prompt_keeps_off_a_redirected_stderr(tmp_path):
    out_file, err_file = tmp_path / "out.txt", tmp_path / "err.txt"
    shell = (
        f"exec {sys.executable} -m resurrect run --on-error pause divide.py"
        f" > {out_file} 2> {err_file}"
    )
    with Session(command=["/bin/sh", "-c", shell], cwd=PROGRAMS) as s:
        assert "ZeroDivisionError" in s.opened()
        s.do("denominator = 10")
        _, status = s.finish("retry")
    assert status == 0
    assert out_file.read_text() == "results [10.0, 5.0, 1.0, 2.5]\n"
    assert err_file.read_text() == ""


def test_without_a_terminal_the_prompt_uses_stderr_and_stdin():
    # No controlling terminal (new session) and pipes: commands come from stdin.
    p = subprocess.run(
        [sys.executable, "-m", "resurrect", "run", "--on-error", "pause", "divide.py"],
        cwd=PROGRAMS,
        input="p denominator\ndenominator = 2\nretry\n",
        capture_output=True,
        text=True,
        env=child_env(),
        start_new_session=True,
        timeout=60,
    )
    assert p.returncode == 0
    assert p.stdout == "results [10.0, 5.0, 5.0, 2.5]\n"
    in_order(p.stderr, "ZeroDivisionError", "(resurrect) 0", "(resurrect) (resurrect) ")
    assert "\x1b[" not in p.stderr  # not a terminal: no colour


def test_without_a_terminal_end_of_input_is_raise():
    p = subprocess.run(
        [sys.executable, "-m", "resurrect", "run", "--on-error", "pause", "divide.py"],
        cwd=PROGRAMS,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=child_env(),
        start_new_session=True,
        timeout=60,
    )
    plain = subprocess.run(
        [sys.executable, "divide.py"],
        cwd=PROGRAMS,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert p.returncode == plain.returncode == 1
    assert p.stderr.endswith(plain.stderr)
    assert os.linesep not in p.stdout
