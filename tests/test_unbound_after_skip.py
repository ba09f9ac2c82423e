"""Skipping a statement that binds a local, then reading the local.

3.12+ ``LOAD_FAST`` does not check for an unbound local (the compiler proved it
bound); instrumented code keeps those loads (checking them costs a few percent
on tight code). A skip that would leave such a local unbound continues in a
continuation of the frame's own code instead, whose reads check. A wrong
choice reads ``NULL``: a crash, so every test runs in a forked child
(``isolated``).

The oracle for a skip is the same function with the failing statement
under ``if 0:``, run plain. Where the hand-over is impossible (3.13's
superinstructions read the local in the continuation too) the engine refuses
the skip: then the ``KeyError`` propagates instead of the oracle's
``UnboundLocalError``.
"""

from __future__ import annotations

import dis
import sys
import textwrap
import types

import pytest
from resurrect import instrument_code
from resurrect.engine import Action, Decision

pytestmark = pytest.mark.isolated(timeout=60)

V = sys.version_info[:2]

#: Function bodies; the line marked ``# @`` raises ``KeyError`` (``data["k"]``)
#: and is skipped. Each binds a local that a later line reads.
CASES = {
    "assign": """
        x = data["k"]
        return x
    """,
    "assign_then_other": """
        x = data["k"]
        y = 2
        return x, y
    """,
    "two_reads": """
        a = 1
        x = data["k"]
        return a + x + x
    """,
    "unpack": """
        a, b = data["k"]
        return a, b
    """,
    "augmented_bound_before": """
        x = 1
        x += data["k"]
        return x
    """,
    "rebind_bound_before": """
        x = 1
        x = data["k"]
        return x
    """,
    "walrus_in_if": """
        if (x := data["k"]):
            pass
        return x
    """,
    "if_body": """
        if data.get("flag", True):
            x = data["k"]
        else:
            x = 2
        return x
    """,
    "in_loop": """
        out = []
        for i in range(3):
            x = data["k"] if i == 1 else i
            out.append(x)
        return out
    """,
    "in_while": """
        i = 0
        while i < 2:
            x = data["k"]
            i += 1
        return x
    """,
    "in_try": """
        try:
            x = data["k"]
        except ValueError:
            x = 3
        return x
    """,
    "in_except": """
        try:
            raise ValueError
        except ValueError:
            x = data["k"]
        return x
    """,
    "in_finally": """
        try:
            pass
        finally:
            x = data["k"]
        return x
    """,
    "in_with": """
        import contextlib
        with contextlib.nullcontext():
            x = data["k"]
        return x
    """,
    "with_as": """
        with data["k"] as x:
            pass
        return x
    """,
    "for_target": """
        for x in data["k"]:
            pass
        return x
    """,
    "import_as": """
        import json as x
        y = data["k"]
        return x, y
    """,
    "def_binding": """
        def g():
            return data["k"]
        x = g()
        return x
    """,
    "comprehension_restores": """
        x = 0
        r = [data[x] for x in "k"]
        return x
    """,
    "comprehension_unbound_before": """
        r = [data[x] for x in "k"]
        x = 1
        return x
    """,
    "call_args": """
        x = data["k"]
        return len([x])
    """,
    "nested_closure_reader": """
        x = data["k"]
        def g():
            return x
        return g()
    """,
    "del_then_bind": """
        x = 1
        del x
        x = data["k"]
        return x
    """,
}


def make(body: str, skip: bool) -> types.FunctionType:
    lines = textwrap.dedent(body).strip("\n").splitlines()
    if skip:
        # The oracle: the failing simple statement not run (`if 0:` keeps
        # its targets local).
        lines = [
            (ln[: len(ln) - len(ln.lstrip())] + "if 0: " + ln.lstrip())
            if "data[" in ln and ln.lstrip().split()[0] not in ("if", "with", "for")
            else ln
            for ln in lines
        ]
    src = "def f(data):\n" + textwrap.indent("\n".join(lines), "    ") + "\n"
    ns: dict = {}
    exec(compile(src, "<case>", "exec"), ns)
    return ns["f"]


def outcome(fn, *args):
    try:
        return ("return", fn(*args))
    except Exception as e:
        return ("raise", type(e).__name__)


def skip_keyerrors(failure):
    if isinstance(failure.exception, KeyError):
        return Decision(Action.SKIP)
    return Decision(Action.PROPAGATE)


@pytest.mark.parametrize("case", sorted(CASES))
def test_skip_then_read(policy, case, capsys):
    plain = make(CASES[case], skip=False)
    fn = make(CASES[case], skip=False)
    fn.__code__ = instrument_code(fn.__code__)
    policy.decide = skip_keyerrors
    got = outcome(fn, {})
    assert policy.calls, "the policy was not asked"
    # Header statements (`if`, `with`, `for`) have no `if 0:` oracle: they only
    # must not crash and give a Python-level result.
    # `in_loop`: the skip happens in one iteration only. `in_except`: a skip
    # at the end of an `except` body returns `None` (on 3.11 as well).
    if case in ("walrus_in_if", "with_as", "for_target", "if_body", "in_loop", "in_except"):
        assert got[0] in ("return", "raise")
        if got[0] == "raise":
            assert got[1] in ("UnboundLocalError", "KeyError")
        return
    expected = outcome(make(CASES[case], skip=True), {})
    if got != expected:
        # Refused (3.13 superinstruction reads): the KeyError goes on.
        assert V >= (3, 13) and expected == ("raise", "UnboundLocalError"), (got, expected)
        assert got == ("raise", "KeyError")
        assert "unbound" in capsys.readouterr().err
    del plain


@pytest.mark.parametrize("case", sorted(CASES))
def test_skip_then_read_with_binding_given(policy, case):
    """``use`` binds the statement's targets: the read then succeeds (or a
    header statement behaves as plain code would with the value)."""
    fn = make(CASES[case], skip=False)
    fn.__code__ = instrument_code(fn.__code__)

    def use(failure):
        if isinstance(failure.exception, KeyError):
            return Decision(Action.USE_VALUE, 5)
        return Decision(Action.PROPAGATE)

    policy.decide = use
    got = outcome(fn, {})
    assert got[0] in ("return", "raise")


def loads(code):
    return [
        (i.opname, i.argval)
        for i in dis.get_instructions(code)
        if i.opname in ("LOAD_FAST", "LOAD_FAST_CHECK")
    ]


@pytest.mark.skipif(V < (3, 12), reason="3.11 has no unchecked LOAD_FAST")
def test_instrumented_code_keeps_the_compilers_unchecked_loads():
    def f(a):
        x = 1
        y = a + x
        return y + 0, x

    code = instrument_code(f.__code__)
    n = len(f.__code__.co_code)
    assert code.co_code[:n] == f.__code__.co_code


def test_skip_in_the_first_iteration_then_later_ones(policy):
    """The record loop of a job: the first record fails before `value` was
    ever bound; the frame continues in checked code, where the read of
    `value` fails again (its own resume point, skipped too), and the loop
    goes on with the next records."""
    src = textwrap.dedent(
        """
        def job(records):
            out = []
            for r in records:
                value = int(r)
                out.append(value * 2)
            return out
        """
    )
    ns: dict = {}
    exec(compile(src, "<job>", "exec"), ns)
    job = ns["job"]
    job.__code__ = instrument_code(job.__code__)
    seen = []

    def skip(failure):
        seen.append(type(failure.exception).__name__)
        return Decision(Action.SKIP)

    policy.decide = skip
    # 'x' twice: the second time `value` holds the first good record.
    assert job(["x", "1", "x", "2"]) == [2, 2, 4]
    assert seen == ["ValueError", "UnboundLocalError", "ValueError"]
