"""Continuations: ``_core.continuation(code, start, locals, base)`` builds a code
object that restores a frame state (locals and the base stack slots: loop
iterators, bound ``__exit__``s, handled exceptions) and jumps to the statement
starting at byte offset ``start``. Running it must finish the function exactly
as the original would have from that point.

Every test runs in a forked child: a wrong prologue is a crash, not an exception.
"""

from __future__ import annotations

import contextlib
import re
import sys
import types

import pytest
from resurrect import _core, _frames, instrument_code
from resurrect.engine import Action, Decision

pytestmark = pytest.mark.isolated(timeout=60)

V = sys.version_info[:2]


def marker_line(marker: str) -> int:
    with open(__file__) as f:
        for number, line in enumerate(f, 1):
            if re.search(rf"# @{re.escape(marker)}(\s|$)", line):
                return number
    raise LookupError(marker)


def statement_at(code: types.CodeType, marker: str):
    """The statement resume point on the line marked ``# @marker``."""
    line = marker_line(marker)
    (rp,) = [r for r in _core.resume_points(code) if r.line == line and r.kind == "statement"]
    return rp


def localsplus_names(code: types.CodeType) -> list[str]:
    """Names in ``localsplus`` order: variables (cell arguments included), the other
    cell variables, then the free variables."""
    return (
        list(code.co_varnames)
        + [c for c in code.co_cellvars if c not in code.co_varnames]
        + list(code.co_freevars)
    )


def continue_function(fn, code, marker: str, local_values: dict, base: list):
    """A function running the continuation of ``code`` (``fn``'s code or an
    instrumented copy) at the statement marked ``marker``."""
    names = localsplus_names(code)
    cells = set(code.co_cellvars)
    restores = [(names.index(n), n in cells, v) for n, v in local_values.items()]
    cont = _core.continuation(code, statement_at(code, marker).start, restores, base)
    assert isinstance(cont, types.CodeType)
    return types.FunctionType(cont, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


# ---------------------------------------------------------------------------
# nested for loops


def grid(rows):
    out = []
    for r in rows:
        for c in r:
            v = c * 2
            out.append((r[0], v))  # @grid-target
        out.append("row")
    return out


ROWS = [[1, 2, 3], [4, 5, 6], [7, 8]]


def test_base_kinds_of_the_target_statement():
    rp = statement_at(grid.__code__, "grid-target")
    assert rp.base == ["iter", "iter"]


@pytest.mark.parametrize("instrumented", [False, True], ids=["plain", "instrumented"])
def test_nested_for_loops_from_a_constructed_state(instrumented):
    """State at ``out.append`` for r = ROWS[1], c = 5: the outer iterator has
    yielded two rows, the inner one two items."""
    expected = grid(ROWS)
    outer = iter(ROWS)
    next(outer), next(outer)
    inner = iter(ROWS[1])
    next(inner), next(inner)
    out_so_far = [(1, 2), (1, 4), (1, 6), "row", (4, 8)]
    code = instrument_code(grid.__code__) if instrumented else grid.__code__
    cont = continue_function(
        grid,
        code,
        "grid-target",
        {"rows": ROWS, "out": out_so_far, "r": ROWS[1], "c": 5, "v": 10},
        [("iter", outer), ("iter", inner)],
    )
    result = cont(ROWS)
    assert result == expected
    assert result is out_so_far  # the restored list, continued in place
    assert list(outer) == [] and list(inner) == []  # both loops ran to their end


@pytest.mark.parametrize("position", range(8))
def test_nested_for_loops_from_every_position(position):
    """Continue at each of the eight passes through the target statement."""
    expected = grid(ROWS)
    passes = [(i, j) for i, row in enumerate(ROWS) for j in range(len(row))]
    i, j = passes[position]
    outer = iter(ROWS)
    for _ in range(i + 1):
        next(outer)
    inner = iter(ROWS[i])
    for _ in range(j + 1):
        next(inner)
    # What the original had built when it reached the statement.
    out_so_far = []
    for a, row in enumerate(ROWS):
        for b, c in enumerate(row):
            if (a, b) == (i, j):
                break
            out_so_far.append((row[0], c * 2))
        else:
            out_so_far.append("row")
            continue
        break
    c = ROWS[i][j]
    cont = continue_function(
        grid,
        grid.__code__,
        "grid-target",
        {"rows": ROWS, "out": out_so_far, "r": ROWS[i], "c": c, "v": c * 2},
        [("iter", outer), ("iter", inner)],
    )
    assert cont(ROWS) == expected


def lookup_grid(rows, table):
    out = []
    for r in rows:
        for c in r:
            v = table[c]  # @lookup-target
            out.append(v)
    return out


def test_continuation_from_a_captured_frame_state(policy):
    """The resurrection path: a failure stops the frame, the policy records its
    state (locals and base slots) and leaves; after the fix, a continuation built
    from that state finishes the work exactly as an uninterrupted run."""
    table = {c: c * 10 for row in ROWS for c in row if c != 5}
    fixed = {**table, 5: 50}
    expected = lookup_grid(ROWS, fixed)
    lookup_grid_inst = types.FunctionType(
        instrument_code(lookup_grid.__code__), lookup_grid.__globals__
    )
    state = {}

    def decide(failure):
        rp = failure.statement.rp
        state["rp"] = rp
        state["locals"] = dict(failure.frame.f_locals)
        state["base"] = _core.frame_stack(failure.frame, rp.start)
        return Decision(Action.LEAVE, "stopped")

    policy.decide = decide
    assert lookup_grid_inst(ROWS, table) == "stopped"
    assert state["rp"].line == marker_line("lookup-target")
    assert [kind for kind, _ in state["base"]] == ["iter", "iter"]
    assert state["locals"]["c"] == 5

    state["locals"]["table"] = fixed
    cont = continue_function(
        lookup_grid, lookup_grid.__code__, "lookup-target", state["locals"], state["base"]
    )
    assert cont(ROWS, fixed) == expected


def test_continuation_of_instrumented_code_keeps_its_resume_points(policy):
    """A continuation built from instrumented code still dispatches its failures."""
    code = instrument_code(lookup_grid.__code__)
    outer = iter(ROWS)
    next(outer)
    inner = iter(ROWS[0])
    next(inner)
    table = {}

    def decide(failure):
        _frames.run_in_frame(failure.frame, "table[c] = c * 10")
        return Decision(Action.RETRY)

    policy.decide = decide
    cont = continue_function(
        lookup_grid,
        code,
        "lookup-target",
        {"rows": ROWS, "table": table, "out": [], "r": ROWS[0], "c": 1},
        [("iter", outer), ("iter", inner)],
    )
    assert cont(ROWS, table) == [c * 10 for row in ROWS for c in row]
    assert len(policy.calls) == len([c for row in ROWS for c in row])


# ---------------------------------------------------------------------------
# with blocks


class Recorder:
    def __init__(self, log):
        self.log = log

    def __enter__(self):
        self.log.append("enter")
        return self

    def __exit__(self, et, ev, tb):
        self.log.append(("exit", et))
        return False


def in_with(log, items):
    total = 0
    with Recorder(log) as rec:
        for x in items:
            total += x  # @with-target
            log.append(total)
        log.append(rec is not None)
    log.append("after")
    return total


def test_with_block_slot():
    items = [1, 2, 3, 4]
    expected_log = []
    expected = in_with(expected_log, items)

    log = ["enter"]
    cm = Recorder(log)
    it = iter(items)
    next(it), next(it)  # at x = 2, total = 1 so far, log has 1
    log.append(1)
    cont = continue_function(
        in_with,
        in_with.__code__,
        "with-target",
        {"log": log, "items": items, "total": 1, "rec": cm, "x": 2},
        [("with_exit", cm.__exit__), ("iter", it)],
    )
    assert cont(log, items) == expected
    assert log == expected_log
    assert log.count(("exit", None)) == 1


def test_with_block_slot_on_an_exception():
    """An exception after the continuation resumed reaches the restored
    ``__exit__`` exactly once, with the exception."""
    log = ["enter"]
    cm = Recorder(log)
    it = iter([1, "two", 3])
    next(it)
    cont = continue_function(
        in_with,
        in_with.__code__,
        "with-target",
        {"log": log, "items": None, "total": 0, "rec": cm, "x": 1},
        [("with_exit", cm.__exit__), ("iter", it)],
    )
    with pytest.raises(TypeError):
        cont(log, None)
    assert log == ["enter", 1, ("exit", TypeError)]


def test_with_block_slot_with_a_real_context_manager(tmp_path):
    path = tmp_path / "out.txt"

    def writer(path, lines):
        with open(path, "w") as fh:
            for line in lines:
                fh.write(line)  # @file-target
            fh.write("end\n")
        return path.read_text()

    fh = open(path, "w")  # the continuation closes it
    fh.__enter__()
    fh.write("a\n")
    lines = ["a\n", "b\n", "c\n"]
    it = iter(lines)
    next(it), next(it)
    cont = continue_function(
        writer,
        writer.__code__,
        "file-target",
        {"path": path, "lines": lines, "fh": fh, "line": "b\n"},
        [("with_exit", fh.__exit__), ("iter", it)],
    )
    assert cont(path, lines) == "a\nb\nc\nend\n"
    assert fh.closed


# ---------------------------------------------------------------------------
# except bodies


def in_except(log, n):
    try:
        log.append("try")
        raise ValueError(n)
    except ValueError as e:
        log.append(("handling", sys.exc_info()[1] is e))  # @except-target
        log.append(e.args)
        result = n * 2
    log.append(("after", sys.exc_info()[0]))
    return result


def test_except_body_slot():
    expected_log = []
    expected = in_except(expected_log, 21)
    exc = ValueError(21)
    log = ["try"]
    cont = continue_function(
        in_except,
        in_except.__code__,
        "except-target",
        {"log": log, "n": 21, "e": exc},
        [("exc_info", exc)],
    )
    assert cont(log, 21) == expected
    assert log == expected_log
    assert sys.exc_info() == (None, None, None)


def test_except_body_slot_restores_the_outer_exception_state():
    exc = ValueError(1)
    log = []
    cont = continue_function(
        in_except,
        in_except.__code__,
        "except-target",
        {"log": log, "n": 1, "e": exc},
        [("exc_info", exc)],
    )
    outer = OSError("outer")
    try:
        raise outer
    except OSError:
        assert cont(log, 1) == 2
        assert sys.exc_info()[1] is outer
    assert log[0] == ("handling", True)
    assert log[-1] == ("after", OSError)


def except_in_loop_in_with(log, items):
    with contextlib.nullcontext():
        for x in items:
            try:
                log.append(1 // x)
            except ZeroDivisionError as e:
                log.append(("zero", str(e)))  # @deep-target
                log.append(x)
    return log


def test_all_base_kinds_together():
    items = [1, 0, 2]
    expected = except_in_loop_in_with([], items)
    cm = contextlib.nullcontext()
    cm.__enter__()
    it = iter(items)
    next(it), next(it)
    exc = ZeroDivisionError("integer division or modulo by zero")
    rp = statement_at(except_in_loop_in_with.__code__, "deep-target")
    assert rp.base == ["with_exit", "iter", "exc_info"]
    log = [1]
    cont = continue_function(
        except_in_loop_in_with,
        except_in_loop_in_with.__code__,
        "deep-target",
        {"log": log, "items": items, "x": 0, "e": exc},
        [("with_exit", cm.__exit__), ("iter", it), ("exc_info", exc)],
    )
    assert cont(log, items) == expected


# ---------------------------------------------------------------------------
# cells and free variables


def late_closure(n):
    total = 0
    for i in range(n):
        total += i  # @late-target
    get = lambda: total * 10  # noqa: E731
    return get()


def test_cell_variable_restored_and_captured_later():
    code = late_closure.__code__
    assert "total" in code.co_cellvars
    it = iter(range(5))
    next(it), next(it), next(it)  # at i = 2, total = 0 + 1
    cont = continue_function(
        late_closure, code, "late-target", {"n": 5, "total": 1, "i": 2}, [("iter", it)]
    )
    assert cont(5) == late_closure(5) == 100


check = {}


def with_cells(n):
    acc = []
    scale = 3

    def add(x):
        acc.append(x * scale)

    for i in range(n):
        add(check[i])  # @cell-target
    return acc, scale


def test_captured_closure_shares_the_restored_state(policy):
    """Resurrection of a frame whose closure was created before the failure: the
    captured closure keeps its cells, the restored cells hold the same objects."""
    inst = types.FunctionType(instrument_code(with_cells.__code__), with_cells.__globals__)
    state = {}

    def decide(failure):
        state["locals"] = dict(failure.frame.f_locals)
        state["base"] = _core.frame_stack(failure.frame, failure.statement.rp.start)
        return Decision(Action.LEAVE, "stopped")

    policy.decide = decide
    check.clear()
    check.update({0: 0, 1: 1, 3: 3})
    assert inst(4) == "stopped"
    assert state["locals"]["acc"] == [0, 3] and state["locals"]["i"] == 2
    check[2] = 2
    cont = continue_function(
        with_cells, with_cells.__code__, "cell-target", state["locals"], state["base"]
    )
    acc, scale = cont(4)
    assert (acc, scale) == with_cells(4) == ([0, 3, 6, 9], 3)
    assert acc is state["locals"]["acc"]


def make_inner(k):
    def inner(items):
        out = []
        for x in items:
            out.append(x + k)  # @free-target
        return out

    return inner


def test_free_variables_come_from_the_closure():
    inner = make_inner(100)
    code = inner.__code__
    assert code.co_freevars == ("k",)
    it = iter([1, 2, 3])
    next(it)
    cont = continue_function(
        inner, code, "free-target", {"items": [1, 2, 3], "out": [], "x": 1}, [("iter", it)]
    )
    assert cont([1, 2, 3]) == [101, 102, 103]


# ---------------------------------------------------------------------------
# refusals


def test_generators_cannot_be_continued():
    def g(n):
        for i in range(n):  # noqa: UP028
            yield i  # @gen-target

    with pytest.raises(_core.BytecodeError, match="generators and coroutines"):
        _core.continuation(g.__code__, statement_at(g.__code__, "gen-target").start, [], [])


def test_unknown_slot_kind_is_refused():
    it = iter([1])
    with pytest.raises(_core.BytecodeError, match="cannot restore a stack slot of kind"):
        _core.continuation(
            grid.__code__, statement_at(grid.__code__, "grid-target").start, [], [("other", it)]
        )


def _wrong_state(case):
    code = grid.__code__
    start = statement_at(code, "grid-target").start
    outer = iter(ROWS)
    next(outer), next(outer)
    inner = iter(ROWS[1])
    next(inner), next(inner)
    loc = [(0, False, ROWS), (1, False, []), (2, False, ROWS[1]), (3, False, 5), (4, False, 10)]
    base = [("iter", outer), ("iter", inner)]
    if case == "missing base slots":
        base = []
    elif case == "one base slot of two":
        base = base[:1]
    elif case == "a list as an iterator":
        base = [("iter", outer), ("iter", [1, 2])]
    elif case == "a cell flag on a plain local":
        loc = [(0, True, ROWS), *loc[1:]]
    elif case == "a local index out of range":
        loc = [*loc, (50, False, 1)]
    elif case == "an odd start offset":
        start += 1
    elif case == "a start inside a statement":
        start += 2
    elif case == "a start past the end":
        start = len(code.co_code) + 100
    return code, start, loc, base


WRONG_STATES = {
    # case: (exception, what the message must say)
    "missing base slots": (
        _core.BytecodeError,
        r"slots \[iter, iter\] below it; the state gives \[none\]",
    ),
    "one base slot of two": (_core.BytecodeError, r"the state gives \[iter\]"),
    "a list as an iterator": (TypeError, "must be an iterator, not list"),
    "a cell flag on a plain local": (_core.BytecodeError, "`rows` .* is a plain local"),
    "a local index out of range": (_core.BytecodeError, "local index 50 is out of range"),
    "an odd start offset": (_core.BytecodeError, "is odd"),
    "a start inside a statement": (_core.BytecodeError, "is not a resume point"),
    "a start past the end": (_core.BytecodeError, "not the start of an instruction"),
}


@pytest.mark.parametrize("case", WRONG_STATES)
def test_a_wrong_frame_state_is_refused_when_building(case):
    code, start, loc, base = _wrong_state(case)
    exc, message = WRONG_STATES[case]
    with pytest.raises(exc, match=message):
        _core.continuation(code, start, loc, base)


def slots(x):
    total = 0
    with contextlib.nullcontext() as cm:
        try:
            raise ValueError(x)
        except ValueError:
            total += x  # @slots-target
    return total, cm


def closure_over(n):
    acc = [n]
    acc.append(n)  # @closure-target
    return (lambda: acc)()


@pytest.mark.parametrize(
    "case",
    ["a with slot that is not callable", "an except slot that is not an exception"],
)
def test_wrong_values_in_base_slots_are_refused(case):
    code = slots.__code__
    line = marker_line("slots-target")
    # The line also marks the code after the `except` body (one slot fewer).
    (start,) = [
        r.start
        for r in _core.resume_points(code)
        if r.line == line and r.base == ["with_exit", "exc_info"]
    ]
    cm = contextlib.nullcontext()
    base = [("with_exit", cm.__exit__), ("exc_info", ValueError(1))]
    if case == "a with slot that is not callable":
        base[0] = ("with_exit", 42)
        match = r"base slot 0 \(with_exit\) must be a callable"
    else:
        base[1] = ("exc_info", "not an exception")
        match = r"base slot 1 \(exc_info\) must be an exception instance or None, not str"
    with pytest.raises(TypeError, match=match):
        _core.continuation(code, start, [(0, False, 1), (1, False, 0)], base)


def test_cell_variables_take_a_cell_or_the_cell_flag():
    code = closure_over.__code__
    names = localsplus_names(code)
    start = statement_at(code, "closure-target").start
    acc = names.index("acc")
    assert acc >= len(code.co_varnames)  # a cell that is not an argument
    with pytest.raises(TypeError, match=r"`acc` .* is a cell variable: give its cell object"):
        _core.continuation(code, start, [(0, False, 7), (acc, False, [7])], [])
    # Its value with the cell flag, or a cell object in place of the fresh cell.
    for restore in [(acc, True, [7]), (acc, False, types.CellType([7]))]:
        cont = _core.continuation(code, start, [(0, False, 7), restore], [])
        fn = types.FunctionType(cont, globals())
        assert fn(7) == [7, 7]


def test_free_variables_cannot_be_restored():
    inner = make_inner(100)
    code = inner.__code__
    start = statement_at(code, "free-target").start
    k = localsplus_names(code).index("k")
    with pytest.raises(_core.BytecodeError, match=r"`k` .* is a free variable"):
        _core.continuation(code, start, [(k, False, 1)], [("iter", iter([]))])
    with pytest.raises(_core.BytecodeError, match=r"`k` .* is a free variable"):
        _core.continuation(code, start, [(k, True, 1)], [("iter", iter([]))])


def pair(n):
    a = n
    b = n + 1  # @pair-b
    return a + b  # @pair-sum


def comprehension_then_read(xs, y):
    x = 0
    t = [x for x in xs]  # @comp-target
    return x + y, t


def test_a_local_left_unbound_is_refused_or_raises():
    """A local the code reads but the state leaves unbound: 3.12+'s ``LOAD_FAST``
    does not check (the continuation checks it instead), 3.13's
    ``LOAD_FAST_LOAD_FAST`` has no checked form (the continuation is refused)."""
    code = pair.__code__
    start = statement_at(code, "pair-sum").start
    if V >= (3, 13):
        with pytest.raises(_core.BytecodeError, match="may read `a`, `b` before assigning"):
            _core.continuation(code, start, [], [])
    else:
        fn = types.FunctionType(_core.continuation(code, start, [], []), globals())
        with pytest.raises(UnboundLocalError):
            fn(1)
    # A local assigned after the start, before it is read, is fine.
    b_start = statement_at(code, "pair-b").start
    a = localsplus_names(code).index("a")
    fn = types.FunctionType(_core.continuation(code, b_start, [(a, False, 5)], []), globals())
    assert fn(1) == 7


def test_a_comprehension_puts_back_an_unbound_local():
    """3.12+ inlines the comprehension: ``x`` is saved (``LOAD_FAST_AND_CLEAR``),
    bound by the loop (3.13 reads it there with ``STORE_FAST_LOAD_FAST``, not
    refused), then put back as it was: unbound, if it was."""
    code = comprehension_then_read.__code__
    start = statement_at(code, "comp-target").start
    x = localsplus_names(code).index("x")
    fn = types.FunctionType(_core.continuation(code, start, [], []), globals())
    with pytest.raises(UnboundLocalError):
        fn([1, 2], 10)
    fn = types.FunctionType(_core.continuation(code, start, [(x, False, 3)], []), globals())
    assert fn([1, 2], 10) == (13, [1, 2])
