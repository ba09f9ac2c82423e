"""The condition system (``resurrect.conditions``): handlers that run before the
stack unwinds, on ordinary exceptions in instrumented code and on conditions
signalled explicitly; restarts of ``restart_case`` and of every statement."""

from __future__ import annotations

import asyncio
import threading
import warnings

import pytest
import resurrect
from resurrect import _core, conditions, engine
from resurrect.conditions import (
    ControlError,
    abort,
    cerror,
    compute_restarts,
    continue_,
    error,
    find_restart,
    handler_bind,
    handler_case,
    invoke_restart,
    muffle_warning,
    restart_case,
    signal,
    store_value,
    use_value,
    warn,
)
from resurrect.engine import Action, Decision


class Oops(Exception):
    def __init__(self, value=None):
        super().__init__(value)
        self.value = value


class Other(Exception):
    pass


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
    assert conditions._restart_stack.get() == ()
    assert conditions._binds_active == 0


# ---------------------------------------------------------------------------
# Instrumented helpers (module level, so their `except` clauses are evaluable)

log: list = []


@resurrect.resumable
def to_int(text):
    n = int(text)
    log.append(("to_int", n))
    return n


@resurrect.resumable
def total(texts):
    s = 0
    for t in texts:
        s += to_int(t)
    return s


@resurrect.resumable
def guarded_total(texts):
    try:
        return total(texts)
    except ValueError:
        log.append("guarded_total caught")
        return "caught"


@resurrect.resumable
def with_cleanup(text):
    try:
        value = to_int(text)
    finally:
        log.append("finally ran")
    return value * 2


@resurrect.resumable
def outer_call(text):
    result = with_cleanup(text)
    log.append(("outer_call", result))
    return result


@resurrect.resumable
def raises_oops(v):
    raise Oops(v)


@resurrect.resumable
def calls_error(v):
    x = error(Oops(v))
    return ("after error", x)


@pytest.fixture(autouse=True)
def _clear_log():
    log.clear()
    yield
    log.clear()


# ---------------------------------------------------------------------------
# handler_bind on ordinary exceptions


def test_handler_repairs_plain_exception_with_use_value():
    seen = []

    def handler(c):
        seen.append(type(c))
        use_value(-1)

    with handler_bind({ValueError: handler}):
        assert total(["1", "x", "3"]) == 3
    assert seen == [ValueError]
    assert ("to_int", -1) in log


def test_handler_runs_before_the_stack_unwinds():
    """The failing frame is alive: its locals are readable from the handler."""
    locals_seen = {}

    def handler(c):
        r = find_restart("use_value")
        locals_seen.update(r.frame.f_locals)
        use_value(0)

    with handler_bind({ValueError: handler}):
        total(["7", "bad"])
    assert locals_seen["text"] == "bad"


def test_handlers_innermost_first_and_declining_delegates():
    order = []
    with handler_bind({ValueError: lambda c: (order.append("outer"), use_value(5))}):
        with handler_bind({ValueError: lambda c: order.append("inner declines")}):
            assert to_int("x") == 5
    assert order == ["inner declines", "outer"]


def test_handler_may_take_no_argument_and_tuples_of_types():
    with handler_bind({(KeyError, ValueError): lambda: use_value(9)}):
        assert to_int("x") == 9


def test_pairs_form():
    with handler_bind((ValueError, lambda c: use_value(4))):
        assert to_int("x") == 4


def test_unmatched_exception_propagates_as_usual():
    with handler_bind({KeyError: lambda c: use_value(0)}):
        with pytest.raises(ValueError):
            to_int("x")


def test_all_decline_then_exception_propagates():
    calls = []
    with pytest.raises(ValueError), handler_bind({ValueError: calls.append}):
        to_int("x")
    assert len(calls) == 1


def test_each_handler_sees_an_exception_once_while_it_propagates():
    calls = []
    with pytest.raises(ValueError), handler_bind({ValueError: calls.append}):
        outer_call("x")  # passes three instrumented frames
    assert len(calls) == 1


def test_except_inside_the_binding_catches_before_the_handler():
    calls = []
    with handler_bind({ValueError: calls.append}):
        assert guarded_total(["1", "x"]) == "caught"
    assert calls == []
    assert "guarded_total caught" in log


@resurrect.resumable
def try_around_binding(handler):
    try:
        with handler_bind({ValueError: handler}):
            return to_int("x")
    except ValueError:
        return "outer except"


@resurrect.resumable
def binding_around_try(handler):
    with handler_bind({ValueError: handler}):
        try:
            return to_int("x")
        except ValueError:
            return "inner except"


def test_except_outside_the_binding_in_the_same_frame():
    calls = []
    # Declined: the outer except gets it.
    assert try_around_binding(calls.append) == "outer except"
    assert len(calls) == 1
    # Handled: the outer except never sees it.
    assert try_around_binding(lambda c: use_value(3)) == 3
    # The except inside the binding catches first: the handler does not run.
    calls.clear()
    assert binding_around_try(calls.append) == "inner except"
    assert calls == []


def test_binding_in_plain_code_around_try_in_plain_code():
    calls = []
    try:
        with handler_bind({ValueError: calls.append}):
            to_int("x")
    except ValueError:
        calls.append("except")
    assert [type(c) if not isinstance(c, str) else c for c in calls] == [ValueError, "except"]


def test_handler_runs_with_only_outer_bindings_in_force():
    inner_calls = []

    def inner(c):
        inner_calls.append(c)
        signal(Other("from the handler"))  # must not reach `inner` itself

    seen_by_outer = []
    with pytest.raises(ValueError):
        with handler_bind({Exception: seen_by_outer.append}):
            with handler_bind({Exception: inner}):
                to_int("x")
    assert len(inner_calls) == 1
    assert [type(c) for c in seen_by_outer] == [Other, ValueError]


# ---------------------------------------------------------------------------
# Statement restarts


@resurrect.resumable
def collect(texts):
    out = []
    for t in texts:
        out.append(int(t))
    return out


def test_skip_restart_continues_after_the_failing_statement():
    with handler_bind({ValueError: lambda c: invoke_restart("skip")}):
        # `out.append(int(t))` skipped for "x": the loop went on.
        assert collect(["1", "x", "2"]) == [1, 2]


def test_retry_restart_runs_the_statement_again():
    attempts = []
    texts = ["x"]

    @resurrect.resumable
    def parse_first():
        n = int(texts[0])
        return n

    def fix_and_retry(c):
        attempts.append(texts[0])
        texts[0] = "12"
        invoke_restart("retry")

    with handler_bind({ValueError: fix_and_retry}):
        assert parse_first() == 12
    assert attempts == ["x"]


def test_leave_restart_returns_from_the_failing_frame():
    with handler_bind({ValueError: lambda c: invoke_restart("leave", "left")}):
        assert to_int("x") == "left"
    assert log == []  # the rest of to_int did not run


def test_rerun_restart_calls_the_function_again():
    texts = ["x"]

    @resurrect.resumable
    def first_int():
        return int(texts[0])

    def fix(c):
        texts[0] = "5"
        invoke_restart("rerun")

    with handler_bind({ValueError: fix}):
        assert first_int() == 5


def test_outer_frame_restart_unwinds_the_frames_in_between():
    """use_value on the caller's statement: the frames in between unwind and
    their `finally` runs."""

    def handler(c):
        r = next(
            r
            for r in compute_restarts(c)
            if r.name == "use_value" and r.frame.f_code is outer_call.__code__
        )
        invoke_restart(r, 42)

    with handler_bind({ValueError: handler}):
        assert outer_call("x") == 42
    assert log == ["finally ran", ("outer_call", 42)]


def test_abort_propagates_as_plain_python():
    calls = []
    with handler_bind({ValueError: calls.append}):
        with pytest.raises(ValueError), handler_bind({ValueError: abort}):
            to_int("x")
    assert calls == []  # abort: no further handlers


def test_statement_restarts_refused_where_impossible():
    seen = {}

    def handler(c):
        seen["names"] = [
            r.name
            for r in compute_restarts(c)
            if r.frame is not None and r.frame.f_code is raises_oops.__code__
        ]

    with pytest.raises(Oops), handler_bind({Oops: handler}):
        raises_oops(1)
    # A `raise` has no next statement: no skip; but retry/leave exist.
    assert "skip" not in seen["names"]
    assert "retry" in seen["names"] and "leave" in seen["names"]


def test_invoke_restart_not_in_force_is_a_control_error():
    with pytest.raises(ControlError, match="no restart 'nope'"):
        invoke_restart("nope")
    errors = []

    def handler(c):
        try:
            invoke_restart("nope")
        except ControlError as e:
            errors.append(str(e))

    with pytest.raises(ValueError), handler_bind({ValueError: handler}):
        to_int("x")
    assert errors and "in force: " in errors[0] and "retry" in errors[0]


def test_use_value_when_the_target_is_read_by_a_superinstruction():
    @resurrect.resumable
    def parse(text):
        n = int(text)
        log.append((text, n))
        return n

    with handler_bind({ValueError: lambda c: use_value(5)}):
        assert parse("x") == 5


def test_use_value_needs_its_value():
    with handler_bind({ValueError: lambda c: invoke_restart("use_value")}):
        with pytest.raises(ControlError, match="one argument"):
            to_int("x")


# ---------------------------------------------------------------------------
# restart_case


@resurrect.resumable
def parse_entry(text):
    with restart_case(use_value=lambda v: v, skip_entry=lambda: "skipped") as r:
        if not text.isdigit():
            error(Oops(text))
        r.value = int(text)
    return r.value


def test_restart_case_value_and_name():
    with handler_bind({Oops: lambda c: invoke_restart("skip_entry")}):
        assert [parse_entry(t) for t in ["1", "x", "3"]] == [1, "skipped", 3]
    with handler_bind({Oops: lambda c: use_value(c.value.upper())}):
        assert parse_entry("ab") == "AB"


def test_restart_case_without_handlers_raises():
    with pytest.raises(Oops):
        parse_entry("x")


def test_restart_case_restarts_come_before_statement_restarts():
    names = []

    def handler(c):
        names.extend(r.name for r in compute_restarts(c))
        use_value("explicit")

    with handler_bind({Oops: handler}):
        assert parse_entry("x") == "explicit"
    assert names[:2] == ["use_value", "skip_entry"]
    assert names[-1] == "abort"
    assert "retry" in names


def test_restart_case_unwinds_finally_and_with():
    events = []

    class CM:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            events.append("__exit__")

    def deep():
        with CM():
            try:
                signal(Oops())
            finally:
                events.append("finally")
        events.append("not reached")

    with handler_bind({Oops: lambda c: invoke_restart("back")}):
        with restart_case(back=lambda: "back") as r:
            deep()
    assert r.restart == "back" and r.value == "back"
    assert events == ["finally", "__exit__"]


def test_restart_case_callable_style():
    def risky():
        error(Oops(1))

    with handler_bind({Oops: lambda c: use_value(10)}):
        with restart_case(use_value=lambda v: v) as call:
            assert call(risky) == 10
        # Standalone: enters itself.
        assert restart_case(use_value=lambda v: v * 2)(risky) == 20
    assert restart_case(use_value=lambda v: v)(lambda: "normal") == "normal"


def test_restart_case_positional_named_functions_and_descriptions():
    def reparse(text):
        """Parse another text instead."""
        return text

    with restart_case(reparse, use_value=(lambda v: v, "use a value of your choice")):
        rs = {r.name: r for r in compute_restarts() if r.kind == "restart_case"}
    assert rs["reparse"].description == "Parse another text instead."
    assert rs["use_value"].description == "use a value of your choice"
    with pytest.raises(TypeError, match="named function"):
        restart_case(lambda: 1)


def test_name_shadowing_innermost_wins():
    with handler_bind({Oops: lambda c: invoke_restart("r", c.value)}):
        with restart_case(r=lambda x: ("outer", x)) as outer:
            with restart_case(r=lambda x: ("inner", x)) as inner:
                signal(Oops(21))
        assert inner.value == ("inner", 21)
        assert outer.value is None


def test_restart_of_exited_restart_case_is_not_in_force():
    with restart_case(gone=lambda: 1):
        r = find_restart("gone")
    assert r is not None
    with pytest.raises(ControlError):
        invoke_restart(r)


def test_store_value_and_continue_return_none_without_restart():
    assert store_value(1) is None
    assert continue_() is None
    with pytest.raises(ControlError):
        muffle_warning()


def test_store_value_invokes_its_restart():
    with handler_bind({Oops: lambda c: store_value(7)}):
        with restart_case(store_value=lambda v: ("stored", v)) as r:
            signal(Oops())
    assert r.value == ("stored", 7)


# ---------------------------------------------------------------------------
# handler_case


def test_handler_case_on_plain_exception():
    with handler_case({ValueError: lambda c: ("handled", str(c))}) as case:
        total(["1", "x"])
        pytest.fail("not reached")
    assert case.handled
    assert case.value[0] == "handled"
    assert isinstance(case.condition, ValueError)


def test_handler_case_catches_signalled_conditions():
    with handler_case({Oops: lambda: "caught signal"}) as case:
        signal(Oops())
        pytest.fail("not reached")
    assert case.value == "caught signal"


def test_handler_case_unmatched_passes():
    with pytest.raises(ValueError):
        with handler_case({KeyError: lambda c: 1}) as case:
            to_int("x")
    assert not case.handled
    with handler_case({KeyError: lambda c: 1}) as case:
        assert signal(Oops()) is None
    assert not case.handled


def test_handler_case_inside_binding_handles_first():
    calls = []
    with handler_bind({ValueError: calls.append}):
        with handler_case({ValueError: lambda c: "case"}) as case:
            to_int("x")
    assert case.value == "case"
    assert calls == []


def test_binding_inside_handler_case_runs_first():
    order = []
    with handler_case({ValueError: lambda c: order.append("case")}):
        with handler_bind({ValueError: lambda c: order.append("bind")}):
            to_int("x")
    assert order == ["bind", "case"]


def test_handler_case_is_not_overridden_by_the_policy():
    decided = []
    engine.policies["record"] = lambda f: decided.append(f) or Decision(Action.SKIP)
    engine.config.on_error = "record"
    with handler_case({ValueError: lambda c: "case"}) as case:
        to_int("x")
    assert case.value == "case"
    assert decided == []


# ---------------------------------------------------------------------------
# signal, error, cerror, warn


def test_signal_returns_none_when_unhandled():
    assert signal(Oops()) is None
    assert signal(Oops) is None  # a class is instantiated


def test_signal_handler_receives_instance_and_cause():
    got = []
    cause = KeyError("k")
    with handler_bind({Oops: got.append}):
        signal(Oops, cause=cause)
    assert isinstance(got[0], Oops) and got[0].__cause__ is cause


def test_python_except_does_not_take_part_in_signal():
    try:
        assert signal(Oops()) is None
    except Oops:  # pragma: no cover
        pytest.fail("signal raised")


def test_error_raises_when_unhandled():
    with pytest.raises(Oops):
        error(Oops(1))
    with pytest.raises(RuntimeError, match="text"):
        error("text")


def test_error_handled_by_statement_restart_of_the_caller():
    with handler_bind({Oops: lambda c: use_value("repaired")}):
        assert calls_error(1) == ("after error", "repaired")
    with handler_bind({Oops: lambda c: invoke_restart("leave", "left")}):
        assert calls_error(1) == "left"


def test_error_runs_each_handler_once():
    calls = []
    with pytest.raises(Oops), handler_bind({Oops: calls.append}):
        calls_error(1)
    assert len(calls) == 1


def test_error_except_inside_binding_catches_first():
    calls = []
    with handler_bind({Oops: calls.append}):
        try:
            error(Oops())
        except Oops:
            calls.append("except")
    assert calls == ["except"]


def test_unhandled_error_consults_the_policy_while_restarts_are_in_force():
    """Under `--on-error pause` the prompt lists the restarts established
    around the `error` call (cerror's `continue`), before anything unwinds."""
    seen = []

    def policy(failure):
        rs = compute_restarts(failure.exception)
        seen.append([r.name for r in rs if r.kind == "restart_case"])
        invoke_restart(next(r for r in rs if r.name == "continue"))

    engine.policies["record"] = policy
    engine.config.on_error = "record"

    @resurrect.resumable
    def caller():
        cerror(Oops(), "carry on")
        return "continued"

    assert caller() == "continued"
    assert seen == [["continue"]]


def test_unhandled_error_policy_decision_applies_at_the_caller():
    engine.policies["record"] = lambda failure: Decision(Action.USE_VALUE, "from policy")
    engine.config.on_error = "record"
    assert calls_error(1) == ("after error", "from policy")


def test_cerror_continue():
    out = []
    with handler_bind({Oops: continue_}):
        for x in range(6):
            if x % 2:
                cerror(Oops(x))
            out.append(x)
    assert out == list(range(6))
    with pytest.raises(Oops):
        cerror(Oops())


def test_warn_muffled_or_emitted():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with handler_bind({UserWarning: muffle_warning}):
            warn("muffled")
        warn("emitted")
        warn(Oops("not a Warning"))
        warn(DeprecationWarning("old"))
    assert [(w.category, str(w.message)) for w in caught] == [
        (UserWarning, "emitted"),
        (UserWarning, "not a Warning"),
        (DeprecationWarning, "old"),
    ]
    assert caught[0].filename == __file__  # attributed to warn()'s caller


def test_warn_handler_may_invoke_another_restart():
    with handler_bind({UserWarning: lambda c: use_value(42)}):
        with restart_case(use_value=lambda v: v) as r:
            warn("help")
            pytest.fail("not reached")
    assert r.value == 42


def test_warn_as_error_through_warnings_filters():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning):
            warn("now an error")


# ---------------------------------------------------------------------------
# Threads and tasks


def test_threads_have_their_own_stacks():
    results = {}
    barrier = threading.Barrier(8)

    def worker(i):
        barrier.wait()
        if i % 2:
            with handler_bind({ValueError: lambda c: use_value(i)}):
                results[i] = to_int("x")
        else:
            try:
                results[i] = to_int("x")
            except ValueError:
                results[i] = "raised"

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: (i if i % 2 else "raised") for i in range(8)}


def test_async_tasks_have_their_own_stacks():
    @resurrect.resumable
    async def task(i):
        if i == 1:
            with handler_bind({ValueError: lambda c: use_value(100)}):
                await asyncio.sleep(0.02)
                return int("x")
        await asyncio.sleep(0.01 * i)
        try:
            return int("x")
        except ValueError:
            return "raised"

    async def main():
        return await asyncio.gather(*(task(i) for i in range(3)))

    assert asyncio.run(main()) == ["raised", 100, "raised"]


def test_fast_path_counter_follows_bindings():
    assert conditions._binds_active == 0
    with handler_bind({ValueError: print}):
        with handler_bind({KeyError: print}):
            assert conditions._binds_active == 2
        assert conditions._binds_active == 1
    assert conditions._binds_active == 0


def test_bad_arguments():
    with pytest.raises(TypeError, match="not an exception class"):
        handler_bind({"x": print})
    with pytest.raises(TypeError, match="not callable"):
        handler_case({ValueError: 3})
    with pytest.raises(TypeError, match="must be a callable"):
        restart_case(r=3)
    with pytest.raises(TypeError):
        signal(42)


def test_core_knows_handlers():
    # The binding count reaches the core's fast path (smoke: no error).
    _core.set_handlers_active(0)


REUSED = Oops("reused")


@resurrect.resumable
def raise_reused(i):
    x = raise_error(i)
    return x


@resurrect.resumable
def raise_error(i):
    raise REUSED


def test_the_same_exception_object_is_a_new_signal_after_a_restart():
    calls = []

    def handler(c):
        calls.append(c)
        use_value(len(calls))

    with handler_bind({Oops: handler}):
        assert [raise_reused(i) for i in range(3)] == [1, 2, 3]
    assert calls == [REUSED] * 3


def test_policy_may_invoke_a_restart_case_restart_on_a_plain_exception():
    def policy(failure):
        names = [r.name for r in compute_restarts(failure.exception) if r.kind == "restart_case"]
        assert names == ["fallback"]
        invoke_restart("fallback")

    engine.policies["record"] = policy
    engine.config.on_error = "record"
    with restart_case(fallback=lambda: "fell back") as r:
        total(["1", "x"])
    assert r.value == "fell back"
