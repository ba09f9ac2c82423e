"""The restarts at the prompt, each driven in a pseudo-terminal as a user types
them (``resurrect run PROGRAM``, stdin and stderr terminals: the default is to
pause)."""

from __future__ import annotations

from cli_helpers import Session, in_order, marker, printed, python

FAIL = marker("divide.py", "fail")
CALL = marker("divide.py", "call")


def test_the_prompt_shows_exception_location_source_locals_and_restarts():
    with Session("divide.py") as s:
        shown = s.opened()
        in_order(
            shown,
            "ZeroDivisionError: division by zero",
            f"paused before unwinding at divide.py:{FAIL} in ratio()",
            f"-> {FAIL}      quotient = numerator / denominator  # @fail",
            "locals:",
            "numerator = 10",
            "denominator = 0",
            "restarts:",
            "1 retry",
            "2 skip",
            "3 use EXPR",
            "4 leave [EXPR]",
            "5 rerun",
            "6 raise",
            "7 quit",
        )
        assert f"{FAIL - 1}  def ratio(numerator, denominator):" in shown
        s.finish("quit")


def test_retry_after_fixing_a_variable():
    with Session("divide.py") as s:
        assert s.do("denominator = 5") == ""
        out, status = s.finish("retry")
    assert "results [10.0, 5.0, 2.0, 2.5]" in out
    assert status == 0


def test_restart_by_number():
    with Session("divide.py") as s:
        s.do("denominator = 20")
        out, status = s.finish("1")  # retry
    assert "results [10.0, 5.0, 0.5, 2.5]" in out
    assert status == 0


def test_use_binds_the_assignment_targets():
    with Session("divide.py") as s:
        out, status = s.finish("use 7")
    assert "results [10.0, 5.0, 7, 2.5]" in out
    assert status == 0


def test_use_needs_a_value():
    with Session("divide.py") as s:
        assert "usage: use EXPR" in s.do("use")
        s.finish("quit")


def test_leave_returns_a_value_from_the_frame():
    with Session("divide.py") as s:
        out, status = s.finish("leave -1")
    assert "results [10.0, 5.0, -1, 2.5]" in out
    assert status == 0


def test_leave_without_a_value_returns_none():
    with Session("divide.py") as s:
        out, status = s.finish("leave")
    assert "results [10.0, 5.0, None, 2.5]" in out
    assert status == 0


def test_skip_continues_after_the_failing_statement():
    fail = marker("steps.py", "fail")
    with Session("steps.py") as s:
        assert f"steps.py:{fail} in main()" in s.opened()
        assert "ValueError: invalid literal for int() with base 10: 'second'" in s.opened()
        out, status = s.finish("skip")
    assert "done ['first', 'third']" in out
    assert status == 0


def test_an_impossible_restart_is_refused_and_the_program_stays_paused():
    with Session("flaky.py") as s:
        shown = s.opened()
        # a `raise` statement has no next statement: skip is listed as unavailable
        assert "skip" in shown and "unavailable: a `raise` has no next statement" in shown
        assert "cannot skip here: a `raise` has no next statement" in s.do("skip")
        assert "cannot use here" in s.do("use 1")
        out, status = s.finish("leave 99")
    assert "fetched 99 after 1 attempts" in out
    assert status == 0


def test_rerun_calls_the_function_again():
    with Session("flaky.py") as s:
        assert "ConnectionError: attempt 1 failed" in s.opened()
        out, status = s.finish("rerun")
    assert "fetched 42 after 2 attempts" in out
    assert status == 0


def _python_traceback(program: str) -> str:
    r = python(program)
    assert r.status == 1
    return r.stderr


def test_raise_propagates_with_pythons_traceback_and_exit_status():
    expected = _python_traceback("divide.py")
    with Session("divide.py") as s:
        out, status = s.finish("raise")
    assert status == 1
    assert out.split("\n", 1)[1] == expected  # after the echoed command


def test_continue_while_paused_on_an_exception_is_raise():
    expected = _python_traceback("divide.py")
    for command in ("continue", "c"):
        with Session("divide.py") as s:
            out, status = s.finish(command)
        assert status == 1
        assert out.split("\n", 1)[1] == expected


def test_end_of_input_is_raise():
    expected = _python_traceback("divide.py")
    with Session("divide.py") as s:
        out, status = s.finish(eof=True)
    assert status == 1
    assert expected in out


def test_quit_ends_the_program_with_status_1_after_cleanups():
    with Session("cleanup.py") as s:
        assert not printed(s.opened(), "finally ran")
        assert not printed(s.opened(), "resource closed")
        out, status = s.finish("quit")
    assert status == 1
    in_order(out, "finally ran", "resource closed")
    assert "Traceback" not in out


def test_the_prompt_opens_before_finally_and_exit_run():
    expected = _python_traceback("cleanup.py")
    with Session("cleanup.py") as s:
        shown = s.opened()
        assert printed(shown, "opened")
        assert not printed(shown, "finally ran") and not printed(shown, "resource closed")
        assert s.do("p res.closed").strip() == "False"
        out, status = s.finish("raise")
    assert status == 1
    in_order(out, "finally ran", "resource closed", "Traceback")
    assert out[out.index("Traceback") :] == expected


def test_chained_causes_are_shown():
    with Session("chained.py") as s:
        shown = s.opened()
        s.finish("quit")
    in_order(
        shown,
        "ConfigError: no port configured",
        "caused by KeyError: 'port'",
        "while handling ValueError: invalid literal for int() with base 10: 'localhost'",
        f"chained.py:{marker('chained.py', 'fail')} in load()",
    )


def test_a_failing_command_keeps_the_program_paused():
    with Session("divide.py") as s:
        assert "*** NameError: name 'nonesuch' is not defined" in s.do("p nonesuch")
        assert "*** ZeroDivisionError: division by zero" in s.do("1 / 0")
        assert "*** no restart numbered 42" in s.do("42")
        assert s.do("p denominator").strip() == "0"
        s.finish("quit")


# -- restarts on an outer frame (after `up`): the frames in between unwind first


def test_up_then_skip_skips_the_call_in_the_caller():
    with Session("divide.py") as s:
        assert f"divide.py:{CALL} in main()" in s.do("up")
        out, status = s.finish("skip")
    # `r` keeps its value from the previous iteration
    assert "results [10.0, 5.0, 5.0, 2.5]" in out
    assert status == 0


def test_up_then_retry_reruns_the_callers_statement():
    with Session("divide.py") as s:
        s.do("up")
        s.do("b = 4")
        out, status = s.finish("retry")
    assert "results [10.0, 5.0, 2.5, 2.5]" in out
    assert status == 0


def test_up_then_use_binds_the_callers_targets():
    with Session("divide.py") as s:
        s.do("up")
        out, status = s.finish("use 0")
    assert "results [10.0, 5.0, 0, 2.5]" in out
    assert status == 0


def test_up_then_restart_unwinds_inner_frames_first():
    with Session("cleanup.py") as s:
        s.do("up")  # to the module, inside the `with`
        out, status = s.finish("skip")  # skip `work(res, [5, 0])`
    in_order(out, "finally ran", "resource closed", "done 20")
    assert status == 0


def test_restarts_on_a_frame_without_resume_points_are_unavailable():
    with Session("json_hook.py") as s:
        out = s.do("up")  # json's own frame: the stdlib is not instrumented
        assert "decode" in out
        listing = s.do("restarts")
        assert "unavailable: JSONDecoder.raw_decode() has no resume points" in listing or (
            "has no resume points" in listing
        )
        assert "cannot retry here" in s.do("retry")
        s.do("down")
        out, status = s.finish("leave {'a': 1}")
    assert "{'a': 1}" in out
    assert status == 0


# -- the program's own restarts (restart_case)


def test_restart_case_restarts_are_listed_and_invoked_by_name():
    with Session("restart_prog.py") as s:
        shown = s.opened()
        in_order(
            shown,
            "use_default [ARGS]  use a default value for the entry (restart_case)",
            "drop_entry [ARGS]",
            "raise",
        )
        out, status = s.finish("use_default 40 + 2")
    assert "out [1, 42, 3]" in out
    assert status == 0


def test_restart_case_restart_by_number_without_arguments():
    with Session("restart_prog.py") as s:
        listing = s.do("restarts")
        number = next(line.split()[0] for line in listing.splitlines() if "drop_entry" in line)
        out, status = s.finish(number)
    assert "out [1, 'dropped', 3]" in out
    assert status == 0


# -- `-m MODULE` and `-c CODE` pause as scripts do


def test_a_module_run_with_dash_m_pauses():
    with Session("-m", "divide") as s:
        assert f"divide.py:{FAIL} in ratio()" in s.opened()
        assert "runpy" not in s.do("where")
        out, status = s.finish("use 3")
    assert "results [10.0, 5.0, 3, 2.5]" in out
    assert status == 0


def test_code_run_with_dash_c_pauses_and_shows_its_source():
    with Session("-c", "x = 1\ny = x // 0\nprint('y is', y)\n") as s:
        shown = s.opened()
        in_order(shown, "paused before unwinding at <string>:2 in <module>", "-> 2  y = x // 0")
        s.do("x = 0")
        s.do("y = 7")
        out, status = s.finish("skip")
    assert "y is 7" in out
    assert status == 0
