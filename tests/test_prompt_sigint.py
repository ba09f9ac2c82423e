"""Ctrl-C pauses the running program at the line it is executing;
``resurrect.pause()`` opens the prompt in the program; ``step``/``next``/
``return``/``continue`` then behave as in pdb."""

from __future__ import annotations

import time

from cli_helpers import Session, in_order, marker, python

SLEEP = marker("ticker.py", "sleep")
CALL = marker("ticker.py", "call")
INCR = marker("ticker.py", "incr")
WORK1 = marker("ticker.py", "work1")
WORK2 = marker("ticker.py", "work2")
WORK3 = marker("ticker.py", "work3")


def _interrupted(*args: str) -> Session:
    s = Session("ticker.py", *args, wait=False)
    s.expect("ready")
    time.sleep(0.3)
    s.interrupt()
    s.shown = s.prompt()
    return s


def test_ctrl_c_pauses_at_the_running_line_and_continue_resumes():
    with _interrupted("12") as s:
        shown = s.opened()
        in_order(
            shown,
            f"paused by Ctrl-C at ticker.py:{SLEEP} in main()",
            f"-> {SLEEP}          time.sleep(0.2)  # @sleep",
            "locals:",
            "limit = 12",
            "restarts:",
            "1 continue",
            "2 step",
            "3 next",
            "4 return",
            "5 raise",
            "6 quit",
        )
        assert "Traceback" not in shown
        assert not any(line.startswith("KeyboardInterrupt") for line in shown.split("\n"))
        s.do("i = 10")  # the loop ends sooner: the frame's variable changed
        out, status = s.finish("continue")
    assert "finished 12 " in out
    assert status == 0


def test_continue_resumes_inside_time_sleep():
    with Session("sleeper.py", wait=False) as s:
        s.expect("waiting")
        time.sleep(0.5)
        s.interrupt()
        shown = s.prompt()
        assert (
            f"paused by Ctrl-C at sleeper.py:{marker('sleeper.py', 'sleep')} in <module>" in shown
        )
        out, status = s.finish("c")
    assert status == 0
    slept = float(out.split("slept ")[1].split()[0])
    assert slept >= 2.0  # the sleep went on for its whole length (PEP 475)


def test_continue_resumes_a_blocking_read():
    with Session("sleeper.py", "read", wait=False) as s:
        s.expect("waiting")
        time.sleep(0.5)
        s.interrupt()
        shown = s.prompt()
        assert f"paused by Ctrl-C at sleeper.py:{marker('sleeper.py', 'read')}" in shown
        s.child.sendline("continue")
        time.sleep(0.3)
        s.child.sendline("hello")
        out, status = s.finish()
    assert "got 'hello'" in out
    assert status == 0


def test_continue_resumes_input_on_a_terminal():
    # input() holds GNU readline: the prompt reads the terminal without it
    with Session("sleeper.py", "input", wait=False) as s:
        s.expect("name? ")
        time.sleep(0.3)
        s.interrupt()
        shown = s.prompt()
        assert f"paused by Ctrl-C at sleeper.py:{marker('sleeper.py', 'input')}" in shown
        assert s.do("p 6 * 7").strip() == "42"
        s.child.sendline("continue")
        time.sleep(0.3)
        s.child.sendline("bob")
        out, status = s.finish()
    assert "hello bob" in out
    assert status == 0


def test_a_second_ctrl_c_at_the_prompt_ends_the_program():
    with _interrupted() as s:
        # As for python's own input(): a Ctrl-C that lands before readline
        # waits for input is noticed at the next key or signal. A person
        # is never that fast; the test waits as a person would.
        time.sleep(0.5)
        s.interrupt()
        out, status = s.finish()
    assert "ending the program" in out
    assert status == 1


def test_quit_after_ctrl_c():
    with _interrupted() as s:
        out, status = s.finish("quit")
    assert status == 1
    assert "Traceback" not in out


def test_raise_after_ctrl_c_is_pythons_keyboard_interrupt():
    with _interrupted() as s:
        out, status = s.finish("raise")
    assert status == -2  # killed by SIGINT, as python does for an uncaught Ctrl-C
    tail = out[out.index("Traceback") :]
    assert tail.splitlines()[-1] == "KeyboardInterrupt"
    assert "resurrect" not in tail
    assert f'File "{python_path("ticker.py")}", line ' in tail


def python_path(program: str) -> str:
    from cli_helpers import PROGRAMS

    return str(PROGRAMS / program)


def test_no_sigint_leaves_ctrl_c_alone():
    with Session("--no-sigint", "ticker.py", wait=False) as s:
        s.expect("ready")
        time.sleep(0.3)
        s.interrupt()
        out, status = s.finish()
    assert status == -2
    assert "(resurrect)" not in out
    assert out.rstrip().endswith("KeyboardInterrupt")


def test_step_next_return_continue_after_ctrl_c():
    with _interrupted("3") as s:
        assert f"ticker.py:{SLEEP} in main()" in s.opened()
        assert s.do("next").strip().split("\n") == [
            f"> ticker.py:{CALL} in main()",
            "-> total += work(i)  # @call",
        ]
        out = s.do("step")
        assert f"> --Call-- ticker.py:{WORK1 - 1} in work()" in out
        assert f"> ticker.py:{WORK1} in work()" in s.do("s")
        assert s.do("p i * 2").strip().isdigit()
        assert f"> ticker.py:{WORK2} in work()" in s.do("n")
        out = s.do("return")
        assert f"> --Return-- ticker.py:{WORK3} in work() -> " in out
        assert f"> ticker.py:{INCR} in main()" in s.do("next")
        assert f"> ticker.py:{CALL - 2}" in s.do("")  # an empty line repeats `next`
        out, status = s.finish("continue")
    assert "finished 3 " in out
    assert status == 0


def test_ctrl_c_pauses_again_after_stepping_ends():
    with _interrupted() as s:
        s.do("next")
        s.child.sendline("continue")
        time.sleep(0.5)
        s.interrupt()
        assert "paused by Ctrl-C at ticker.py:" in s.prompt()
        _, status = s.finish("quit")
    assert status == 1


def test_pause_opens_the_prompt_in_the_program():
    with Session("pause_prog.py") as s:
        shown = s.opened()
        in_order(
            shown,
            f"paused at pause_prog.py:{marker('pause_prog.py', 'pause')} in compute()",
            "x = 20",
            "y = 40",
            "1 continue",
        )
        s.do("y = 100")
        assert f"> pause_prog.py:{marker('pause_prog.py', 'after')} in compute()" in s.do("next")
        assert s.do("p z").startswith("***")  # not yet assigned
        s.do("n")
        assert s.do("p z").strip() == "101"
        out, status = s.finish("continue")
    assert "result 101" in out
    assert status == 0


def test_pause_end_of_input_continues():
    with Session("pause_prog.py") as s:
        out, status = s.finish(eof=True)
    assert "result 41" in out
    assert status == 0


def test_ticker_runs_normally_without_interruption():
    r = python("ticker.py", "2")
    assert r.status == 0 and "finished 2 4" in r.stdout
