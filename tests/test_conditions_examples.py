"""The documented examples of `python-cl-conditions` and of
`unpythonic.conditions`, rewritten for resurrect's condition system, and a
parser repaired from the top by a handler on a plain ``int("x")`` deep inside.

Differences of API, for the reader who knows those packages:

* ``handle(T, f)`` / ``handlers((T, f))`` -> ``handler_bind({T: f})``; a
  handler that returns *declines* (in python-cl-conditions returning meant
  "continue"; here a handler continues with ``continue_()`` after ``cerror``).
* ``restarts(name=f) as result`` + ``result << v`` / ``unbox(result)`` ->
  ``restart_case(name=f) as r`` + ``r.value = v`` / ``r.value``; the
  ``call(fn, *args)`` style is ``r(fn, *args)``.
* ``invoke``/``invoke_restart`` -> ``invoke_restart``; ``proceed`` -> ``continue_``;
  ``muffle`` -> ``muffle_warning``; ``RestartNotFoundError``/``ControlError``
  -> ``ControlError``; an unhandled ``error`` raises the condition itself.
* Ordinary exceptions work too: in instrumented code a plain ``a / b`` failing
  is a condition, no ``call`` wrapper needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import types
import warnings
from pathlib import Path
from queue import Queue

import pytest
import resurrect
from resurrect import conditions, engine
from resurrect.conditions import (
    ControlError,
    cerror,
    compute_restarts,
    continue_,
    error,
    find_restart,
    handler_bind,
    invoke_restart,
    muffle_warning,
    restart_case,
    signal,
    use_value,
    warn,
)

PYTHON_DIR = Path(resurrect.__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _engine_defaults():
    saved = engine.config.on_error
    engine.config.on_error = "raise"
    # Another test module may have replaced the engine's hooks.
    engine.enable()
    engine.signal_handlers = conditions._signal_handlers
    yield
    engine.config.on_error = saved
    assert conditions._handler_stack.get() == ()
    assert conditions._restart_stack.get() == ()


# ===========================================================================
# python-cl-conditions: README / example/example.py (Seibel's log parser)


class MalformedLogEntryError(RuntimeError):
    def __init__(self, text):
        self.text = text
        super().__init__("Malformed entry")


class LogEntry:
    def __init__(self, text):
        self.text = text

    def __str__(self):
        return f"LogEntry: {self.text}"


class MalformedLogEntry:
    def __init__(self, text):
        self.text = text

    def __str__(self):
        return f"MalformedEntry: {self.text}"


def well_formed_log_entry_p(text):
    return any(text.startswith(level) for level in ("ERROR: ", "INFO: ", "DEBUG: "))


def parse_log_entry(text):
    text = text.strip()
    if well_formed_log_entry_p(text):
        return LogEntry(text)

    def use_value(obj):
        return obj

    def reparse(text):
        return parse_log_entry(text)

    with restart_case(use_value, reparse) as call:
        return call(error, MalformedLogEntryError(text))


def analyze_log(filename, out):
    with open(filename) as f:
        for entry in map(parse_log_entry, f.readlines()):
            out.append(str(entry))


def find_all_logs(path):
    return sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".log"))


def log_analyzer(path, out):
    with handler_bind(
        {MalformedLogEntryError: lambda c: invoke_restart("use_value", MalformedLogEntry(c.text))}
    ):
        for filename in find_all_logs(path):
            analyze_log(filename, out)


def log_analyzer2(path, out):
    with handler_bind(
        {MalformedLogEntryError: lambda c: invoke_restart("reparse", "ERROR: " + c.text)}
    ):
        for filename in find_all_logs(path):
            analyze_log(filename, out)


@pytest.fixture
def logs(tmp_path):
    (tmp_path / "some.log").write_text("INFO: started\nthis line is broken\nERROR: failed\n")
    return tmp_path


def test_cl_conditions_log_analyzer_use_value(logs):
    out = []
    log_analyzer(logs, out)
    assert out == [
        "LogEntry: INFO: started",
        "MalformedEntry: this line is broken",
        "LogEntry: ERROR: failed",
    ]


def test_cl_conditions_log_analyzer_reparse(logs):
    out = []
    log_analyzer2(logs, out)
    assert out[1] == "LogEntry: ERROR: this line is broken"


def test_cl_conditions_log_analyzer_without_handler(logs):
    with pytest.raises(MalformedLogEntryError):
        analyze_log(find_all_logs(logs)[0], [])


# The same parser with no restart_case at all: a plain `raise` in instrumented
# code, repaired by the statement restart `use_value` of the caller's statement.


@resurrect.resumable
def parse_entry_plain(text):
    text = text.strip()
    if not well_formed_log_entry_p(text):
        raise MalformedLogEntryError(text)
    return LogEntry(text)


@resurrect.resumable
def analyze_plain(lines):
    out = []
    for line in lines:
        entry = parse_entry_plain(line)
        out.append(str(entry))
    return out


def test_log_parser_with_plain_exceptions_and_statement_restarts():
    def repair(c):
        # The innermost `use_value` that can apply: `parse_entry_plain`'s
        # failing statement is a `raise` (no value to use), so it is the
        # caller's `entry = parse_entry_plain(line)`.
        use_value(MalformedLogEntry(c.text))

    with handler_bind({MalformedLogEntryError: repair}):
        out = analyze_plain(["INFO: a", "junk", "DEBUG: b"])
    assert out == ["LogEntry: INFO: a", "MalformedEntry: junk", "LogEntry: DEBUG: b"]


# ===========================================================================
# python-cl-conditions: tests/test_conditions.py


class SampleError(RuntimeError):
    pass


class Messages:
    def __init__(self):
        self.messages = []

    def log(self, message):
        self.messages.append(message)

    def foo(self):
        self.log("FOO before signal")
        cerror(SampleError())
        self.log("FOO after signal")

    def bar(self):
        self.log("BAR")

    def blah(self):
        def choose_bar():
            self.log("Calling bar instead of failed foo")
            self.bar()

        with restart_case(choose_bar) as call:
            self.log("Calling foo")
            call(self.foo)


def test_cl_without_handler():
    m = Messages()
    with pytest.raises(SampleError):
        m.foo()
    assert m.messages == ["FOO before signal"]


@pytest.mark.parametrize("bound_to", [SampleError, RuntimeError])
def test_cl_with_handler_continuing(bound_to):
    m = Messages()

    def continue_execution(e):
        m.log("Continuing execution")
        continue_()

    with handler_bind({bound_to: continue_execution}):
        m.foo()
        m.bar()
    assert m.messages == ["FOO before signal", "Continuing execution", "FOO after signal", "BAR"]


def test_cl_with_restarts():
    m = Messages()
    with handler_bind({SampleError: lambda e: invoke_restart("choose_bar")}):
        m.blah()
    assert m.messages == [
        "Calling foo",
        "FOO before signal",
        "Calling bar instead of failed foo",
        "BAR",
    ]


def test_cl_when_restart_not_found():
    m = Messages()
    with handler_bind({SampleError: lambda e: invoke_restart("some_strange_restart")}):
        with pytest.raises(ControlError):
            m.blah()
    assert m.messages == ["Calling foo", "FOO before signal"]


def test_cl_when_restart_returns_value():
    def good_function():
        with restart_case(use_value=lambda value: value) as call:
            return call(bad_function)

    def bad_function():
        error(RuntimeError())

    with handler_bind({RuntimeError: lambda e: invoke_restart("use_value", 12345)}):
        result = good_function()
    assert result == 12345


@resurrect.resumable
def bad_function(a, b):
    return a / b  # a plain ZeroDivisionError: a condition in instrumented code


def good_function(b):
    def use_value(value):
        return value

    def try_value(value):
        return good_function(value)

    def throw(e):
        raise e

    with restart_case(use_value, try_value, throw) as call:
        return call(bad_function, 1000, b)


def test_cl_when_multiple_restarts():
    assert good_function(10) == 100
    with handler_bind({ZeroDivisionError: lambda e: invoke_restart("use_value", -1)}):
        assert good_function(0) == -1
    with handler_bind({ZeroDivisionError: lambda e: invoke_restart("try_value", 5)}):
        assert good_function(0) == 200
    with pytest.raises(ZeroDivisionError):
        with handler_bind({ZeroDivisionError: lambda e: invoke_restart("throw", e)}):
            good_function(0)


# ===========================================================================
# unpythonic: README


class MyError(ValueError):
    def __init__(self, value):
        self.value = value


def lowlevel(lst):
    _drop = object()
    out = []
    for k in lst:
        with restart_case(use_value=lambda x: x, halve=lambda x: x // 2, drop=lambda: _drop) as r:
            if k > 9000:
                error(MyError(k))
            r.value = k
        if r.value is not _drop:
            out.append(r.value)
    return out


def test_unpythonic_readme_highlevel():
    with handler_bind({MyError: lambda c: use_value(c.value)}):
        assert lowlevel([17, 10000, 23, 42]) == [17, 10000, 23, 42]
    with handler_bind({MyError: lambda c: invoke_restart("halve", c.value)}):
        assert lowlevel([17, 10000, 23, 42]) == [17, 5000, 23, 42]
    with handler_bind({MyError: lambda: invoke_restart("drop")}):
        assert lowlevel([17, 10000, 23, 42]) == [17, 23, 42]


def test_unpythonic_readme_highlevel_instrumented():
    """The same, with the low level instrumented: the explicit restarts still
    come first."""
    instrumented = resurrect.resumable(types.FunctionType(lowlevel.__code__, globals()))
    with handler_bind({MyError: lambda c: invoke_restart("halve", c.value)}):
        assert instrumented([17, 10000]) == [17, 5000]
    # ...and the statement restarts are there too: `skip` skips the error() call.
    with handler_bind({MyError: lambda c: invoke_restart("skip")}):
        assert instrumented([17, 10000]) == [17, 10000]


# unpythonic: doc/features.md, "Theoretical Python"


class TellMeHowToRecover(Exception):
    pass


def low():
    with restart_case(resume_low=lambda x: x) as r:
        signal(TellMeHowToRecover())
        r.value = "low level completed"
    return r.value + " > normal exit from low level"


def mid():
    with restart_case(resume_mid=lambda x: x) as r:
        r.value = low()
    return r.value + " > normal exit from mid level"


def test_unpythonic_three_levels():
    assert mid() == (
        "low level completed > normal exit from low level > normal exit from mid level"
    )
    with handler_bind(
        {TellMeHowToRecover: lambda c: invoke_restart("resume_low", "resumed at low level")}
    ):
        assert mid() == (
            "resumed at low level > normal exit from low level > normal exit from mid level"
        )
    with handler_bind(
        {TellMeHowToRecover: lambda c: invoke_restart("resume_mid", "resumed at mid level")}
    ):
        assert mid() == "resumed at mid level > normal exit from mid level"


# unpythonic: tests/test_conditions.py


class OddNumberError(Exception):
    def __init__(self, x):
        self.x = x


def basic_lowlevel():
    _drop = object()

    def bail(x):
        raise ValueError(x)

    out = []
    for k in range(10):
        with restart_case(
            use_value=lambda x: x, double=lambda x: 2 * x, drop=lambda x: _drop, bail=bail
        ) as r:
            if k % 2 == 1:
                cerror(OddNumberError(k))
            r.value = k
        if r.value is not _drop:
            out.append(r.value)
    return out


def test_unpythonic_basic_usage():
    with pytest.raises(OddNumberError):
        basic_lowlevel()
    with handler_bind({OddNumberError: continue_}):
        assert basic_lowlevel() == list(range(10))
    with handler_bind({OddNumberError: lambda c: use_value(c.x)}):
        assert basic_lowlevel() == list(range(10))
    with handler_bind({OddNumberError: lambda c: invoke_restart("double", c.x)}):
        assert basic_lowlevel() == [0, 2, 2, 6, 4, 10, 6, 14, 8, 18]
    with handler_bind({OddNumberError: lambda c: invoke_restart("drop", c.x)}):
        assert basic_lowlevel() == [0, 2, 4, 6, 8]
    with pytest.raises(ValueError, match="1"):
        with handler_bind({OddNumberError: lambda c: invoke_restart("bail", c.x)}):
            basic_lowlevel()


def test_unpythonic_restart_case_in_the_error_branch_only():
    def lowlevel2():
        out = []
        for k in range(10):
            if k % 2 == 1:
                with restart_case(use_value=lambda x: x) as r:
                    error(OddNumberError(k))
                out.append(r.value)
            else:
                out.append(k)
        return out

    with handler_bind({OddNumberError: lambda c: use_value(42)}):
        assert lowlevel2() == [0, 42, 2, 42, 4, 42, 6, 42, 8, 42]


class JustTesting(Exception):
    pass


def test_unpythonic_multiple_signal_types_with_one_handler():
    with handler_bind({(JustTesting, RuntimeError): lambda c: use_value(c)}):
        with restart_case(use_value=lambda x: x) as r:
            signal(JustTesting())
        assert isinstance(r.value, JustTesting)
        with restart_case(use_value=lambda x: x) as r:
            signal(RuntimeError())
        assert isinstance(r.value, RuntimeError)


def test_unpythonic_invoker_on_warn():
    with handler_bind({JustTesting: lambda c: invoke_restart("hello")}):
        with restart_case(hello=lambda: "hello") as r:
            warn(JustTesting())
            pytest.fail("not reached")
    assert r.value == "hello"


def test_unpythonic_live_inspection():
    with handler_bind({JustTesting: lambda c: invoke_restart("hello")}):
        with restart_case(hello=lambda: "hello", use_value=lambda x: x):
            names = [r.name for r in compute_restarts()]
    assert {"hello", "use_value"} <= set(names)


def test_unpythonic_alternate_syntax():
    with handler_bind({JustTesting: lambda c: use_value(42)}):
        with_usevalue = restart_case(use_value=lambda x: x)

        def mythunk():
            error(JustTesting())

        assert with_usevalue(mythunk) == 42
        assert restart_case(use_value=lambda x: x)(lambda: 21) == 21


def test_unpythonic_warn_protocol():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with restart_case() as r:
            warn(JustTesting("unhandled warn() prints a warning, but allows execution to continue"))
            r.value = 21
        assert r.value == 21
        with handler_bind({JustTesting: muffle_warning}):
            with restart_case() as r:
                warn(JustTesting("muffled"))
                r.value = 21
            assert r.value == 21
        with handler_bind({JustTesting: lambda c: use_value(42)}):
            with restart_case(use_value=lambda x: x) as r:
                warn(JustTesting("handled warn() does not print a warning"))
                pytest.fail("not reached")
            assert r.value == 42
    assert [str(w.message) for w in caught] == [
        "unhandled warn() prints a warning, but allows execution to continue"
    ]


def test_unpythonic_signal_with_cause():
    exc = JustTesting("Hello")
    with handler_bind({JustTesting: lambda c: use_value(c)}):
        with restart_case(use_value=lambda x: x) as r:
            signal(JustTesting("Hullo"))
        assert r.value.__cause__ is None
        for protocol in (signal, error, cerror, warn):
            with restart_case(use_value=lambda x: x) as r:
                protocol(JustTesting("Hullo"), cause=exc)
            assert r.value.__cause__ is exc
    with pytest.raises(JustTesting) as info:
        error(JustTesting("Hullo"), cause=exc)
    assert info.value.__cause__ is exc


def test_unpythonic_find_restart():
    class JustACondition(Exception):
        pass

    class NoItDidntExist(Exception):
        pass

    def invoke_if_exists(restart_name):
        r = find_restart(restart_name)
        if r:
            invoke_restart(r)
        raise NoItDidntExist()

    with handler_bind({JustACondition: lambda: invoke_if_exists("myrestart")}):
        with restart_case(myrestart=lambda: 42) as r:
            signal(JustACondition())
            pytest.fail("not reached")
        assert r.value == 42
    with pytest.raises(NoItDidntExist):
        with handler_bind({JustACondition: lambda: invoke_if_exists("myrestart")}):
            signal(JustACondition())


def test_unpythonic_error_cases():
    assert signal(RuntimeError("woo")) is None
    with pytest.raises(ControlError):
        invoke_restart("woo")
    with pytest.raises(ControlError):
        with restart_case(foo=lambda x: x):
            invoke_restart("bar")
    with pytest.raises(TypeError):
        signal(int)
    with pytest.raises(TypeError):
        signal(42)
    with pytest.raises(TypeError):
        restart_case(myrestart=42)
    with pytest.raises(TypeError):
        handler_bind(("ha ha ha", 42))


class HelpMe(Exception):
    def __init__(self, value):
        self.value = value


def test_unpythonic_name_shadowing():
    def lowlevel2():
        with restart_case(r=lambda x: x) as a:
            signal(HelpMe(21))
            pytest.fail("not reached")
        with restart_case(r=lambda x: x):
            with restart_case(r=lambda x: 2 * x) as b:
                signal(HelpMe(21))
                pytest.fail("not reached")
        return a.value, b.value

    with handler_bind({HelpMe: lambda c: invoke_restart("r", c.value)}):
        assert lowlevel2() == (21, 42)


def test_unpythonic_cancel_and_delegate():
    def lowlevel3():
        with restart_case(use_value=lambda x: x) as a:
            signal(HelpMe(42))
            pytest.fail("not reached")
        return a.value

    ran = []
    with handler_bind({HelpMe: lambda c: (ran.append("outer"), use_value(c.value))}):
        with handler_bind({HelpMe: lambda: ran.append("inner")}):
            assert lowlevel3() == 42
    assert ran == ["inner", "outer"]
    ran.clear()
    with handler_bind({HelpMe: lambda c: (ran.append("outer"), use_value(c.value))}):
        with handler_bind({HelpMe: lambda c: (ran.append("inner"), use_value(c.value))}):
            assert lowlevel3() == 42
    assert ran == ["inner"]


def test_unpythonic_thread_safety():
    comm: Queue = Queue()

    def lowlevel4(tag):
        with restart_case(use_value=lambda x: x) as r:
            signal(HelpMe((tag, 42)))
            r.value = (tag, 21)
        return r.value

    def worker(tid):
        with handler_bind({HelpMe: lambda c: use_value(c.value)}):
            comm.put(lowlevel4(tid))

    n = 100
    threads = [threading.Thread(target=worker, args=(tid,)) for tid in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [comm.get() for _ in range(n)]
    assert all(x == 42 for _, x in results)
    assert sorted(tag for tag, _ in results) == list(range(n))


# ===========================================================================
# A plain int("x") deep inside a parser, repaired from the top

PARSER = """
import sys
from resurrect import resumable
from resurrect.conditions import handler_bind, use_value


@resumable
def parse_number(token):
    value = int(token)          # a plain ValueError for "x"
    return value


@resumable
def parse_row(line):
    cells = []
    for token in line.split(","):
        cells.append(parse_number(token.strip()))
    return cells


@resumable
def parse_table(text):
    return [parse_row(line) for line in text.splitlines() if line.strip()]


def main():
    repaired = []

    def default_zero(condition):
        repaired.append(str(condition))
        use_value(0)            # `value = int(token)` binds 0 and goes on

    with handler_bind({ValueError: default_zero}):
        table = parse_table("1, 2, 3\\n4, x, 6\\n7, 8, nine\\n")
    print(table)
    print(len(repaired), "repaired:", repaired[0])


main()
"""


def test_parser_repaired_by_handler_at_the_top(tmp_path, monkeypatch, capsys):
    path = tmp_path / "parser.py"
    path.write_text(PARSER)
    code = compile(PARSER, str(path), "exec")
    exec(code, {"__name__": "parser_example"})
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "[[1, 2, 3], [4, 0, 6], [7, 8, 0]]",
        "2 repaired: invalid literal for int() with base 10: 'x'",
    ]


def test_parser_as_a_script(tmp_path):
    script = tmp_path / "parser.py"
    script.write_text(PARSER)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PYTHON_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "[[1, 2, 3], [4, 0, 6], [7, 8, 0]]",
        "2 repaired: invalid literal for int() with base 10: 'x'",
    ]
    assert p.stderr == ""


def test_parser_without_handler_raises(tmp_path):
    source = PARSER.replace("with handler_bind({ValueError: default_zero}):", "if True:")
    path = tmp_path / "parser_plain.py"
    path.write_text(source)
    with pytest.raises(ValueError, match="'x'"):
        exec(compile(source, str(path), "exec"), {"__name__": "parser_plain"})
