"""Skip-errors regions: ``@skip_errors`` and ``with skipping():``."""
# ruff: noqa: F841  (failing assignments whose targets are never read are the point)

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import resurrect
from resurrect import conditions, engine
from resurrect.conditions import handler_bind, use_value
from resurrect.engine import Action, Decision
from resurrect.skip import NoResumePointsError, SkippedError, skip_errors, skipping

PYTHON_DIR = Path(resurrect.__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _engine_defaults():
    saved = (engine.config.on_error, dict(engine.policies))
    engine.config.on_error = "raise"
    # Another test module may have replaced the engine's hooks.
    engine.enable()
    engine.signal_handlers = conditions._signal_handlers
    yield
    engine.config.on_error = saved[0]
    engine.policies.clear()
    engine.policies.update(saved[1])
    assert conditions._handler_stack.get() == ()


# ---------------------------------------------------------------------------
# The issue's example: nested decorated functions


@skip_errors
def inner_job(out):
    amd = [1, 2, 3]
    out.append("inner: before")
    value = amd[4]
    out.append(f"inner: after ({value if 'value' in dir() else 'no value'})")


@skip_errors
def outer_job(out):
    inner_job(out)
    out.append("outer: 1")
    item = [][2]
    out.append("outer: 2")
    return item if "item" in dir() else "done"


def test_nested_decorated_functions_every_statement_runs_and_both_failures_recorded():
    out = []
    assert outer_job(out) == "done"
    assert out == ["inner: before", "inner: after (no value)", "outer: 1", "outer: 2"]
    records = outer_job.skipped
    assert [(r.statement, type(r.exception)) for r in records] == [
        ("value = amd[4]", IndexError),
        ("item = [][2]", IndexError),
    ]
    assert [r.line for r in records] == [
        inner_job.__wrapped__.__code__.co_firstlineno + 4,
        outer_job.__wrapped__.__code__.co_firstlineno + 4,
    ]
    assert all(r.filename == __file__ for r in records)
    assert [r.function for r in records] == ["inner_job", "outer_job"]
    assert all(r.action == "skipped" for r in records)
    # The inner function's own record has its failure only.
    assert [r.statement for r in inner_job.skipped] == ["value = amd[4]"]


ISSUE_SCRIPT = """
from resurrect.skip import skip_errors


@skip_errors
def load():
    amd = [1, 2, 3]
    print("load: start")
    amd[4]
    print("load: done")


@skip_errors
def main():
    load()
    print("main: loaded")
    [0, 1][7]
    print("main: end")


main()
for r in main.skipped:
    print("skipped:", r.line, r.statement, type(r.exception).__name__)
"""


def run_script(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PYTHON_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NO_COLOR", None)
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_issue_example_as_a_script(tmp_path):
    p = run_script(tmp_path, ISSUE_SCRIPT)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "load: start",
        "load: done",
        "main: loaded",
        "main: end",
        "skipped: 9 amd[4] IndexError",
        "skipped: 17 [0, 1][7] IndexError",
    ]
    assert p.stderr == ""


def test_verbose_script_reports_on_stderr(tmp_path):
    p = run_script(
        tmp_path,
        ISSUE_SCRIPT.replace("@skip_errors\ndef main", "@skip_errors(verbose=True)\ndef main"),
    )
    assert p.returncode == 0, p.stderr
    assert "main: end" in p.stdout
    lines = p.stderr.splitlines()
    assert len(lines) == 2
    assert (
        lines[0].startswith("resurrect: skipped ") and "script.py:9: amd[4]: IndexError" in lines[0]
    )
    assert "script.py:17: [0, 1][7]: IndexError: list index out of range" in lines[1]


# ---------------------------------------------------------------------------
# Where statements are skipped


@skip_errors
def loop_body(items):
    out = []
    for x in items:
        out.append(10 // x)
    return out


def test_failing_statement_in_a_loop_skips_the_statement_not_the_loop():
    assert loop_body([1, 0, 5, 0, 2]) == [10, 2, 5]
    assert len(loop_body.skipped) == 2


def test_a_statement_reading_a_skipped_assignment_is_skipped_too():
    @skip_errors
    def f(items):
        out = []
        for x in items:
            y = 10 // x
            out.append(y)
        return out

    assert f([0, 1]) == [10]


@skip_errors
def nested_blocks(flag):
    out = []
    if flag:
        with open(os.devnull) as fh:
            try:
                out.append(1 / 0)
                out.append("try")
            finally:
                out.append("finally")
            out.append(fh.closed)
    while len(out) < 5:
        out.append(int("w"))
        out.append("while")
    return out


def test_nested_blocks():
    assert nested_blocks(True) == ["try", "finally", False, "while", "while"]


@resurrect.resumable
def helper(x):
    first = x["a"]
    second = x["b"]
    return (first if "first" in dir() else None, second if "second" in dir() else None)


@skip_errors(KeyError)
def calls_helper():
    return [helper({"a": 1}), helper({"b": 2})]


def test_instrumented_functions_called_from_the_region():
    assert calls_helper() == [(1, None), (None, 2)]
    assert [r.function for r in calls_helper.skipped] == ["helper", "helper"]


@resurrect.resumable
def check_positive(x):
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x


@skip_errors
def raise_in_callee():
    out = []
    for x in (1, -1, 2):
        out.append(check_positive(x))
    return out


def test_a_raise_is_not_skipped_the_callers_statement_is():
    assert raise_in_callee() == [1, 2]
    (record,) = raise_in_callee.skipped
    assert record.statement == "out.append(check_positive(x))"
    assert record.action == "skipped"
    assert "`raise` has no next statement" in record.note
    assert record.function == "raise_in_callee"


@skip_errors
def failing_return(x):
    out = [x]
    return out[5]


@skip_errors
def failing_last_statement(out):
    out.append(1)
    out.append(1 / 0)


def test_failing_return_returns_none_and_says_so():
    assert failing_return(1) is None
    (record,) = failing_return.skipped
    assert record.action == "returned None"
    assert "return" in record.note
    out = []
    assert failing_last_statement(out) is None
    assert out == [1]
    assert failing_last_statement.skipped[0].action == "returned None"


@skip_errors
def break_and_continue():
    out = []
    for i in range(10):
        if i == 1:
            continue
        out.append(int("x") if i == 2 else i)
        if i == 4:
            break
    out.append("end")
    return out


def test_break_and_continue_keep_their_meaning():
    assert break_and_continue() == [0, 3, 4, "end"]


@skip_errors(ZeroDivisionError)
def only_zero_division(x):
    a = 1 / 0
    b = int(x)
    return b


def test_exceptions_not_listed_behave_as_usual():
    assert only_zero_division("3") == 3
    with pytest.raises(ValueError):
        only_zero_division("x")
    # The region records only what it handled.
    assert [type(r.exception) for r in only_zero_division.skipped] == [ZeroDivisionError]


@skip_errors
def own_except(x):
    try:
        value = int(x)
    except ValueError:
        value = "own except"
    return value


def test_the_programs_own_except_inside_catches_first():
    assert own_except("x") == "own except"
    assert own_except.skipped == []


def test_an_except_outside_the_region_does_not_see_skipped_failures():
    try:
        result = loop_body([0, 1])
    except ZeroDivisionError:  # pragma: no cover
        result = "caught outside"
    assert result == [10]


@skip_errors
def top_level_raise():
    print("before")
    raise KeyError("cannot skip a raise")


def test_failure_leaving_the_region_is_recorded_as_propagated(capsys):
    with pytest.raises(KeyError):
        top_level_raise()
    (record,) = top_level_raise.skipped
    assert record.action == "propagated"
    assert "raise" in record.note


# ---------------------------------------------------------------------------
# with skipping()


@resurrect.resumable
def block_with_skipping(texts):
    total = 0
    with skipping(ValueError) as skipped:
        for t in texts:
            total += int(t)
    after = int("still raises") if texts == ["after"] else None
    return total, skipped, after


def test_skipping_block_and_its_record():
    total, skipped, _ = block_with_skipping(["1", "x", "2", "y"])
    assert total == 3
    assert [r.statement for r in skipped] == ["total += int(t)"] * 2
    assert all(isinstance(r, SkippedError) for r in skipped)
    assert str(skipped[0]).startswith(f"skipped {__file__}:")
    assert "ValueError: invalid literal" in str(skipped[0])
    # Outside the block, exceptions behave as usual.
    with pytest.raises(ValueError):
        block_with_skipping(["after"])


def test_skipping_without_resume_points_is_a_clear_error():
    with pytest.raises(NoResumePointsError) as e:
        with skipping():
            pass  # pragma: no cover
    message = str(e.value)
    assert "test_skipping_without_resume_points_is_a_clear_error" in message
    assert "@resurrect.skip_errors" in message and "resurrect run" in message


@resurrect.resumable
def nested_regions():
    with skipping() as outer:
        with skipping(KeyError) as inner:
            a = {}["k"]
            b = 1 / 0
        c = [][1]
    return outer, inner


def test_nested_regions_record_into_every_enclosing_region():
    outer, inner = nested_regions()
    assert [type(r.exception) for r in inner] == [KeyError, ZeroDivisionError]
    assert [type(r.exception) for r in outer] == [KeyError, ZeroDivisionError, IndexError]


# ---------------------------------------------------------------------------
# log, verbose, breakpoint


def test_log_targets(caplog):
    as_list: list = []
    calls: list = []
    logger = logging.getLogger("resurrect-test-skip")

    @skip_errors(log=as_list)
    def a():
        x = 1 / 0

    @skip_errors(log=calls.append)
    def b():
        x = 1 / 0

    @skip_errors(log=logger)
    def c():
        x = 1 / 0

    a()
    b()
    with caplog.at_level(logging.WARNING, logger="resurrect-test-skip"):
        c()
    assert [r.statement for r in as_list] == ["x = 1 / 0"]
    assert [r.statement for r in calls] == ["x = 1 / 0"]
    assert "x = 1 / 0: ZeroDivisionError: division by zero" in caplog.text
    with pytest.raises(TypeError, match="log must be"):
        skip_errors(log=3)


def test_the_same_log_gets_each_failure_once():
    shared: list = []

    @skip_errors(log=shared)
    def inner():
        x = 1 / 0

    @skip_errors(log=shared)
    def outer():
        inner()
        y = [][0]

    outer()
    assert [type(r.exception) for r in shared] == [ZeroDivisionError, IndexError]


def test_verbose_prints_each_to_stderr(capsys):
    loop_body_verbose = skip_errors(verbose=True)(loop_body.__wrapped__)
    loop_body_verbose([0, 0])
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert all(
        "out.append(10 // x): ZeroDivisionError: integer division or modulo by zero" in e
        for e in err
    )


def test_breakpoint_opens_the_prompt_at_each_failure():
    seen = []

    def pause(failure):
        seen.append(failure.statement.text)
        return Decision(Action.USE_VALUE, 99)

    engine.policies["pause"] = pause

    @skip_errors(breakpoint=True)
    def f():
        x = int("a")
        return x

    assert f() == 99
    assert seen == ['x = int("a")']
    assert f.skipped[0].action == "paused, then use"


def test_handler_bind_inside_the_region_runs_first():
    @skip_errors
    def f():
        with handler_bind({ValueError: lambda c: use_value(7)}):
            x = int("a")
        y = int("b")
        return x, "y" in dir()

    assert f() == (7, False)
    assert [r.statement for r in f.skipped] == ['y = int("b")']


# ---------------------------------------------------------------------------
# Kinds of functions


def test_generator_function_region_is_in_force_only_while_it_runs():
    @skip_errors
    def gen():
        for i in range(3):
            x = 1 // (i - 1)
            yield i

    consumed = []
    for v in gen():
        consumed.append(v)
    assert consumed == [0, 1, 2]
    assert len(gen.skipped) == 1
    # The consumer's own failures are not skipped while the generator is suspended.
    g = gen()
    next(g)
    with pytest.raises(ZeroDivisionError):
        int(1 / 0)
    assert g.send(None) == 1


def test_generator_throw_and_close():
    @skip_errors
    def gen():
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    closed = []
    g = gen()
    assert next(g) == 1
    g.close()
    assert closed == [True]
    # An exception thrown in at the `yield` is raised by that statement, inside
    # the region: skipped.
    g = gen()
    next(g)
    assert g.throw(KeyError("in")) == 2
    assert [type(r.exception) for r in gen.skipped] == [KeyError]


def test_coroutine_function():
    @skip_errors
    async def work():
        await asyncio.sleep(0)
        x = 1 / 0
        return "done"

    assert asyncio.run(work()) == "done"
    assert len(work.skipped) == 1


def test_methods():
    class Job:
        @skip_errors
        def run(self):
            x = 1 / 0
            return "ran"

        @staticmethod
        @skip_errors
        def static():
            x = [][0]
            return "static"

        @skip_errors
        @classmethod
        def cls(cls):
            x = {}[0]
            return cls.__name__

    assert Job().run() == "ran"
    assert Job.static() == "static"
    assert Job.cls() == "Job"


def test_bad_arguments():
    with pytest.raises(TypeError, match="exception class"):
        skip_errors("ValueError")
    with pytest.raises(TypeError, match="decorates a function"):
        skip_errors()(3)


def test_nested_functions_get_resume_points():
    @skip_errors
    def outer():
        def nested():
            a = 1 / 0
            return "nested ok"

        return nested()

    assert outer() == "nested ok"


def test_through_other_decorators():
    import functools

    def logged(fn):
        @functools.wraps(fn)
        def wrapper(*args):
            return fn(*args)

        return wrapper

    @skip_errors
    @logged
    def f():
        x = 1 / 0
        return "through"

    assert f() == "through"


def test_the_same_exception_object_raised_again_is_a_new_failure():
    error = ValueError("reused")

    @skip_errors
    def f():
        out = []
        for i in range(3):
            out.append(i)
            raise_it(error)
        return out

    @resurrect.resumable
    def raise_it(e):
        if e:
            raise e

    assert f() == [0, 1, 2]
    assert len(f.skipped) == 3


MODULE_LEVEL = """
from resurrect.skip import skipping

total = 0
with skipping(ValueError) as skipped:
    for token in ["1", "x", "3"]:
        total += int(token)
print("total", total, "skipped", len(skipped), skipped[0].statement)
"""


def test_module_level_block_under_resurrect_run(tmp_path):
    """`resurrect run` gives the script's module code resume points: a
    module-level `with skipping()` works there, and says how to fix it under
    plain `python`."""
    script = tmp_path / "script.py"
    script.write_text(MODULE_LEVEL)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PYTHON_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    run = [sys.executable, "-m", "resurrect", "run", "--on-error", "raise", str(script)]
    p = subprocess.run(
        run,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == "total 4 skipped 1 total += int(token)\n"
    p = run_script(tmp_path, MODULE_LEVEL)
    assert p.returncode == 1
    assert "NoResumePointsError" in p.stderr
    assert "move the block into a function decorated with @resurrect.skip_errors" in p.stderr
