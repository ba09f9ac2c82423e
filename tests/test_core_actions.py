"""Each action of the engine (retry, skip, use value, leave, rerun, propagate)
at resume points inside every kind of block, and the program's own error
handling left exactly as plain Python has it.

Every test runs in a forked child (``isolated``): a crash fails the test.
The policy (fixture ``policy``) answers only for ``KeyError``s; anything else
propagates. ``retry`` and ``rerun`` first fix the failing frame's ``data``
(``data["k"] = 10``) through ``run_in_frame``, so the statement succeeds the
second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import sys
import unittest
import weakref

import pytest
from resurrect import _core, _frames, engine, instrument_code, resumable
from resurrect.engine import Action, Decision

pytestmark = pytest.mark.isolated(timeout=60)

V = sys.version_info[:2]

ACTIONS = {
    "retry": (Action.RETRY, None),
    "skip": (Action.SKIP, None),
    "use": (Action.USE_VALUE, 5),
    "leave": (Action.LEAVE, "left"),
    "rerun": (Action.RERUN, None),
    "raise": (Action.PROPAGATE, None),
}


def decider(name: str, fix: str = "data['k'] = 10"):
    """A policy answer: ``name``'s action for ``KeyError``s, propagate otherwise."""
    action, value = ACTIONS[name]

    def decide(failure):
        if not isinstance(failure.exception, KeyError):
            return Decision(Action.PROPAGATE)
        if action in (Action.RETRY, Action.RERUN):
            _frames.run_in_frame(failure.frame, fix)
        return Decision(action, value)

    return decide


def outcome(fn, *args, **kwargs):
    """``("return", value)`` or ``("raise", exception type name)``."""
    try:
        return ("return", fn(*args, **kwargs))
    except Exception as e:
        return ("raise", type(e).__name__)


def marker_line(marker: str) -> int:
    """Line number of the line of this file marked with the comment ``# @marker``."""
    with open(__file__) as f:
        for number, line in enumerate(f, 1):
            if re.search(rf"# @{re.escape(marker)}(\s|$)", line):
                return number
    raise LookupError(marker)


class CM:
    """A context manager that logs ``enter`` and ``exit`` with the exception type
    and records the arguments of every ``__exit__`` call."""

    def __init__(self, log, name="cm", suppress=False):
        self.log = log
        self.name = name
        self.suppress = suppress
        self.exits = []

    def __enter__(self):
        self.log.append(("enter", self.name))
        return self

    def __exit__(self, et, ev, tb):
        self.log.append(("exit", self.name, et))
        self.exits.append((et, ev, tb))
        return self.suppress


ENTER = ("enter", "cm")
EXIT_OK = ("exit", "cm", None)
EXIT_KEYERROR = ("exit", "cm", KeyError)


# ---------------------------------------------------------------------------
# for / while


@resumable
def in_for(data, log):
    total = 0
    for i in range(3):
        x = 0
        x = data["k"] + i  # @for
        log.append(x)
        total += x
    return total


@resumable
def in_while(data, log):
    total = 0
    i = 0
    while i < 3:
        x = 0
        x = data["k"] + i  # @while
        log.append(x)
        total += x
        i += 1
    return total


LOOP_EXPECTED = {
    # action: (outcome, log, policy calls)
    "retry": (("return", 33), [10, 11, 12], 1),
    "skip": (("return", 0), [0, 0, 0], 3),
    "use": (("return", 15), [5, 5, 5], 3),
    "leave": (("return", "left"), [], 1),
    "rerun": (("return", 33), [10, 11, 12], 1),
    "raise": (("raise", "KeyError"), [], 1),
}


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("fn", [in_for, in_while], ids=["for", "while"])
def test_loops(policy, fn, action):
    policy.decide = decider(action)
    log = []
    result, expected_log, ncalls = LOOP_EXPECTED[action]
    assert outcome(fn, {}, log) == result
    assert log == expected_log
    assert len(policy.calls) == ncalls
    marker = "for" if fn is in_for else "while"
    assert {c.line for c in policy.calls} == {marker_line(marker)}
    assert policy.calls[0].text == 'x = data["k"] + i  # @' + marker


@resumable
def nested_loops(data, log, make_iter):
    for i in make_iter(2):
        for j in make_iter(2):
            log.append((i, j))
            if (i, j) == (1, 0):
                data["k"]  # @nested-loops
    return "end"


class TrackedIter:
    """An iterator whose lifetime the test can watch."""

    def __init__(self, n):
        self.it = iter(range(n))

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.it)


def test_leave_pops_every_loop_iterator(policy):
    policy.decide = decider("leave")
    made = []

    def make_iter(n):
        it = TrackedIter(n)
        made.append(weakref.ref(it))
        return it

    log = []
    assert nested_loops({}, log, make_iter) == "left"
    assert log == [(0, 0), (0, 1), (1, 0)]
    gc.collect()
    assert [r() for r in made] == [None, None, None, None][: len(made)]


def test_skip_in_nested_loops_continues_the_inner_loop(policy):
    policy.decide = decider("skip")
    log = []
    assert nested_loops({}, log, TrackedIter) == "end"
    assert log == [(0, 0), (0, 1), (1, 0), (1, 1)]


@resumable
def while_condition(data, log):
    n = 0
    while data["k"] > n:  # @while-condition
        log.append(n)
        n += 1
    return n


def test_skip_of_a_while_condition_leaves_the_loop(policy):
    policy.decide = decider("skip")
    log = []
    assert while_condition({}, log) == 0
    assert log == []
    assert [c.line for c in policy.calls] == [marker_line("while-condition")]


def test_retry_of_a_while_condition(policy):
    policy.decide = decider("retry", fix="data['k'] = 3")
    log = []
    assert while_condition({}, log) == 3
    assert log == [0, 1, 2]


@resumable
def if_condition(data, log):
    if data["k"]:  # @if-condition
        log.append("then")
    else:
        log.append("else")
    log.append("after")


def test_skip_of_an_if_condition_takes_the_false_branch(policy):
    policy.decide = decider("skip")
    log = []
    if_condition({}, log)
    assert log == ["else", "after"]


class FlakyIterator:
    """Raises ``KeyError`` from ``__next__`` at the given positions (once each)."""

    def __init__(self, items, fail_at):
        self.items = list(items)
        self.pos = 0
        self.fail_at = set(fail_at)

    def __iter__(self):
        return self

    def __next__(self):
        if self.pos in self.fail_at:
            self.fail_at.discard(self.pos)
            self.pos += 1
            raise KeyError("flaky")
        if self.pos >= len(self.items):
            raise StopIteration
        self.pos += 1
        return self.items[self.pos - 1]


@resumable
def loop_over(it, log):
    for x in it:  # @loop-advance
        log.append(x)
    return "end"


@pytest.mark.parametrize("action", ["retry", "skip"])
def test_loop_advance_resume_point(policy, action):
    """An exception from the iterator's ``__next__`` stops at the loop's own resume
    point: retry and skip both fetch the next item (the failed one is lost)."""
    policy.always(ACTIONS[action][0])
    log = []
    assert loop_over(FlakyIterator("abcd", fail_at={1}), log) == "end"
    assert log == ["a", "c", "d"]
    assert [c.kind for c in policy.calls] == ["loop"]
    assert policy.calls[0].line == marker_line("loop-advance")


def test_loop_advance_leave_and_raise(policy):
    policy.always(Action.LEAVE, "left")
    log = []
    assert loop_over(FlakyIterator("abcd", fail_at={2}), log) == "left"
    assert log == ["a", "b"]
    policy.always(Action.PROPAGATE)
    assert outcome(loop_over, FlakyIterator("abcd", fail_at={2}), []) == ("raise", "KeyError")


# ---------------------------------------------------------------------------
# with


@resumable
def in_with(data, log, cm):
    with cm:
        x = 0
        x = data["k"]  # @with
        log.append(x)
    log.append("after")
    return x


WITH_EXPECTED = {
    "retry": (("return", 10), [ENTER, 10, EXIT_OK, "after"]),
    "skip": (("return", 0), [ENTER, 0, EXIT_OK, "after"]),
    "use": (("return", 5), [ENTER, 5, EXIT_OK, "after"]),
    "leave": (("return", "left"), [ENTER, EXIT_OK]),
    "rerun": (("return", 10), [ENTER, EXIT_OK, ENTER, 10, EXIT_OK, "after"]),
    "raise": (("raise", "KeyError"), [ENTER, EXIT_KEYERROR]),
}


@pytest.mark.parametrize("action", ACTIONS)
def test_with(policy, action):
    policy.decide = decider(action)
    log = []
    cm = CM(log)
    result, expected_log = WITH_EXPECTED[action]
    assert outcome(in_with, {}, log, cm) == result
    assert log == expected_log
    assert len(policy.calls) == 1
    if action == "raise":
        ((et, ev, tb),) = cm.exits
        assert et is KeyError and ev is policy.calls[0].exception
        # The traceback __exit__ saw is the innermost part of the final one.
        chain = ev.__traceback__
        while chain is not None and chain is not tb:
            chain = chain.tb_next
        assert chain is tb and tb.tb_frame.f_code is in_with.__code__
    elif action == "leave":
        assert cm.exits == [(None, None, None)]


@resumable
def nested_with_for(data, log):
    with CM(log, "outer"):
        for i in range(3):
            with CM(log, "inner"):
                log.append(i)
                if i == 1:
                    data["k"]  # @nested-with
    return "end"


def test_leave_exits_nested_with_blocks_innermost_first(policy):
    policy.decide = decider("leave")
    log = []
    assert nested_with_for({}, log) == "left"
    assert log == [
        ("enter", "outer"),
        ("enter", "inner"),
        0,
        ("exit", "inner", None),
        ("enter", "inner"),
        1,
        ("exit", "inner", None),
        ("exit", "outer", None),
    ]


def test_raise_exits_nested_with_blocks_with_the_exception(policy):
    log = []
    assert outcome(nested_with_for, {}, log) == ("raise", "KeyError")
    assert log[-2:] == [("exit", "inner", KeyError), ("exit", "outer", KeyError)]
    assert len(policy.calls) == 1


def test_suppressing_with_is_not_overridden(policy):
    """A ``with`` whose ``__exit__`` swallows the exception: plain Python goes on
    after the block. The engine cannot know a custom ``__exit__`` suppresses, so
    the policy is asked; propagating must give exactly the plain behaviour."""
    log = []
    cm = CM(log, suppress=True)
    assert outcome(in_with, {}, log, cm) == ("return", 0)
    assert log == [ENTER, EXIT_KEYERROR, "after"]
    assert cm.exits[0][0] is KeyError


@resumable
def with_header(data, log):
    with CM(log, data["k"]):  # @with-header
        log.append("body")
    return "end"


def test_retry_with_header(policy):
    policy.decide = decider("retry")
    log = []
    assert with_header({}, log) == "end"
    assert log == [("enter", 10), "body", ("exit", 10, None)]


# ---------------------------------------------------------------------------
# try / except / else / finally


@resumable
def in_try(data, log):
    x = 0
    try:
        x = data["k"]  # @try
        log.append(x)
    except ValueError:
        log.append("except")
    else:
        log.append("else")
    finally:
        log.append("finally")
    return x


TRY_EXPECTED = {
    "retry": (("return", 10), [10, "else", "finally"]),
    "skip": (("return", 0), [0, "else", "finally"]),
    "use": (("return", 5), [5, "else", "finally"]),
    # leaving would skip the `finally` block: refused, the exception propagates
    "leave": (("raise", "KeyError"), ["finally"]),
    "rerun": (("raise", "KeyError"), ["finally"]),
    "raise": (("raise", "KeyError"), ["finally"]),
}


@pytest.mark.parametrize("action", ACTIONS)
def test_try_body(policy, action, capsys):
    policy.decide = decider(action)
    log = []
    result, expected_log = TRY_EXPECTED[action]
    assert outcome(in_try, {}, log) == result
    assert log == expected_log
    assert len(policy.calls) == 1
    err = capsys.readouterr().err
    if action in ("leave", "rerun"):
        assert "finally" in err and f"cannot {ACTIONS[action][0].value}" in err
    else:
        assert "cannot" not in err


@resumable
def in_except(data, log):
    x = 0
    try:
        raise ValueError("handled")
    except ValueError as e:
        log.append(str(e))
        x = data["k"]  # @except
        log.append(x)
    log.append(("after", sys.exc_info()[0]))
    return x


# (called while the caller handles an OSError: after the `except` block the
# function sees the caller's exception again)
EXCEPT_EXPECTED = {
    "retry": (("return", 10), ["handled", 10, ("after", OSError)]),
    "skip": (("return", 0), ["handled", 0, ("after", OSError)]),
    "use": (("return", 5), ["handled", 5, ("after", OSError)]),
    "leave": (("return", "left"), ["handled"]),
    "rerun": (("return", 10), ["handled", "handled", 10, ("after", OSError)]),
    "raise": (("raise", "KeyError"), ["handled"]),
}


@pytest.mark.parametrize("action", ACTIONS)
def test_except_body(policy, action):
    policy.decide = decider(action)
    log = []
    result, expected_log = EXCEPT_EXPECTED[action]
    outer = OSError("outer")
    try:
        raise outer
    except OSError:
        assert outcome(in_except, {}, log) == result
        # The exception state of the caller is restored (POP_EXCEPT on leave).
        assert sys.exc_info()[1] is outer
    assert sys.exc_info() == (None, None, None)
    assert log == expected_log
    assert [c.line for c in policy.calls] == [marker_line("except")]


def test_except_body_raise_keeps_the_context(policy):
    with pytest.raises(KeyError) as info:
        in_except({}, [])
    assert isinstance(info.value.__context__, ValueError)


@resumable
def in_else(data, log):
    x = 0
    try:
        log.append("try")
    except ValueError:
        log.append("except")
    else:
        x = data["k"]  # @else
        log.append(x)
    return x


ELSE_EXPECTED = {
    "retry": (("return", 10), ["try", 10]),
    "skip": (("return", 0), ["try", 0]),
    "use": (("return", 5), ["try", 5]),
    "leave": (("return", "left"), ["try"]),
    "rerun": (("return", 10), ["try", "try", 10]),
    "raise": (("raise", "KeyError"), ["try"]),
}


@pytest.mark.parametrize("action", ACTIONS)
def test_else_body(policy, action):
    policy.decide = decider(action)
    log = []
    result, expected_log = ELSE_EXPECTED[action]
    assert outcome(in_else, {}, log) == result
    assert log == expected_log
    assert [c.line for c in policy.calls] == [marker_line("else")]


@resumable
def in_finally(data, log):
    x = 0
    try:
        log.append("try")
    finally:
        x = data["k"]  # @finally
        log.append(x)
    return x


FINALLY_EXPECTED = {
    "retry": (("return", 10), ["try", 10]),
    "skip": (("return", 0), ["try", 0]),
    "use": (("return", 5), ["try", 5]),
    "leave": (("return", "left"), ["try"]),
    "rerun": (("return", 10), ["try", "try", 10]),
    "raise": (("raise", "KeyError"), ["try"]),
}


@pytest.mark.parametrize("action", ACTIONS)
def test_finally_body_normal_path(policy, action):
    policy.decide = decider(action)
    log = []
    result, expected_log = FINALLY_EXPECTED[action]
    assert outcome(in_finally, {}, log) == result
    assert log == expected_log


@resumable
def in_finally_exceptional(data, log):
    x = 0
    try:
        raise ValueError("in flight")  # @in-flight
    finally:
        x = data["k"]  # @finally-exceptional
        log.append(x)
    return x


FINALLY_EXCEPTIONAL_EXPECTED = {
    # the `finally` goes on and re-raises the exception in flight
    "retry": (("raise", "ValueError"), [10]),
    "skip": (("raise", "ValueError"), [0]),
    "use": (("raise", "ValueError"), [5]),
    # leaving from a `finally` that handles an exception is refused
    "leave": (("raise", "KeyError"), []),
    "rerun": (("raise", "KeyError"), []),
    "raise": (("raise", "KeyError"), []),
}


@pytest.mark.parametrize("action", ACTIONS)
def test_finally_body_exceptional_path(policy, action, capsys):
    policy.decide = decider(action)
    log = []
    result, expected_log = FINALLY_EXCEPTIONAL_EXPECTED[action]
    assert outcome(in_finally_exceptional, {}, log) == result
    assert log == expected_log
    assert [(type(c.exception), c.line) for c in policy.calls][-1] == (
        KeyError,
        marker_line("finally-exceptional"),
    )
    if action in ("leave", "rerun"):
        err = capsys.readouterr().err
        assert "inside a `finally` block that is handling an exception" in err


def test_finally_runs_on_propagate(policy):
    log = []

    @resumable
    def f(data):
        try:
            for i in range(2):
                try:
                    data["k"]
                finally:
                    log.append(("inner finally", i))
        finally:
            log.append("outer finally")

    assert outcome(f, {}) == ("raise", "KeyError")
    assert log == [("inner finally", 0), "outer finally"]
    assert len(policy.calls) == 1


def test_refused_action_reports_why(policy):
    """The policy can ask why an action is impossible before choosing it."""
    reasons = {}

    def decide(failure):
        if isinstance(failure.exception, KeyError):
            reasons.update({a: failure.refusal(a) for a in Action if a is not Action.TRANSFER})
        return Decision(Action.PROPAGATE)

    policy.decide = decide
    assert outcome(in_finally_exceptional, {}, []) == ("raise", "KeyError")
    print(reasons)
    assert reasons[Action.RETRY] is None
    assert reasons[Action.SKIP] is None
    assert reasons[Action.PROPAGATE] is None
    assert reasons[Action.LEAVE] == "inside a `finally` block that is handling an exception"
    assert reasons[Action.RERUN] == reasons[Action.LEAVE]


# ---------------------------------------------------------------------------
# nested functions and closures


@resumable
def outer_fn(data, log):
    def inner(n):
        y = 0
        y = data["k"] + n  # @nested
        log.append(y)
        return y

    return [inner(1), inner(2)]


NESTED_EXPECTED = {
    "retry": (("return", [11, 12]), [11, 12], 1),
    "skip": (("return", [0, 0]), [0, 0], 2),
    "use": (("return", [5, 5]), [5, 5], 2),
    "leave": (("return", ["left", "left"]), [], 2),
    "rerun": (("return", [11, 12]), [11, 12], 1),
    "raise": (("raise", "KeyError"), [], 1),
}


@pytest.mark.parametrize("action", ACTIONS)
def test_nested_function(policy, action):
    policy.decide = decider(action)
    log = []
    result, expected_log, ncalls = NESTED_EXPECTED[action]
    assert outcome(outer_fn, {}, log) == result
    assert log == expected_log
    assert len(policy.calls) == ncalls
    assert {c.function for c in policy.calls} == {"inner"}


@resumable
def closure(data, log):
    count = 0

    def bump():
        nonlocal count
        count = data["k"] + count  # @closure
        log.append(count)

    bump()
    bump()
    return count


CLOSURE_EXPECTED = {
    "retry": (("return", 20), [10, 20], 1),
    "skip": (("return", 0), [0, 0], 2),
    "use": (("return", 5), [5, 5], 2),
    "leave": (("return", 0), [], 2),
    "rerun": (("return", 20), [10, 20], 1),
    "raise": (("raise", "KeyError"), [], 1),
}


@pytest.mark.parametrize("action", ACTIONS)
def test_closure_nonlocal(policy, action):
    policy.decide = decider(action)
    log = []
    result, expected_log, ncalls = CLOSURE_EXPECTED[action]
    assert outcome(closure, {}, log) == result
    assert log == expected_log
    assert len(policy.calls) == ncalls


@resumable
def cell_variable(data):
    x = 0
    x = data["k"]  # @cell
    get = lambda: x  # noqa: E731
    return get()


@pytest.mark.parametrize("action", ["retry", "skip", "use", "leave", "rerun"])
def test_cell_variable_of_the_failing_frame(policy, action):
    policy.decide = decider(action)
    expected = {"retry": 10, "skip": 0, "use": 5, "leave": "left", "rerun": 10}[action]
    assert cell_variable({}) == expected


def test_free_variable_edited_by_the_policy(policy):
    """The policy assigns a free variable of the failing frame; the enclosing
    function sees the new value."""

    @resumable
    def make():
        limit = None

        def check():
            return 10 // limit  # @free-var

        return check, lambda: limit

    check, get_limit = make()

    def decide(failure):
        _frames.run_in_frame(failure.frame, "limit = 5")
        return Decision(Action.RETRY)

    policy.decide = decide
    assert check() == 2
    assert get_limit() == 5
    assert policy.exceptions == ["TypeError"]


# ---------------------------------------------------------------------------
# methods


@resumable
class Account:
    def __init__(self, data):
        self.data = data
        self.balance = 0

    def deposit(self, n):
        self.balance = self.data["k"] + n  # @method
        return self.balance

    @classmethod
    def from_data(cls, data):
        acc = cls(data)
        acc.balance = data["k"]  # @classmethod
        return acc.balance

    @staticmethod
    def static(data):
        return data["k"]  # @staticmethod

    @property
    def prop(self):
        return self.data["k"]  # @property


METHOD_EXPECTED = {
    "retry": (("return", 11), 11),
    "skip": (("return", 0), 0),
    "use": (("return", 5), 5),
    "leave": (("return", "left"), 0),
    "rerun": (("return", 11), 11),
    "raise": (("raise", "KeyError"), 0),
}


@pytest.mark.parametrize("action", ACTIONS)
def test_method(policy, action):
    policy.decide = decider(action, fix="self.data['k'] = 10")
    acc = Account({})
    result, balance = METHOD_EXPECTED[action]
    assert outcome(acc.deposit, 1) == result
    assert acc.balance == balance
    assert [c.function for c in policy.calls] == ["deposit"]


@pytest.mark.parametrize("kind", ["classmethod", "staticmethod", "property"])
def test_other_methods_retry(policy, kind):
    policy.decide = decider("retry")
    if kind == "property":
        policy.decide = decider("retry", fix="self.data['k'] = 10")
        assert Account({}).prop == 10
    elif kind == "classmethod":
        assert Account.from_data({}) == 10
    else:
        assert Account.static({}) == 10
    assert [c.line for c in policy.calls] == [marker_line(kind)]


def test_use_value_on_attribute_subscript_and_unpacking_targets(policy):
    @resumable
    def f(data, obj, out):
        a, (b, c) = data["k"]  # @unpack
        obj.attr = data["k"]  # @attribute
        out["key"] = data["k"]  # @subscript
        d = e = data["k"]  # @chained
        g: int = data["k"]  # @annotated
        return a, b, c, d, e, g

    values = iter([(1, (2, 3)), "A", "S", "D", 7])
    policy.decide = lambda failure: Decision(Action.USE_VALUE, next(values))

    class Obj:
        pass

    obj, out = Obj(), {}
    assert f({}, obj, out) == (1, 2, 3, "D", "D", 7)
    assert obj.attr == "A" and out == {"key": "S"}
    assert [c.line for c in policy.calls] == [
        marker_line(m) for m in ("unpack", "attribute", "subscript", "chained", "annotated")
    ]


def test_use_value_binds_locals_read_by_superinstructions(policy):
    @resumable
    def f(data):
        a = data["k"]
        b = 2
        return a, b  # LOAD_FAST_LOAD_FAST on 3.13

    policy.decide = decider("use")
    assert f({}) == (5, 2)


def test_use_value_on_return_and_expression_statements(policy):
    @resumable
    def f(data, log):
        data["k"]  # @expression
        log.append("after expression")
        return data["k"] + 1  # @return

    policy.always(Action.USE_VALUE, 42)
    log = []
    assert f({}, log) == 42
    assert log == ["after expression"]


# ---------------------------------------------------------------------------
# generators and coroutines


@resumable
def gen(data, log):
    for i in range(3):
        x = 0
        x = data["k"] + i  # @generator
        log.append(x)
        yield x
    return "done"


def drain(g):
    items = []
    while True:
        try:
            items.append(next(g))
        except StopIteration as stop:
            return items, stop.value


GEN_EXPECTED = {
    "retry": (("return", ([10, 11, 12], "done")), 1),
    "skip": (("return", ([0, 0, 0], "done")), 3),
    "use": (("return", ([5, 5, 5], "done")), 3),
    "leave": (("return", ([], "left")), 1),
    "raise": (("raise", "KeyError"), 1),
}


@pytest.mark.parametrize("action", GEN_EXPECTED)
def test_generator(policy, action):
    policy.decide = decider(action)
    log = []
    g = gen({}, log)
    result, ncalls = GEN_EXPECTED[action]
    assert outcome(drain, g) == result
    assert len(policy.calls) == ncalls
    assert g.gi_frame is None  # finished


def test_generator_rerun_is_refused(policy, capsys):
    """Rerunning a generator's frame would return a new generator as the old
    one's return value: it must be refused like any impossible restart."""
    policy.decide = decider("rerun")
    g = gen({}, [])
    result = outcome(drain, g)
    assert result == ("raise", "KeyError"), result
    assert "cannot rerun" in capsys.readouterr().err


@resumable
def gen_with(data, log):
    with CM(log):
        yield 1
        data["k"]  # @generator-with
        yield 2


@pytest.mark.parametrize("action", ["leave", "raise"])
def test_generator_with_block_exits_once(policy, action):
    policy.decide = decider(action)
    log = []
    g = gen_with({}, log)
    assert next(g) == 1
    if action == "leave":
        assert outcome(next, g) == ("raise", "StopIteration")
        assert log == [ENTER, EXIT_OK]
    else:
        assert outcome(next, g) == ("raise", "KeyError")
        assert log == [ENTER, EXIT_KEYERROR]
    assert len(policy.calls) == 1


def test_generator_close_and_throw_never_reach_the_policy(policy):
    log = []

    @resumable
    def g():
        try:
            yield 1
            yield 2
        finally:
            log.append("finally")

    it = g()
    next(it)
    it.close()  # GeneratorExit
    it = g()
    next(it)
    assert outcome(it.throw, ValueError("thrown")) == ("raise", "ValueError")
    assert log == ["finally", "finally"]
    assert policy.exceptions == ["ValueError"]


def test_closing_a_generator_does_not_call_the_dispatcher(policy, monkeypatch):
    """3.11/3.12 close a suspended generator by throwing ``GeneratorExit`` in
    at its ``yield``: every generator abandoned early (``any(...)``) would run
    the dispatcher. The ``yield`` filters it out; anything else thrown in still
    reaches the statement's resume point."""
    import builtins

    calls = []
    real = builtins.__resurrect_dispatch__

    def counting(exc, rp):
        calls.append(type(exc).__name__)
        return real(exc, rp)

    monkeypatch.setattr(builtins, "__resurrect_dispatch__", counting)

    @resumable
    def g():
        yield 1
        yield 2

    @resumable
    def first_true(xs):
        return any(x for x in xs if x)

    it = g()
    next(it)
    it.close()
    assert first_true([0, 1, 2]) is True
    assert calls == []
    it = g()
    next(it)
    assert outcome(it.throw, ValueError("thrown")) == ("raise", "ValueError")
    assert calls == ["ValueError"]


def test_yield_from_delegation(policy):
    policy.decide = decider("retry")

    @resumable
    def outer(data, log):
        result = yield from gen(data, log)
        return result

    log = []
    assert drain(outer({}, log)) == ([10, 11, 12], "done")
    assert [c.function for c in policy.calls] == ["gen"]


@resumable
async def coro(data, log):
    total = 0
    for i in range(3):
        await asyncio.sleep(0)
        x = 0
        x = data["k"] + i  # @coroutine
        log.append(x)
        total += x
    return total


COROUTINE_EXPECTED = {
    "retry": (("return", 33), [10, 11, 12], 1),
    "skip": (("return", 0), [0, 0, 0], 3),
    "use": (("return", 15), [5, 5, 5], 3),
    "leave": (("return", "left"), [], 1),
    "raise": (("raise", "KeyError"), [], 1),
}


@pytest.mark.parametrize("action", COROUTINE_EXPECTED)
def test_coroutine(policy, action):
    policy.decide = decider(action)
    log = []
    result, expected_log, ncalls = COROUTINE_EXPECTED[action]
    assert outcome(lambda: asyncio.run(coro({}, log))) == result
    assert log == expected_log
    assert len(policy.calls) == ncalls
    assert {c.line for c in policy.calls} == {marker_line("coroutine")}


def test_coroutine_rerun_is_refused(policy, capsys):
    policy.decide = decider("rerun")
    assert outcome(lambda: asyncio.run(coro({}, []))) == ("raise", "KeyError")
    assert "cannot rerun" in capsys.readouterr().err


def test_coroutine_awaiting_a_failing_coroutine(policy):
    policy.decide = decider("retry")

    @resumable
    async def main(data):
        a = await coro(data, [])
        b = await asyncio.gather(coro(data, []), coro(data, []))
        return a, b

    assert asyncio.run(main({})) == (33, [33, 33])
    assert len(policy.calls) == 1


class AsyncCM:
    def __init__(self, log):
        self.log = log

    async def __aenter__(self):
        self.log.append("aenter")

    async def __aexit__(self, et, ev, tb):
        self.log.append(("aexit", et))


class AsyncIter:
    def __init__(self, n):
        self.n = n

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.n == 0:
            raise StopAsyncIteration
        self.n -= 1
        return self.n


@resumable
async def async_blocks(data, log):
    async with AsyncCM(log):
        async for i in AsyncIter(2):
            log.append(i)
            x = 0
            x = data["k"]  # @async-blocks
            log.append(x)
    return "end"


@pytest.mark.parametrize("action", ["retry", "skip", "use", "leave", "raise"])
def test_async_with_and_async_for(policy, action, capsys):
    policy.decide = decider(action)
    log = []
    result = outcome(lambda: asyncio.run(async_blocks({}, log)))
    expected = {
        "retry": (("return", "end"), ["aenter", 1, 10, 0, 10, ("aexit", None)]),
        "skip": (("return", "end"), ["aenter", 1, 0, 0, 0, ("aexit", None)]),
        "use": (("return", "end"), ["aenter", 1, 5, 0, 5, ("aexit", None)]),
        # leaving an `async for` / `async with` is refused
        "leave": (("raise", "KeyError"), ["aenter", 1, ("aexit", KeyError)]),
        "raise": (("raise", "KeyError"), ["aenter", 1, ("aexit", KeyError)]),
    }[action]
    assert (result, log) == expected
    if action == "leave":
        assert "async" in capsys.readouterr().err


def test_async_generator(policy):
    policy.decide = decider("retry")

    @resumable
    async def agen(data):
        for i in range(3):
            yield data["k"] + i  # @async-generator

    async def main():
        return [x async for x in agen({})]

    assert asyncio.run(main()) == [10, 11, 12]
    assert [c.line for c in policy.calls] == [marker_line("async-generator")]


# ---------------------------------------------------------------------------
# module level

MODULE = """\
log = []
total = 0
for i in range(3):
    x = 0
    x = data["k"] + i
    log.append(x)
    total += x
done = True
"""

MODULE_EXPECTED = {
    "retry": ([10, 11, 12], 33, True),
    "skip": ([0, 0, 0], 0, True),
    "use": ([5, 5, 5], 15, True),
    "leave": ([], 0, False),
}


@pytest.mark.parametrize("action", MODULE_EXPECTED)
def test_module_level(policy, run_module, action):
    policy.decide = decider(action)
    ns = run_module(MODULE, data={})
    expected_log, total, done = MODULE_EXPECTED[action]
    assert (ns["log"], ns["total"], "done" in ns) == (expected_log, total, done)
    assert {c.line for c in policy.calls} == {5}
    assert {c.function for c in policy.calls} == {"<module>"}


@pytest.mark.parametrize("action", ["raise", "rerun"])
def test_module_level_raise_and_refused_rerun(policy, run_module, action, capsys):
    policy.decide = decider(action)
    assert outcome(run_module, MODULE, data={}) == ("raise", "KeyError")
    assert len(policy.calls) == 1
    if action == "rerun":
        assert "module-level code cannot be rerun" in capsys.readouterr().err


def test_reading_module_frame_locals_keeps_globals(policy, run_module):
    """CPython 3.12's code.replace() drops CO_FAST_HIDDEN of a comprehension
    variable whose comprehension was removed as dead code (gh-110543): reading
    the instrumented module frame's f_locals would delete the same-named global."""

    def decide(failure):
        dict(failure.frame.f_locals)  # what `use`, the prompt and run_in_frame do
        return Decision(Action.SKIP)

    policy.decide = decide
    ns = run_module(
        """\
        v0 = 0
        if v0:
            raise KeyError("m1")
            [v0 for v0 in range(0)]
        data["k"]
        done = v0
        """,
        data={},
    )
    assert ns["done"] == 0


def test_module_level_class_body(policy, run_module):
    policy.decide = decider("use")
    ns = run_module(
        """\
        class C:
            a = 1
            b = data["k"]
            c = a + b
        """,
        data={},
    )
    assert (ns["C"].a, ns["C"].b, ns["C"].c) == (1, 5, 6)


# ---------------------------------------------------------------------------
# comprehensions

COMPREHENSIONS = {
    "list": ("xs = [data['k'] + i for i in range(3)]", [10, 11, 12], ()),
    "set": ("xs = {data['k'] + i for i in range(3)}", {10, 11, 12}, ()),
    "dict": ("xs = {i: data['k'] + i for i in range(3)}", {0: 10, 1: 11, 2: 12}, ()),
    # A generator expression's element fails in the generator's own frame, at its
    # loop's resume point: a retry there would fetch the next item (refused).
    "genexpr": ("xs = sum(data['k'] + i for i in range(3))", None, ()),
    "nested": (
        "xs = [[data['k'] + i + j for j in range(2)] for i in range(2)]",
        [[10, 11], [11, 12]],
        (),
    ),
    "two-lines": ("xs = [data['k'] + i\n                  for i in range(3)]", [10, 11, 12], ()),
}


def comprehension_function(run_module, src):
    return run_module(
        f"""\
        def f(data):
            xs = None
            {src}
            return xs
        """
    )["f"]


@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=mark) for k, (_, _, mark) in COMPREHENSIONS.items()]
)
def test_comprehension_retry(policy, run_module, kind, capsys):
    src, value, _ = COMPREHENSIONS[kind]
    f = comprehension_function(run_module, src)
    policy.decide = decider("retry")
    if kind == "genexpr":
        # Refused (the failed element would be lost), so nothing runs twice.
        assert outcome(f, {}) == ("raise", "KeyError")
        assert "cannot retry" in capsys.readouterr().err
        assert [c.function for c in policy.calls] == ["<genexpr>"]
        return
    assert outcome(f, {}) == ("return", value)
    assert len(policy.calls) == 1


@pytest.mark.parametrize("kind", COMPREHENSIONS)
def test_comprehension_raise(policy, run_module, kind):
    src, _, _ = COMPREHENSIONS[kind]
    f = comprehension_function(run_module, src)
    assert outcome(f, {}) == ("raise", "KeyError")


def _inlined_cases():
    for action in ("use", "skip", "leave", "rerun"):
        for kind in ("list", "set", "dict", "nested", "two-lines"):
            yield pytest.param(kind, action, id=f"{action}-{kind}")


@pytest.mark.parametrize(("kind", "action"), list(_inlined_cases()))
def test_comprehension_is_part_of_its_statement(policy, run_module, kind, action):
    """The statement holding a comprehension is its resume point (3.12+ inline
    comprehensions; 3.11 gives its comprehension functions no resume points)."""
    src, value, _ = COMPREHENSIONS[kind]
    f = comprehension_function(run_module, src)
    policy.decide = decider(action)
    expected = {"use": 5, "skip": None, "leave": "left", "rerun": value}[action]
    assert outcome(f, {}) == ("return", expected)
    assert [(c.function, c.line) for c in policy.calls] == [("f", 3)]


def test_comprehension_iteration_variable_is_restored(policy, run_module):
    """3.12+ inlined comprehensions save and restore a same-named outer variable;
    a retry of the statement must see it restored."""
    ns = run_module(
        """\
        def f(data):
            i = "outer"
            xs = [data['k'] + i for i in range(3)]
            return xs, i
        """
    )
    policy.decide = decider("retry")
    assert ns["f"]({}) == ([10, 11, 12], "outer")


def test_retry_in_a_one_line_loop_body_is_refused(policy, capsys):
    """A loop body on the line of its `for` belongs to the loop's own resume
    point, whose retry fetches the next item: the failed one would be lost."""
    seen = []

    @resumable
    def f(data):
        total = 0
        for i in range(3): total += seen.append(i) or data["k"] + i  # @one-line-for  # noqa: E701  # fmt: skip
        return total

    policy.decide = decider("retry")
    assert outcome(f, {}) == ("raise", "KeyError")
    assert "cannot retry" in capsys.readouterr().err
    assert seen == [0]
    assert [c.line for c in policy.calls] == [marker_line("one-line-for")]


def test_retry_of_a_failing_iterator_fetches_again(policy):
    """Retry at a loop's resume point is right when fetching the item failed."""

    class Flaky:
        n = 0

        def __iter__(self):
            return self

        def __next__(self):
            self.n += 1
            if self.n == 2:
                raise KeyError("once")
            if self.n > 3:
                raise StopIteration
            return self.n

    @resumable
    def f():
        out = []
        for i in Flaky(): out.append(i)  # noqa: E701  # fmt: skip
        return out

    policy.always(Action.RETRY)
    assert f() == [1, 3]
    assert len(policy.calls) == 1


def test_skip_in_a_one_line_loop_body_goes_to_the_next_item(policy):
    @resumable
    def f(data):
        total = 0
        for i in range(3): total += data.get(i, 0) + data["k"]  # noqa: E701  # fmt: skip
        return total

    policy.decide = decider("skip")
    assert f({1: 100}) == 0
    assert len(policy.calls) == 3


# ---------------------------------------------------------------------------
# retry and skip: finer points


def test_retry_reruns_a_multiline_statement_from_its_first_line(policy):
    calls = []

    def note(x):
        calls.append(x)
        return x

    @resumable
    def f(data):
        total = note("first line") + (  # @multiline-start
            note(" second") + str(data["k"])  # @multiline-raise
        )
        return total

    policy.decide = decider("retry")
    assert f({}) == "first line second10"
    assert calls == ["first line", " second", "first line", " second"]
    assert [c.line for c in policy.calls] == [marker_line("multiline-start")]


def test_a_line_of_a_statement_where_the_stack_is_empty_is_a_resume_point(policy):
    """``a and (b)`` over two lines: the stack is empty where the second line
    starts, so it is a resume point of its own (retry restarts there)."""
    calls = []

    def note(x):
        calls.append(x)
        return x

    @resumable
    def f(data):
        total = note("first line") and (  # @and-start
            note("second")  # @and-second
            + str(data["k"])
        )
        return total

    policy.decide = decider("retry")
    assert f({}) == "second10"
    assert calls == ["first line", "second", "second"]
    assert [c.line for c in policy.calls] == [marker_line("and-second")]


def test_retry_many_times_then_give_up(policy):
    @resumable
    def f(data):
        return data["k"]

    n = []

    def decide(failure):
        n.append(1)
        return Decision(Action.RETRY if len(n) < 50 else Action.PROPAGATE)

    policy.decide = decide
    assert outcome(f, {}) == ("raise", "KeyError")
    assert len(n) == 50


def test_retry_preserves_locals_and_does_not_leak_stack(policy):
    """Many retries in a loop: no stack growth, locals intact."""

    @resumable
    def f(data, n):
        acc = []
        for i in range(n):
            with contextlib.nullcontext():
                acc.append(data[i % 7])  # @many-retries
        return acc

    def decide(failure):
        _frames.run_in_frame(failure.frame, "data[i % 7] = i % 7")
        return Decision(Action.RETRY)

    policy.decide = decide
    assert f({}, 1000) == [i % 7 for i in range(1000)]
    assert len(policy.calls) == 7


def test_skip_a_statement_that_would_leave_a_local_unbound(policy, capsys):
    """Skipping the only binding of a local: plain Python would raise
    ``UnboundLocalError`` at the next read (never crash)."""

    @resumable
    def f(data):
        x = data["k"]  # @unbound
        return x

    policy.decide = decider("skip")
    result = outcome(f, {})
    # 3.13 refuses the skip (its superinstructions read locals unchecked); 3.11
    # and 3.12 skip and then meet the unbound local.
    assert result in (("raise", "KeyError"), ("raise", "UnboundLocalError"))
    if result == ("raise", "KeyError"):
        assert "unbound" in capsys.readouterr().err


def test_unbound_local_error_reaches_the_policy(policy):
    @resumable
    def f(flag):
        if flag:
            x = 1
        y = x + 1  # @unbound-read
        return y

    policy.always(Action.USE_VALUE, 42)
    assert f(False) == 42
    assert [(c.line, type(c.exception)) for c in policy.calls] == [
        (marker_line("unbound-read"), UnboundLocalError)
    ]


def test_use_value_binds_a_local_that_was_unbound(policy):
    @resumable
    def f(data):
        x = data["k"]  # @use-unbound
        return x + 1

    policy.decide = decider("use")
    assert f({}) == 6


# ---------------------------------------------------------------------------
# refusals


def test_skip_of_return_is_refused(policy, capsys):
    @resumable
    def f(data):
        return data["k"]  # @skip-return

    reasons = []

    def decide(failure):
        reasons.append(failure.refusal(Action.SKIP))
        return Decision(Action.SKIP)

    policy.decide = decide
    assert outcome(f, {}) == ("raise", "KeyError")
    assert reasons == ["a `return` has no next statement (use `leave` to return a value)"]
    assert "cannot skip" in capsys.readouterr().err


def test_skip_of_raise_is_refused(policy, capsys):
    @resumable
    def f(data):
        raise KeyError("k")

    policy.decide = decider("skip")
    assert outcome(f, {}) == ("raise", "KeyError")
    assert "cannot skip" in capsys.readouterr().err


def test_use_on_a_condition_is_refused(policy, capsys):
    policy.decide = decider("use")
    log = []
    assert outcome(if_condition, {}, log) == ("raise", "KeyError")
    assert "`use` needs an assignment" in capsys.readouterr().err


def test_refusal_leaves_the_program_state_untouched(policy, capsys):
    """A refused leave in a `with` + `finally`: the exception propagates and every
    block unwinds once, exactly as plain Python."""
    log = []

    @resumable
    def f(data):
        with CM(log):
            try:
                data["k"]
            finally:
                log.append("finally")

    policy.decide = decider("leave")
    assert outcome(f, {}) == ("raise", "KeyError")
    assert log == [ENTER, "finally", EXIT_KEYERROR]
    assert "cannot leave" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# the program's own error handling: the policy is never consulted

errors = sys.modules[__name__]


class Error(Exception):
    pass


def catching_forms():
    """Functions that raise and catch; each returns a log. Defined fresh so the
    test can run a plain and an instrumented copy."""

    def by_name(data):
        try:
            data["k"]
        except KeyError as e:
            return ["caught", repr(e)]

    def by_tuple(data):
        try:
            data["k"]
        except (ValueError, LookupError) as e:
            return ["caught", type(e).__name__]

    def by_attribute(data):
        try:
            raise errors.Error("attr")
        except errors.Error as e:
            return ["caught", str(e)]

    def by_local_alias(data):
        E = KeyError
        try:
            data["k"]
        except E:
            return ["caught"]

    def bare(data):
        try:
            data["k"]
        except:  # noqa: E722
            return ["caught", sys.exc_info()[0].__name__]

    def second_clause(data):
        try:
            data["k"]
        except ValueError:
            return ["wrong"]
        except KeyError:
            return ["right"]

    def nested_try(data):
        try:
            try:
                data["k"]
            except ValueError:
                return ["inner"]
            finally:
                data["finally"] = True
        except KeyError:
            return ["outer", sorted(data)]

    def except_star(data):
        try:
            data["k"]
        except* KeyError as eg:
            data["eg"] = type(eg).__name__
        return ["after", data["eg"]]

    def suppress(data):
        with contextlib.suppress(KeyError):
            data["k"]
        return ["suppressed"]

    def in_loop(data):
        out = []
        for i in range(50):
            try:
                out.append(data[i % 2])
            except KeyError:
                out.append("miss")
        return out

    def reraise_other(data):
        try:
            try:
                data["k"]
            except KeyError as e:
                raise ValueError("converted") from e
        except ValueError as e:
            return ["converted", type(e.__cause__).__name__]

    def with_in_try(data):
        log = []
        try:
            with CM(log):
                data["k"]
        except KeyError:
            log.append("caught")
        return log

    def caller_catches(data):
        def callee():
            return data["k"]

        try:
            callee()
        except KeyError:
            return ["caller caught"]

    def clause_raises(data):
        try:
            data["k"]
        except undefined_name:  # noqa: F821
            return ["never"]

    def clause_not_an_exception(data):
        try:
            data["k"]
        except 42:  # noqa: B030
            return ["never"]

    def except_exception_as(data):
        try:
            data["k"]
        except Exception as e:
            return ["caught", e.args]

    return {f.__name__: f for f in locals().values() if callable(f)}


FORMS = list(catching_forms())


@pytest.mark.parametrize("form", FORMS)
def test_program_handlers_behave_as_plain_python(policy, form):
    plain = catching_forms()[form]
    inst = catching_forms()[form]
    inst.__code__ = instrument_code(inst.__code__)
    policy.decide = decider("retry")
    assert outcome(inst, {}) == outcome(plain, {})
    assert policy.calls == [] or form in ("clause_raises", "clause_not_an_exception")


@pytest.mark.parametrize("form", ["clause_raises", "clause_not_an_exception"])
def test_broken_except_clause_raises_as_plain_python(policy, form):
    """An ``except`` whose type expression fails: the new exception propagates as
    in plain Python, whatever the policy says about the original one."""
    plain = catching_forms()[form]
    inst = catching_forms()[form]
    inst.__code__ = instrument_code(inst.__code__)
    policy.always(Action.PROPAGATE)
    assert outcome(inst, {}) == outcome(plain, {})


@resumable
def raises_keyerror(data):
    value = data["k"]  # @callee
    return value


def test_caught_by_an_instrumented_caller(policy):
    @resumable
    def caller():
        try:
            raises_keyerror({})
        except LookupError:
            return "caught"

    assert caller() == "caught"
    assert policy.calls == []


def test_caught_by_a_specific_except_in_a_library_caller(policy):
    # This test function is not instrumented: a library frame that called user code.
    try:
        raises_keyerror({})
    except KeyError:
        pass
    assert policy.calls == []


def test_catch_all_in_a_library_caller_is_a_boundary(policy):
    policy.decide = decider("retry")
    try:
        result = raises_keyerror({})
    except Exception:
        result = "caught"
    assert result == 10
    assert [c.line for c in policy.calls] == [marker_line("callee")]


def test_boundary_can_be_switched_off(policy):
    engine.config.boundary = False
    policy.decide = decider("retry")
    try:
        result = raises_keyerror({})
    except Exception:
        result = "caught"
    assert result == "caught"
    assert policy.calls == []


def test_caught_by_pytest_raises_in_the_caller(policy):
    with pytest.raises(KeyError):
        raises_keyerror({})
    assert policy.calls == []


def test_caught_by_pytest_raises_of_a_base_class(policy):
    with pytest.raises(LookupError):
        raises_keyerror({})
    assert policy.calls == []


def test_not_caught_by_pytest_raises_of_another_type(policy):
    policy.decide = decider("use")
    with pytest.raises(ValueError):
        assert raises_keyerror({}) == 5
        raise ValueError("after use")
    assert len(policy.calls) == 1


def test_caught_by_unittest_assert_raises_in_the_caller(policy):
    class T(unittest.TestCase):
        def runTest(self):
            with self.assertRaises(KeyError):
                raises_keyerror({})

    result = unittest.TestResult()
    T().run(result)
    assert result.wasSuccessful(), result.failures + result.errors
    assert policy.calls == []


def test_caught_by_contextlib_suppress_in_the_caller(policy):
    with contextlib.suppress(KeyError):
        raises_keyerror({})
    assert policy.calls == []


def test_suppress_in_an_instrumented_caller(policy):
    @resumable
    def caller(log):
        with contextlib.suppress(LookupError):
            raises_keyerror({})
            log.append("not reached")
        log.append("after")
        return log

    assert caller([]) == ["after"]
    assert policy.calls == []


def test_caught_by_except_star_in_the_caller(policy):
    @resumable
    def caller():
        names = []
        try:
            raises_keyerror({})
        except* KeyError as eg:
            names = [type(e).__name__ for e in eg.exceptions]
        return names

    assert caller() == ["KeyError"]
    assert policy.calls == []


def test_uncaught_goes_to_the_policy_once_per_decision(policy):
    """Not caught anywhere: the policy decides at the innermost statement."""

    @resumable
    def caller():
        return raises_keyerror({}) + 1

    policy.decide = decider("use")
    assert caller() == 6
    assert [(c.function, c.line) for c in policy.calls] == [
        ("raises_keyerror", marker_line("callee"))
    ]


def test_a_propagated_exception_is_decided_once(policy):
    """Once the policy let an exception propagate, the statements of the callers it
    passes through do not ask again."""

    @resumable
    def caller():
        x = raises_keyerror({})
        return x

    assert outcome(caller) == ("raise", "KeyError")
    assert [c.function for c in policy.calls] == ["raises_keyerror"]


# --- frames entered from C


def test_sorted_key_function(policy):
    @resumable
    def key(x):
        return table[x]  # @sorted-key

    table = {"a": 3, "b": 1}

    def decide(failure):
        table["c"] = 2
        return Decision(Action.RETRY)

    policy.decide = decide
    assert sorted(["a", "b", "c"], key=key) == ["b", "c", "a"]
    assert len(policy.calls) == 1


def test_map_in_a_list(policy):
    @resumable
    def f(x):
        return 10 // x

    policy.always(Action.LEAVE, "inf")
    assert list(map(f, [1, 0, 5])) == [10, "inf", 2]
    assert policy.exceptions == ["ZeroDivisionError"]


class WithProperties:
    @property
    def missing(self):
        raise AttributeError("missing")

    @property
    def broken(self):
        return {}["k"]

    def __getattr__(self, name):
        if name == "dynamic":
            return {}["k"]
        raise AttributeError(name)


resumable(WithProperties)


def test_hasattr_and_getattr_default_swallow_attribute_errors(policy):
    obj = WithProperties()
    policy.always(Action.LEAVE, "never")
    assert hasattr(obj, "missing") is False
    assert getattr(obj, "missing", "default") == "default"
    assert hasattr(obj, "nothing") is False
    assert policy.calls == []


def test_hasattr_propagates_other_errors(policy):
    obj = WithProperties()
    policy.always(Action.LEAVE, "value")
    assert hasattr(obj, "broken") is True
    assert obj.dynamic == "value"
    assert policy.exceptions == ["KeyError", "KeyError"]


def test_stop_iteration_of_the_iterator_protocol(policy):
    class Count:
        def __init__(self):
            self.n = 0

        def __iter__(self):
            return self

        def __next__(self):
            self.n += 1
            if self.n > 3:
                raise StopIteration
            return self.n

    resumable(Count)
    policy.always(Action.LEAVE, "never")
    assert list(Count()) == [1, 2, 3]
    assert [x for x in Count()] == [1, 2, 3]
    assert policy.calls == []


def test_dict_missing_raising_keyerror_caught_by_the_caller(policy):
    class D(dict):
        def __missing__(self, key):
            raise KeyError(key)

    resumable(D)

    @resumable
    def caller():
        try:
            return D()["x"]
        except KeyError:
            return "caught"

    assert caller() == "caught"
    assert policy.calls == []


# --- control flow of the runtime


def test_control_flow_exceptions_never_reach_the_policy(policy):
    policy.always(Action.LEAVE, "never")

    @resumable
    def exits():
        sys.exit(3)

    @resumable
    def interrupts():
        raise KeyboardInterrupt

    @resumable
    def skips():
        pytest.skip("inside")

    with pytest.raises(SystemExit):
        exits()
    with pytest.raises(KeyboardInterrupt):
        interrupts()
    with pytest.raises(pytest.skip.Exception):
        skips()

    class T(unittest.TestCase):
        @resumable
        def runTest(self):
            raise unittest.SkipTest("skipped")

    result = unittest.TestResult()
    T().run(result)
    assert len(result.skipped) == 1
    assert policy.calls == []


def test_policy_sees_the_live_frame(policy):
    seen = {}

    @resumable
    def f(data, n):
        local = n * 2
        for i in range(n):
            if i == 2:
                return data["k"]
        return local

    def decide(failure):
        seen.update(failure.frame.f_locals)
        seen["stack"] = _core.frame_stack(failure.frame, failure.statement.rp.start)
        return Decision(Action.LEAVE, seen["local"])

    policy.decide = decide
    assert f({}, 5) == 10
    assert seen["i"] == 2 and seen["n"] == 5
    assert [kind for kind, _ in seen["stack"]] == ["iter"]


def test_the_decision_path_does_not_import_through_the_programs___import__(policy, monkeypatch):
    """A program may replace ``builtins.__import__`` (CPython's unittest suite
    makes every import return one fake module and store it in ``sys.modules``
    under the name asked for); deciding on an exception it raises meanwhile
    must not import through it (it put the fake module in place of
    ``contextlib``)."""
    import builtins

    asked = []
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        asked.append(name)
        return real_import(name, *args, **kwargs)

    @resumable
    def f(data):
        with contextlib.suppress(KeyError):
            data["k"]
        try:
            data["k"]
        except unittest.SkipTest:
            pass
        return "done"

    monkeypatch.setattr(builtins, "__import__", fake_import)
    try:
        result = outcome(f, {})
    finally:
        monkeypatch.undo()
    # (3.13's linecache imports `os`, `sys` and `tokenize` on a cache miss: not ours.)
    ours = {"contextlib", "inspect", "textwrap", "dis", "collections", "types"}
    assert (result, ours.intersection(asked)) == (("raise", "KeyError"), set())
    assert len(policy.calls) == 1
