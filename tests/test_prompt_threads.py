"""An uncaught exception in another thread pauses that thread (its name is
shown); the other threads keep running; one prompt at a time."""

from __future__ import annotations

import time

from cli_helpers import Session, in_order, marker


def test_a_failing_thread_pauses_while_the_main_thread_runs():
    with Session("threads_job.py") as s:
        shown = s.opened()
        in_order(
            shown,
            "ZeroDivisionError: integer division or modulo by zero",
            f"threads_job.py:{marker('threads_job.py', 'fail')} in handle()"
            " in thread 'worker-1' (other threads keep running)",
            "item = 0",
        )
        first = int(s.do("p ticks").strip())
        time.sleep(0.5)
        second = int(s.do("p ticks").strip())
        assert second > first  # the main thread kept counting
        where = s.do("where")
        in_order(where, "in worker()", "> threads_job.py")
        s.do("item = 50")
        out, status = s.finish("retry")
    assert "results [20, 2, 5]" in out
    assert "main ticked True" in out
    assert status == 0


def test_one_prompt_at_a_time():
    with Session("two_threads.py") as s:
        first = s.opened()
        name = "alpha" if "thread 'alpha'" in first else "beta"
        other = "beta" if name == "alpha" else "alpha"
        assert f"thread '{name}'" in first
        s.child.sendline("use 1")
        second = s.prompt()
        assert f"thread '{other}'" in second
        out, status = s.finish("use 2")
    expected = {name: 1, other: 2}
    assert f"results {sorted(expected.items())}" in out
    assert status == 0


def test_quit_in_a_thread_ends_the_program():
    with Session("threads_job.py") as s:
        out, status = s.finish("quit")
    assert status == 1
    assert "results" not in out
