"""The recursion limit: an exception raised there reaches instrumented frames
whose stubs have no stack left to decide with. The program must see exactly
what plain Python gives, and never a hang (CPython's test_json
``test_highly_nested_objects_decoding`` spun forever under regrtest's audit
hook: the late stub of a ``try``'s statement raised a new ``RecursionError``
into that very ``try``, whose no-match called the late stub again).

Audit hooks cannot be removed, so each case runs in its own interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from cli_helpers import child_env

PROGRAM = textwrap.dedent(
    """
    import contextlib, sys, types
    mode, audit = sys.argv[1], sys.argv[2] == "audit"
    if audit:
        sys.addaudithook(lambda event, args: None)  # regrtest installs one

    def rec(n):
        x = n + 1
        return rec(x)

    def scan(n):                      # json.scanner / json.decoder's shape
        return obj(n + 1)

    def obj(n):
        try:
            value = scan(n)           # a statement directly in a `try`
        except StopIteration as err:
            raise ValueError(n) from err
        return value

    def in_blocks(n):
        with contextlib.nullcontext():
            for _ in [1]:
                try:
                    raise KeyError(n)
                except KeyError:
                    return in_blocks(n + 1)

    def caught_then_again(n):
        try:
            rec(0)
        except RecursionError as e:
            first = str(e)
        return first, str(_again())

    def _again():
        try:
            obj(0)
        except RecursionError as e:
            return e

    names = ["rec", "scan", "obj", "in_blocks", "caught_then_again", "_again"]
    if mode == "instrumented":
        import resurrect
        g = globals()
        for name in names:
            g[name] = types.FunctionType(resurrect.instrument_code(g[name].__code__), g)

    for case in [rec, obj, in_blocks]:
        try:
            case(0)
        except RecursionError as e:
            print(case.__name__, type(e).__name__, e, e.__context__ is None)
    print("caught_then_again", *caught_then_again(0))
    print("end")
    """
)


def run(tmp_path, mode: str, audit: str) -> str:
    script = tmp_path / "limits.py"
    script.write_text(PROGRAM)
    env = child_env()  # finds the package under test, installed or in the tree
    try:
        r = subprocess.run(
            [sys.executable, str(script), mode, audit],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,  # a hang guard only: the run takes well under a second
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{mode} run with audit={audit} hung (spinning at the recursion limit)")
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("audit", ["audit", "no-audit"])
def test_recursion_limit_gives_what_plain_python_gives(tmp_path, audit):
    plain = run(tmp_path, "plain", audit)
    assert plain.rstrip().endswith("end") and "RecursionError" in plain
    assert run(tmp_path, "instrumented", audit) == plain
