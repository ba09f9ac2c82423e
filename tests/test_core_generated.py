"""Generated programs behave identically plain and instrumented.

With the policy ``raise`` (every exception propagates), giving a program resume
points must not change what it does: the same output, the same exception (type
and message) or the same final variables. Programs come from

* a generator of our own (a hypothesis strategy, so failures shrink): functions,
  closures, methods, generators, ``for``/``while`` with ``break``/``continue``,
  ``try``/``except``/``else``/``finally``, ``with`` blocks that may suppress,
  comprehensions, ``raise`` and bare re-raise, ``del``; expressions that raise
  ``KeyError``, ``IndexError``, ``ZeroDivisionError``, ``ValueError``,
  ``TypeError`` and ``UnboundLocalError`` depending on the values;
* ``hypothesmith`` (``from_grammar`` and ``from_node``): odd but valid syntax.

Each program runs in a forked child (plain first, then instrumented), so a crash
fails the example with its source. ``RESURRECT_GENERATED_EXAMPLES`` scales the
number of examples (default 300 of our own, 60 from ``from_grammar``, 30 from
``from_node``);
``RESURRECT_GENERATED_RANDOM=1`` explores new examples instead of the fixed ones.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import textwrap
import warnings

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("RESURRECT_GENERATED_EXAMPLES", "300"))

# hypothesmith compiles candidate programs; their SyntaxWarnings are noise here.
pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")
RANDOM = os.environ.get("RESURRECT_GENERATED_RANDOM") == "1"

SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
        # hypothesmith's node strategy rejects many of its own drafts (programs
        # that do not compile); how many depends on the interpreter's state.
        HealthCheck.filter_too_much,
    ],
)

# ---------------------------------------------------------------------------
# Running a program

PRELUDE = """\
class CM:
    def __init__(self, name, suppress=False):
        self.name = name
        self.suppress = suppress
    def __enter__(self):
        print("enter", self.name)
        return self
    def __exit__(self, et, ev, tb):
        print("exit", self.name, et.__name__ if et else None)
        return self.suppress

class Boom(Exception):
    pass

T = (10, 20, 30)
D = {0: 5, 1: 6, 3: 7}
"""

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _normalise(text: str) -> str:
    return _ADDRESS.sub(" at 0x?", text)


def _snapshot(ns: dict) -> dict:
    return {
        k: repr(v)
        for k, v in ns.items()
        if not k.startswith("__") and isinstance(v, int | str | float | tuple | list | type(None))
    }


def run_program(source: str, instrument: bool) -> dict:
    """Execute ``source`` as a module; what it printed, how it ended, its variables."""
    from resurrect import engine, instrument_code

    engine.enable()
    engine.config.on_error = "raise"
    engine.signal_handlers = None
    engine.scoped_policy = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = compile(source, "<generated>", "exec", dont_inherit=True)
    if instrument:
        code = instrument_code(code)
    ns: dict = {"__name__": "__generated__"}
    out = io.StringIO()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    try:
        with contextlib.redirect_stdout(out):
            exec(code, ns)
        ending = None
    except RecursionError:
        ending = ("RecursionError", "")
    except BaseException as e:
        ending = (type(e).__name__, _normalise(str(e)))
    finally:
        sys.setrecursionlimit(limit)
    return {"stdout": _normalise(out.getvalue()), "ending": ending, "globals": _snapshot(ns)}


def plain_and_instrumented(source: str) -> tuple[dict, dict]:
    return run_program(source, False), run_program(source, True)


def check_same_behaviour(forked, source: str, timeout: float = 20) -> str:
    outcome, detail = forked(plain_and_instrumented, source, timeout=timeout)
    if outcome == "timeout":
        return "timeout"  # a generated infinite loop: nothing to compare
    if outcome != "passed":
        pytest.fail(f"{outcome}: {detail}\n--- program ---\n{source}", pytrace=False)
    plain, inst = detail
    assert inst == plain, f"\n--- program ---\n{source}"
    return "ok"


# ---------------------------------------------------------------------------
# Our own generator

EXC_CAUGHT = [
    "KeyError",
    "IndexError",
    "ZeroDivisionError",
    "ValueError",
    "TypeError",
    "LookupError",
    "ArithmeticError",
    "Exception",
    "Boom",
    "UnboundLocalError",
    "(KeyError, ValueError)",
    "(IndexError, Boom)",
]
EXC_RAISED = ["KeyError", "ValueError", "ZeroDivisionError", "IndexError", "RuntimeError", "Boom"]
VARS = ["v0", "v1", "v2", "v3"]


class Builder:
    """Writes one random program, drawing every choice from hypothesis."""

    def __init__(self, draw):
        self.draw = draw
        self.lines: list[str] = []
        self.functions: list[str] = []  # callable as name(int) -> int or None
        self.generators: list[str] = []
        self.counter = 0

    # draws
    def pick(self, options):
        return self.draw(st.sampled_from(options))

    def num(self, lo, hi):
        return self.draw(st.integers(lo, hi))

    def chance(self, p):
        return self.draw(st.integers(0, 99)) < p * 100

    def fresh(self, prefix):
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, indent, text):
        self.lines.append("    " * indent + text)

    # expressions (ints, or None from a function without return value)
    def expr(self, depth=0):
        kinds = ["var", "const", "var", "add", "div", "tuple", "dict", "int"]
        if depth < 2:
            kinds += ["add", "mod"]
        if self.functions and depth < 2:
            kinds.append("call")
        if self.generators and depth < 2:
            kinds.append("gen")
        if depth < 1:
            kinds += ["listcomp", "genexpr"]
        kind = self.pick(kinds)
        if kind == "var":
            return self.pick(VARS)
        if kind == "const":
            return str(self.num(-1, 3))
        if kind == "add":
            return f"({self.expr(depth + 1)} {self.pick(['+', '-'])} {self.expr(depth + 1)})"
        if kind == "mod":
            return f"({self.expr(depth + 1)} % 7)"
        if kind == "div":
            return f"({self.expr(depth + 1)} // {self.expr(depth + 1)})"
        if kind == "tuple":
            return f"T[{self.expr(depth + 1)}]"
        if kind == "dict":
            return f"D[{self.expr(depth + 1)}]"
        if kind == "int":
            return f"int({self.pick(['1', 'x', '-2'])!r})"
        if kind == "call":
            return f"{self.pick(self.functions)}({self.expr(depth + 1)})"
        if kind == "gen":
            return f"sum({self.pick(self.generators)}({self.expr(depth + 1)}))"
        if kind == "listcomp":
            return f"sum([{self.expr(depth + 1)} for {self.pick(VARS)} in range({self.num(0, 3)})])"
        return f"sum({self.expr(depth + 1)} for {self.pick(VARS)} in range({self.num(0, 3)}))"

    # statements
    def block(self, indent, depth, ctx, n=None):
        for _ in range(n if n is not None else self.num(1, 3)):
            self.stmt(indent, depth, ctx)

    def stmt(self, indent, depth, ctx):
        kinds = ["assign", "assign", "augassign", "print"]
        if depth < 3:
            kinds += ["if", "for", "while", "try", "try", "with"]
        kinds.append("raise")
        if ctx.get("loop"):
            kinds += ["break", "continue"]
        if ctx.get("function"):
            kinds.append("return")
            if depth < 2:
                kinds.append("closure")
        if ctx.get("except"):
            kinds += ["reraise", "excinfo"]
        kinds.append("del")
        kind = self.pick(kinds)
        e = self.expr
        if kind == "assign":
            self.emit(indent, f"{self.pick(VARS)} = {e()}")
        elif kind == "augassign":
            self.emit(indent, f"{self.pick(VARS)} += {e()}")
        elif kind == "print":
            self.emit(indent, f"print({self.fresh('p')!r}, {e()})")
        elif kind == "if":
            self.emit(indent, f"if {e()} > {self.num(-1, 3)}:")
            self.block(indent + 1, depth + 1, ctx)
            if self.chance(0.5):
                self.emit(indent, "else:")
                self.block(indent + 1, depth + 1, ctx)
        elif kind == "for":
            self.emit(indent, f"for {self.pick(VARS)} in range({self.num(0, 3)}):")
            self.block(indent + 1, depth + 1, {**ctx, "loop": True})
            if self.chance(0.2):
                self.emit(indent, "else:")
                self.block(indent + 1, depth + 1, ctx)
        elif kind == "while":
            w = self.fresh("w")
            self.emit(indent, f"{w} = 0")
            self.emit(indent, f"while {w} < {self.num(0, 3)}:")
            self.emit(indent + 1, f"{w} += 1")
            self.block(indent + 1, depth + 1, {**ctx, "loop": True})
        elif kind == "try":
            self.emit(indent, "try:")
            self.block(indent + 1, depth + 1, ctx)
            handlers = self.num(0, 2)
            for _ in range(handlers):
                exc = self.pick(EXC_CAUGHT)
                name = self.fresh("e")
                self.emit(indent, f"except {exc} as {name}:")
                self.emit(indent + 1, f"print('caught', type({name}).__name__, {name})")
                self.block(indent + 1, depth + 1, {**ctx, "except": True}, n=self.num(0, 2))
            if handlers and self.chance(0.2):
                self.emit(indent, "except:")
                self.emit(indent + 1, "print('bare', sys.exc_info()[0].__name__)")
                self.block(indent + 1, depth + 1, {**ctx, "except": True}, n=self.num(0, 1))
            if handlers and self.chance(0.3):
                self.emit(indent, "else:")
                self.block(indent + 1, depth + 1, ctx)
            if not handlers or self.chance(0.4):
                self.emit(indent, "finally:")
                self.emit(indent + 1, "print('finally', sys.exc_info()[0])")
                self.block(indent + 1, depth + 1, ctx, n=self.num(0, 2))
        elif kind == "with":
            suppress = self.chance(0.3)
            self.emit(indent, f"with CM({self.fresh('cm')!r}, {suppress}):")
            self.block(indent + 1, depth + 1, ctx)
        elif kind == "raise":
            # Conditional, so programs get further and the compiler never sees dead
            # code (see test_dead_comprehension_at_module_level).
            self.emit(indent, f"if {e()} == {self.num(0, 3)}:")
            self.emit(indent + 1, f"raise {self.pick(EXC_RAISED)}({self.fresh('m')!r})")
        elif kind in ("break", "continue"):
            self.emit(indent, f"if {e()} > {self.num(0, 3)}:")
            self.emit(indent + 1, kind)
        elif kind == "return":
            self.emit(indent, f"if {e()} > {self.num(-1, 3)}:")
            self.emit(indent + 1, f"return {e()}")
        elif kind == "reraise":
            self.emit(indent, f"if {e()} > {self.num(0, 3)}:")
            self.emit(indent + 1, "raise")
        elif kind == "excinfo":
            self.emit(indent, "print('handling', sys.exc_info()[0].__name__)")
        elif kind == "del":
            var = self.pick(VARS)
            self.emit(indent, f"if {e()} > {self.num(0, 3)}:")
            self.emit(indent + 1, f"del {var}")
        elif kind == "closure":
            name = self.fresh("inner")
            var = self.pick(VARS)
            self.emit(indent, f"def {name}():")
            self.emit(indent + 1, f"nonlocal {var}")
            self.emit(indent + 1, f"{var} = {e()}")
            self.emit(indent + 1, f"return {var}")
            self.emit(indent, f"print({name!r}, {name}())")

    def function(self):
        name = self.fresh("f")
        self.emit(0, f"def {name}(a):")
        self.emit(1, "v0, v1, v2, v3 = a, 1, 2, 3")
        self.block(1, 1, {"function": True})
        self.emit(1, "return v0")
        self.functions.append(name)

    def generator(self):
        name = self.fresh("g")
        self.emit(0, f"def {name}(a):")
        self.emit(1, "v0, v1, v2, v3 = a, 1, 2, 3")
        self.emit(1, f"for v1 in range({self.num(0, 3)}):")
        self.block(2, 2, {"function": True, "loop": True}, n=self.num(0, 2))
        self.emit(2, f"yield {self.expr(1)}")
        self.generators.append(name)

    def method(self):
        cls = self.fresh("C")
        self.emit(0, f"class {cls}:")
        self.emit(1, "def m(self, a):")
        self.emit(2, "v0, v1, v2, v3 = a, 1, 2, 3")
        self.block(2, 1, {"function": True})
        self.emit(2, "return v0")
        self.functions.append(f"{cls}().m")

    def program(self) -> str:
        self.lines = ["import sys", *PRELUDE.splitlines()]
        self.emit(0, "v0, v1, v2, v3 = 0, 1, 2, 3")
        for _ in range(self.num(0, 3)):
            self.pick([self.function, self.function, self.generator, self.method])()
        self.block(0, 0, {}, n=self.num(1, 5))
        self.emit(0, "print('end', v0, v1, v2, v3)")
        return "\n".join(self.lines) + "\n"


@st.composite
def programs(draw):
    return Builder(draw).program()


def test_the_generator_makes_valid_varied_programs(forked):
    """The generator's programs compile and raise a variety of exceptions."""
    endings = set()

    @settings(SETTINGS, max_examples=30)
    @given(programs())
    def check(source):
        compile(source, "<generated>", "exec")
        outcome, detail = forked(run_program, source, False, timeout=20)
        if outcome == "passed":
            endings.add(detail["ending"][0] if detail["ending"] else None)

    check()
    assert len(endings) >= 4, endings


@SETTINGS
@given(source=programs())
def test_own_programs_behave_the_same(forked, source):
    check_same_behaviour(forked, source)


# ---------------------------------------------------------------------------
# hypothesmith


def _hypothesmith():
    return pytest.importorskip("hypothesmith")


# Built once, on first use (building a strategy takes seconds).
GRAMMAR_PROGRAMS = st.deferred(lambda: _hypothesmith().from_grammar())
NODE_PROGRAMS = st.deferred(lambda: _hypothesmith().from_node())


@settings(SETTINGS, max_examples=max(EXAMPLES // 5, 10))
@given(source=GRAMMAR_PROGRAMS)
def test_hypothesmith_grammar_programs_behave_the_same(forked, source):
    check_same_behaviour(forked, source, timeout=10)


@settings(SETTINGS, max_examples=max(EXAMPLES // 10, 10))
@given(source=NODE_PROGRAMS)
def test_hypothesmith_node_programs_behave_the_same(forked, source):
    check_same_behaviour(forked, source, timeout=10)


# ---------------------------------------------------------------------------
# Hand-written programs in the generator's style that once differed (regressions)

REGRESSIONS = {
    "nested try, inner except and finally, outer except": """\
        def f(data):
            try:
                try:
                    data["k"]
                except ValueError:
                    return ["inner"]
                finally:
                    data["finally"] = True
            except KeyError:
                return ["outer", sorted(data)]
        print(f({}))
    """,
    "exception in finally replaces the one in flight": """\
        def f():
            try:
                raise KeyError("a")
            finally:
                print("finally", sys.exc_info()[0])
                D[9]
        try:
            f()
        except KeyError as e:
            print("caught", e, type(e.__context__).__name__)
    """,
    "break and continue through with and finally": """\
        out = []
        for i in range(4):
            with CM(str(i)):
                try:
                    if i == 1:
                        continue
                    if i == 3:
                        break
                    out.append(T[i])
                finally:
                    out.append("f")
        print(out)
    """,
    "suppressing with inside a loop": """\
        for i in range(3):
            with CM("s", True):
                print(D[i])
        print("done")
    """,
    "generator closed early": """\
        def g():
            try:
                for i in range(5):
                    yield D[i]
            finally:
                print("closing")
        try:
            for x in g():
                print(x)
        except KeyError as e:
            print("caught", e)
    """,
    "exception context in a nested handler": """\
        try:
            try:
                1 // 0
            except ZeroDivisionError:
                D[2]
        except KeyError as e:
            print(type(e.__context__).__name__)
    """,
    "uncaught at module level": """\
        v = 0
        for i in range(3):
            v += T[i * 2]
        print(v)
    """,
    "dead comprehension at module level (3.12 hidden fast local)": """\
        v0 = 0
        try:
            raise KeyError("m1")
            try:
                if [v0 for v0 in range(0)]:
                    pass
            finally:
                pass
        except KeyError:
            pass
        print("end", v0)
    """,
    "unbound local after del": """\
        def f(a):
            x = a
            if a:
                del x
            return x
        print(f(0))
        print(f(1))
    """,
}


@pytest.mark.parametrize("name", REGRESSIONS)
def test_regression_programs(forked, name):
    source = "import sys\n" + PRELUDE + textwrap.dedent(REGRESSIONS[name])
    assert check_same_behaviour(forked, source) == "ok"
