"""Edit and continue at the Python level: ``resurrect.reload`` patches a live
program from edited source, and a frame paused on an exception continues in
the new code (``reload.continue_in_new_code``, or a plain retry/skip once the
engine hook is installed).

Each test runs in a forked child (a wrong continuation is a crash, and the
reload registry is process-wide). Modules are written to a temporary directory,
imported with resume points, edited on disk and reloaded, as a user does.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import types
from pathlib import Path

import pytest
from resurrect import engine, instrument
from resurrect import reload as rl
from resurrect.engine import Action, Decision

pytestmark = pytest.mark.isolated(timeout=60)


class Project:
    """Modules in a temporary directory, imported with resume points."""

    def __init__(self, root: Path):
        self.root = root
        self.count = 0

    def path(self, name: str) -> Path:
        return self.root / f"{name}.py"

    def module(self, source: str, name: str | None = None) -> types.ModuleType:
        if name is None:
            self.count += 1
            name = f"mod{self.count}"
        path = self.path(name)
        path.write_text(textwrap.dedent(source))
        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))
        instrument.add_globs([str(path)])
        module = importlib.import_module(name)
        rl.install(prompt_commands=False)
        return module

    def edit(self, module: types.ModuleType, source: str) -> None:
        Path(module.__file__).write_text(textwrap.dedent(source))

    def replace(self, module: types.ModuleType, old: str, new: str) -> None:
        path = Path(module.__file__)
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new))


@pytest.fixture
def project(tmp_path):
    return Project(tmp_path)


def reload_ok(*args, **kw) -> rl.ReloadReport:
    report = rl.reload(*args, **kw)
    assert report.ok, str(report)
    return report


# ---------------------------------------------------------------------------
# Patching code that is not running


def test_a_changed_function_gets_the_new_code_in_place(project):
    m = project.module(
        """
        def f(x):
            return x + 1

        def g(x):
            return f(x) * 2
        """
    )
    f = m.f
    held = types.SimpleNamespace(f=m.f)  # as `from mod import f` elsewhere
    assert m.g(1) == 4
    project.replace(m, "return x + 1", "return x + 100")
    report = reload_ok()
    assert report.files[0].changed == ["f()"]
    assert m.f is f and held.f(1) == 101 and m.g(1) == 202
    assert rl._core.is_instrumented(m.f.__code__)  # the new code has resume points


def test_methods_static_and_class_methods_properties_with_live_instances(project):
    m = project.module(
        """
        class Shape:
            sides = 0

            def __init__(self, size):
                self.size = size

            def area(self):
                return self.size * self.size

            @staticmethod
            def kind():
                return "shape"

            @classmethod
            def make(cls):
                return cls(1)

            @property
            def double(self):
                return self.size * 2

            def old_method(self):
                return "old"


        class Square(Shape):
            def area(self):
                return super().area()
        """
    )
    Shape, Square = m.Shape, m.Square
    s = Square(3)
    assert s.area() == 9
    bound = s.area
    project.edit(
        m,
        """
        class Shape:
            sides = 0

            def __init__(self, size):
                self.size = size

            def area(self):
                return self.size * self.size + 1000

            @staticmethod
            def kind():
                return "new shape"

            @classmethod
            def make(cls):
                return cls(2)

            @property
            def double(self):
                return self.size * 20

            def perimeter(self):
                return 4 * self.size

            @property
            def half(self):
                return self.size / 2


        class Square(Shape):
            def area(self):
                return super().area() + 1
        """,
    )
    report = reload_ok()
    fr = report.files[0]
    assert set(fr.changed) >= {
        "Shape.area()",
        "Shape.kind()",
        "Shape.make()",
        "Shape.double",
        "Square.area()",
    } - {"Shape.double"}
    assert "Shape.perimeter()" in fr.added and "Shape.half" in fr.added
    assert "Shape.old_method()" in fr.removed
    assert m.Shape is Shape and m.Square is Square and isinstance(s, Shape)
    assert s.area() == 1010 and bound() == 1010  # a bound method taken before the reload
    assert Shape.kind() == "new shape" and Square.make().size == 2
    assert s.double == 60 and s.half == 1.5 and s.perimeter() == 12
    assert not hasattr(s, "old_method")


def test_zero_argument_super_in_an_added_method(project):
    m = project.module(
        """
        class Base:
            def hello(self):
                return "base"

        class Child(Base):
            pass
        """
    )
    c = m.Child()
    project.edit(
        m,
        """
        class Base:
            def hello(self):
                return "base"

        class Child(Base):
            def hello(self):
                return "child+" + super().hello()
        """,
    )
    reload_ok()
    assert c.hello() == "child+base"


def test_decorated_functions_are_patched_behind_their_wrapper(project):
    m = project.module(
        """
        import functools

        def logged(fn):
            @functools.wraps(fn)
            def wrapper(*a):
                return ("logged", fn(*a))
            return wrapper

        def opaque(fn):  # no __wrapped__: the function is only in the closure
            def wrapper(*a):
                return ["opaque", fn(*a)]
            return wrapper

        @logged
        def f(x):
            return x

        @opaque
        def g(x):
            return x

        @functools.lru_cache
        def h(x):
            return x
        """
    )
    assert m.f(1) == ("logged", 1) and m.g(1) == ["opaque", 1] and m.h(1) == 1
    text = Path(m.__file__).read_text()
    Path(m.__file__).write_text(text.replace("    return x\n", "    return -x\n"))
    report = reload_ok()
    assert set(report.files[0].changed) == {"f()", "g()", "h()"}
    assert m.f(1) == ("logged", -1) and m.g(1) == ["opaque", -1]
    assert m.h(1) == -1  # the cache of the old code was cleared


def test_live_closures_get_the_new_code(project):
    m = project.module(
        """
        def make(k):
            def add(x):
                return x + k
            return add
        """
    )
    add5 = m.make(5)
    project.replace(m, "return x + k", "return x + k * 10")
    reload_ok()
    assert add5(1) == 51 and m.make(2)(1) == 21


def test_a_closure_over_other_variables_is_refused_with_a_reason(project):
    m = project.module(
        """
        def make(k):
            j = 1
            def add(x):
                return x + k
            return add
        """
    )
    add5 = m.make(5)
    project.replace(m, "return x + k", "return x + k + j")
    report = reload_ok()
    fr = report.files[0]
    assert [name for name, _ in fr.refused] == ["make.<locals>.add"]
    assert "closure variables changed (k -> j, k)" in fr.refused[0][1]
    assert add5(1) == 6  # the old closure keeps its code
    assert m.make(5)(1) == 7  # new closures get the new code


def test_added_functions_classes_imports_and_constants_appear(project):
    m = project.module(
        """
        LIMIT = 3

        def f():
            return LIMIT
        """
    )
    project.edit(
        m,
        """
        import json
        LIMIT = 30
        SCALE = 2

        def helper(x):
            return json.dumps(x * SCALE)

        class Thing:
            pass

        def f():
            return helper(LIMIT)

        print("a module-level statement that must not run again")
        """,
    )
    report = reload_ok()
    fr = report.files[0]
    assert "helper()" in fr.added and "Thing" in fr.added and "SCALE" in fr.added
    assert "import json" in fr.added
    assert (2, "LIMIT = 30") in [(line - 1, t) for line, t in fr.not_rerun] or any(
        t == "LIMIT = 30" for _, t in fr.not_rerun
    )
    assert any("print(" in t for _, t in fr.not_rerun)
    assert m.LIMIT == 3  # a changed module-level statement is not run again
    assert m.f() == "6" and isinstance(m.Thing(), m.Thing)


def test_removed_definitions_disappear(project):
    m = project.module(
        """
        def keep():
            return 1

        def gone():
            return 2

        class Old:
            pass
        """
    )
    project.edit(
        m,
        """
        def keep():
            return 1
        """,
    )
    report = reload_ok()
    assert sorted(report.files[0].removed) == ["Old", "gone()"]
    assert not hasattr(m, "gone") and not hasattr(m, "Old") and m.keep() == 1


def test_a_syntax_error_changes_nothing_and_says_where(project):
    m = project.module(
        """
        def f():
            return 1
        """
    )
    project.edit(
        m,
        """
        def f():
            return 2

        def broken(:
            pass
        """,
    )
    report = rl.reload()
    assert not report.ok
    (error,) = report.errors
    assert error.filename == m.__file__ and error.line == 5
    assert "SyntaxError" in error.message
    assert f"{m.__file__}:5: SyntaxError" in str(report)
    assert "def broken(:" in str(report) and "nothing was changed" in str(report)
    assert m.f() == 1
    project.edit(
        m,
        """
        def f():
            return 2
        """,
    )
    reload_ok()
    assert m.f() == 2


def test_an_exception_in_a_new_definition_changes_nothing(project):
    m = project.module(
        """
        def f():
            return 1
        """
    )
    project.edit(
        m,
        """
        def f():
            return 2

        def g(x=undefined_name):
            return x
        """,
    )
    report = rl.reload()
    assert not report.ok
    (error,) = report.errors
    assert error.line == 5 and "NameError" in error.message
    assert m.f() == 1 and not hasattr(m, "g")


def test_an_unchanged_file_reports_nothing(project):
    m = project.module(
        """
        def f():
            return 1
        """
    )
    report = reload_ok()
    assert not report.changed and str(report) == "no source file changed since it was loaded"
    assert m.f() == 1


def test_an_unchanged_module_instrumented_after_its_import_reports_nothing(project):
    """Without a copy of the text taken at import, the reload compares the
    running code with the file compiled again: two lambdas on one line (same
    name, same first line) must each find their own code."""
    path = project.path("lambdas")
    path.write_text(
        textwrap.dedent(
            """
            def make():
                return (lambda: 1, lambda x: x * 2)

            PAIR = make()
            """
        )
    )
    sys.path.insert(0, str(project.root))
    m = importlib.import_module("lambdas")  # a plain import: no copy of the text
    instrument.add_globs([str(path)])
    rl.install(prompt_commands=False)
    report = reload_ok()
    assert not report.changed and str(report) == "no source file changed since it was loaded"
    assert [f() for f in (m.PAIR[0],)] == [1] and m.PAIR[1](2) == 4


def test_a_module_another_import_hook_rewrote_is_unchanged_until_edited(project):
    """Code compiled differently from its text (pytest rewrites `assert`s; here
    `-O` drops them) cannot be compared with the file: `@resumable` keeps the
    text it was imported from, so an unchanged file is left alone."""
    import importlib.machinery
    import importlib.util

    class Rewriting(importlib.machinery.SourceFileLoader):
        def source_to_code(self, data, path, *, _optimize=-1):
            return compile(data, path, "exec", dont_inherit=True, optimize=1)

    path = project.path("rewritten")
    path.write_text(
        textwrap.dedent(
            """
            import resurrect

            calls = []

            @resurrect.resumable
            def f(x):
                assert x > 0
                calls.append(x)
                return x
            """
        )
    )

    class Finder:
        @staticmethod
        def find_spec(name, path_=None, target=None):
            if name != "rewritten":
                return None
            return importlib.util.spec_from_file_location(
                name, path, loader=Rewriting(name, str(path))
            )

    sys.dont_write_bytecode = True
    sys.meta_path.insert(0, Finder)
    m = importlib.import_module("rewritten")
    m.f(1)
    rl.install(prompt_commands=False)
    report = reload_ok()
    assert not report.changed and str(report) == "no source file changed since it was loaded"
    assert m.calls == [1]  # the module's statements did not run again
    project.replace(m, "return x", "return -x")
    report = reload_ok()
    assert report.files[0].changed == ["f()"]
    assert m.f(2) == -2 and m.calls == [1, 2]


def test_functions_that_only_moved_get_their_new_line_numbers(project):
    m = project.module(
        """
        def f():
            raise ValueError("here")
        """
    )
    text = Path(m.__file__).read_text()
    Path(m.__file__).write_text("# a comment\n# another\n" + text)
    report = reload_ok()
    assert report.files[0].moved == ["f()"] and report.files[0].changed == []
    assert m.f.__code__.co_firstlineno == 4
    with pytest.raises(ValueError) as info:
        m.f()
    assert info.traceback[-1].lineno + 1 == 5


# ---------------------------------------------------------------------------
# The paused frame continues in the new code


DIVIDE = """
    import math


    def ratio(n, d):
        q = n / d
        return q


    def main(values):
        out = []
        for v in values:
            out.append(ratio(10, v))
        return out
    """


def fix_and_retry(project, m, old, new, action="retry", reloaded=None):
    """A policy that fixes the source at the first failure, reloads and
    continues in the new code."""

    def decide(failure):
        if reloaded is not None and reloaded:
            return Decision(Action.PROPAGATE)
        project.replace(m, old, new)
        report = reload_ok(failure=failure)
        if reloaded is not None:
            reloaded.append(report)
        return rl.continue_in_new_code(failure, action)

    return decide


def test_retry_runs_the_fixed_statement_and_the_rest_of_the_new_code(project, policy):
    m = project.module(DIVIDE)
    reports = []
    policy.decide = fix_and_retry(
        project,
        m,
        "q = n / d\n    return q",
        "q = n / d if d else math.inf\n    return -q",
        reloaded=reports,
    )
    assert m.main([1, 2, 0, 4]) == [10.0, 5.0, -math_inf(), -2.5]
    paused = [s for s in reports[0].frames if s.paused]
    assert [(s.function, s.state) for s in paused] == [("ratio", "mapped")]
    assert m.main([0]) == [-math_inf()]  # later calls run the new code


def math_inf():
    return float("inf")


def test_a_plain_retry_continues_in_the_new_code(project, policy):
    """After a reload, the engine turns `retry` on a frame running replaced code
    into a hand-over to the new code (what the prompt's `retry` sends)."""
    m = project.module(DIVIDE)

    def decide(failure):
        project.replace(m, "q = n / d", "q = n / (d or 1)")
        reload_ok()
        return Decision(Action.RETRY)

    policy.decide = decide
    assert m.main([1, 0, 5]) == [10.0, 10.0, 2.0]
    assert len(policy.calls) == 1


def test_skip_continues_after_the_statement_in_the_new_code(project, policy):
    m = project.module(
        """
        def collect(items):
            out = []
            for x in items:
                out.append(10 // x)
                out.append("after")
            return out
        """
    )

    def decide(failure):
        project.replace(m, 'out.append("after")', 'out.append("AFTER")')
        reload_ok()
        return Decision(Action.SKIP)

    policy.decide = decide
    assert m.collect([1, 0, 2]) == [10, "after", "AFTER", 5, "AFTER"]


def test_lines_inserted_above_the_paused_statement(project, policy):
    m = project.module(DIVIDE)

    def decide(failure):
        text = Path(m.__file__).read_text()
        text = text.replace("import math\n", "import math\nimport os\n\n# helpers\n\n")
        text = text.replace("def ratio(n, d):\n", "def ratio(n, d):\n    # guard against zero\n\n")
        text = text.replace("return q", "return q + 0.5")
        Path(m.__file__).write_text(text)
        report = reload_ok()
        (st,) = [s for s in report.frames if s.function == "ratio"]
        assert st.line == 6 and st.new_line == 12 and st.state == "mapped"
        failure.frame.f_locals  # noqa: B018  (the frame is still the old one)
        _set(failure.frame, "d", 4)
        return Decision(Action.RETRY)

    policy.decide = decide
    assert m.main([2, 0]) == [5.0, 3.0]


def _set(frame, name, value):
    from resurrect import _frames

    _frames.run_in_frame(frame, f"{name} = {value!r}")


def test_a_statement_inserted_directly_above_runs_on_retry(project, policy):
    m = project.module(DIVIDE)
    policy.decide = fix_and_retry(project, m, "    q = n / d", "    d = d or 2\n    q = n / d")
    assert m.main([1, 0]) == [10.0, 5.0]


def test_a_new_helper_called_from_the_fixed_line(project, policy):
    m = project.module(DIVIDE)

    def decide(failure):
        text = Path(m.__file__).read_text()
        text = text.replace("q = n / d", "q = safe_divide(n, d)")
        text += "\n\ndef safe_divide(a, b):\n    return a / b if b else 0.0\n"
        Path(m.__file__).write_text(text)
        report = reload_ok()
        assert "safe_divide()" in report.files[0].added
        return Decision(Action.RETRY)

    policy.decide = decide
    assert m.main([1, 0, 2]) == [10.0, 0.0, 5.0]


def test_a_method_changed_while_its_instance_is_paused_in_it(project, policy):
    m = project.module(
        """
        class Account:
            def __init__(self):
                self.log = []

            def deposit(self, amount):
                self.log.append(int(amount))
                return len(self.log)
        """
    )
    acc = m.Account()
    acc.deposit("5")
    policy.decide = fix_and_retry(project, m, "int(amount)", "int(float(amount))")
    assert acc.deposit("2.5") == 2
    assert acc.log == [5, 2] and isinstance(acc, m.Account)


def test_loop_iterators_and_with_blocks_carry_over(project, policy):
    m = project.module(
        """
        import contextlib

        class Resource:
            def __init__(self, log):
                self.log = log
                log.append("enter")

            def close(self):
                self.log.append("exit")

        def run(rows, log):
            out = []
            with contextlib.closing(Resource(log)):
                for row in rows:
                    for x in row:
                        out.append(100 // x)
                    out.append("|")
            return out
        """
    )
    consumed = []

    def gen(row):
        for x in row:
            consumed.append(x)
            yield x

    rows = [gen([1, 2]), gen([0, 4]), gen([5])]
    log = []
    policy.decide = fix_and_retry(
        project, m, "out.append(100 // x)", "out.append(100 // x if x else None)"
    )
    assert m.run(iter(rows), log) == [100, 50, "|", None, 25, "|", 20, "|"]
    assert consumed == [1, 2, 0, 4, 5]  # each item fetched once
    assert log == ["enter", "exit"]  # the `with` block exited once, by the new code


def test_a_paused_except_block_carries_over(project, policy):
    m = project.module(
        """
        import sys

        def handle(values):
            out = []
            for v in values:
                try:
                    out.append(int(v))
                except ValueError as e:
                    out.append(len(v) // 0)
                    out.append(type(sys.exception()).__name__)
            out.append(sys.exception())
            return out
        """
    )
    policy.decide = fix_and_retry(project, m, "len(v) // 0", "len(v) // 1")
    assert m.handle(["1", "abc", "2"]) == [1, 3, "ValueError", 2, None]
    assert sys.exception() is None


def test_a_second_failure_in_the_new_code_pauses_again(project, policy):
    """The continuation has resume points: a later failure in it pauses again,
    and a second reload maps the continuation's frame in its turn."""
    m = project.module(
        """
        def step(data):
            total = []
            for k in ("a", "b", "c"):
                total.append(data[k])
            return total
        """
    )
    seen = []

    def decide(failure):
        seen.append((failure.statement.text, dict(failure.frame.f_locals)["k"]))
        if len(seen) == 1:
            project.replace(m, "data[k]", "data[k] if k != 'a' else 'A'")
        else:
            project.replace(m, "data[k] if", "data.get(k, 'C') if")
        report = reload_ok()
        # The continuation's frame runs replaced code now; the first frame,
        # which handed over to it, is not listed.
        assert [(s.function, s.state, s.paused) for s in report.frames] == [
            ("step", "mapped", True)
        ]
        return Decision(Action.RETRY)

    policy.decide = decide
    assert m.step({"b": 2}) == ["A", 2, "C"]
    assert [k for _, k in seen] == ["a", "c"]
    assert seen[1][0] == "total.append(data[k] if k != 'a' else 'A')"


def test_rerun_after_a_reload_calls_the_new_code(project, policy):
    m = project.module(DIVIDE)

    def decide(failure):
        project.replace(m, "q = n / d\n    return q", "return n / d if d else 'rerun'")
        reload_ok()
        return Decision(Action.RERUN)

    policy.decide = decide
    assert m.main([1, 0]) == [10.0, "rerun"]


def test_the_statement_removed_is_refused_with_a_reason(project, policy):
    m = project.module(DIVIDE)
    reasons = []

    def decide(failure):
        project.replace(m, "    q = n / d\n    return q", "    return q")
        reload_ok()
        with pytest.raises(engine.RestartRefused) as info:
            rl.continue_in_new_code(failure)
        reasons.append(str(info.value))
        reasons.append(failure.refusal(Action.RETRY))
        return Decision(Action.LEAVE, "left")

    policy.decide = decide
    assert m.main([0]) == ["left"]
    assert "the statement was removed" in reasons[0] and "`rerun`" in reasons[0]
    assert reasons[1] is not None and "the statement was removed" in reasons[1]


def test_a_changed_loop_structure_is_refused(project, policy):
    m = project.module(
        """
        def f(rows):
            out = []
            for r in rows:
                out.append(1 // r)
            return out
        """
    )
    reasons = []

    def decide(failure):
        project.replace(
            m,
            "    for r in rows:\n        out.append(1 // r)",
            "    with open(__file__) as fh:\n        out.append(1 // r)",
        )
        reload_ok()
        with pytest.raises(engine.RestartRefused) as info:
            rl.continue_in_new_code(failure)
        reasons.append(str(info.value))
        return Decision(Action.LEAVE, "left")

    policy.decide = decide
    assert m.f([0]) == "left"
    assert "`for` loop around it was removed or changed" in reasons[0]


def test_a_deleted_function_is_refused(project, policy):
    m = project.module(
        """
        def f(x):
            return 1 // x

        def main():
            return f(0)
        """
    )
    reasons = []

    def decide(failure):
        project.replace(m, "def f(x):\n    return 1 // x\n", "")
        report = reload_ok()
        reasons.append(next(s.describe() for s in report.frames if s.function == "f"))
        return Decision(Action.LEAVE, "left")

    policy.decide = decide
    assert m.main() == "left"
    assert "was removed from" in reasons[0]


def test_outer_frames_switch_at_the_next_iteration_of_their_loop(project, policy):
    m = project.module(
        """
        def inner(x):
            return 10 // x

        def outer(values):
            out = []
            for v in values:
                out.append(inner(v))
                out.append("old")
            out.append("end")
            return out

        def top():
            return outer([1, 0, 3])
        """
    )
    frames = []

    def decide(failure):
        project.replace(m, "return 10 // x", "return 10 // (x or 5)")
        project.replace(m, 'out.append("old")', 'out.append("new")')
        project.replace(m, "return outer([1, 0, 3])", "return outer([1, 0, 3]) + ['top']")
        report = reload_ok()
        frames.extend((s.function, s.state, s.paused, s.switches) for s in report.frames)
        return Decision(Action.RETRY)

    policy.decide = decide
    # `inner` retries in the new code; `outer` finishes its current iteration in
    # its old code, then switches at the loop; `top` has no loop: it keeps its
    # old code until it returns.
    assert m.top() == [10, "old", 2, "old", 3, "new", "end"]
    assert frames == [
        ("top", "mapped", False, False),
        ("outer", "mapped", False, True),
        ("inner", "mapped", True, False),
    ]
    assert m.top() == [10, "new", 2, "new", 3, "new", "end", "top"]


def test_an_outer_frame_switches_when_a_restart_unwinds_to_it(project, policy):
    m = project.module(
        """
        def inner(x):
            return 10 // x

        def outer(values):
            out = []
            for v in values:
                out.append(inner(v))
            out.append("outer-old")
            return out
        """
    )

    def decide(failure):
        project.replace(m, '"outer-old"', '"outer-new"')
        project.replace(m, "return 10 // x", "return 10 // (x or 5)")
        reload_ok()
        outer_frame = failure.frame.f_back
        # As `up` then `retry` at the prompt: retry the call in the new code.
        raise engine.UnwindTo(outer_frame, Decision(Action.RETRY))

    policy.decide = decide
    assert m.outer([1, 0]) == [10, 2, "outer-new"]


def test_module_level_code_paused_continues_in_the_new_code(project, policy, tmp_path):
    path = tmp_path / "script.py"
    path.write_text("total = 0\nfor x in [1, 0, 2]:\n    total += 10 // x\nresult = total\n")
    code = instrument.instrument_code(compile(path.read_text(), str(path), "exec"))
    ns = {"__name__": "script", "__file__": str(path)}
    mod = types.ModuleType("script")
    mod.__file__ = str(path)
    sys.modules["script"] = mod
    ns = mod.__dict__
    rl.remember(str(path))

    def decide(failure):
        path.write_text(
            "total = 0\nfor x in [1, 0, 2]:\n    total += 10 // (x or 10)\nresult = total * 100\n"
        )
        reload_ok([str(path)])
        return Decision(Action.RETRY)

    policy.decide = decide
    exec(code, ns)
    assert ns["result"] == (10 + 1 + 5) * 100


def test_a_suspended_generator_keeps_its_old_code_and_is_reported(project):
    m = project.module(
        """
        def gen():
            yield 1
            yield 2
        """
    )
    g = m.gen()
    assert next(g) == 1
    project.replace(m, "yield 2", "yield 20")
    report = reload_ok()
    assert report.generators == 1 and "suspended generator" in str(report)
    assert next(g) == 2 and list(m.gen()) == [1, 20]


def test_the_watcher_reloads_a_changed_file(project):
    m = project.module(
        """
        def f():
            return 1
        """
    )
    reports = []
    w = rl.Watcher([m.__file__], interval=0.05, on_reload=reports.append)
    assert w.check() is None
    project.replace(m, "return 1", "return 2")
    import os

    os.utime(m.__file__, ns=(0, 10**18))
    report = w.check()
    assert report is not None and report.ok and m.f() == 2
    assert reports == [report]


def test_from_import_in_another_module_sees_the_new_code(project):
    helper = project.module(
        """
        def scale(x):
            return x * 2
        """,
        name="helper_mod",
    )
    user = project.module(
        """
        from helper_mod import scale

        def use(x):
            return scale(x) + 1
        """,
        name="user_mod",
    )
    assert user.use(5) == 11
    project.replace(helper, "return x * 2", "return x * 3")
    reload_ok()
    assert user.use(5) == 16 and user.scale is helper.scale


def test_two_files_with_one_syntax_error_change_nothing(project):
    a = project.module("def f():\n    return 'a'\n", name="file_a")
    b = project.module("def g():\n    return 'b'\n", name="file_b")
    project.replace(a, "'a'", "'A'")
    project.replace(b, "return 'b'", "return ('b'")
    report = rl.reload()
    assert not report.ok and report.errors[0].filename == b.__file__
    assert a.f() == "a" and b.g() == "b"
    project.replace(b, "return ('b'", "return 'B'")
    reload_ok()
    assert a.f() == "A" and b.g() == "B"


def test_a_paused_closure_continues_with_its_own_cells(project, policy):
    m = project.module(
        """
        def make(step):
            count = 0

            def bump(x):
                nonlocal count
                count += step
                return 100 // x + count

            return bump
        """
    )
    bump = m.make(10)
    assert bump(1) == 110
    policy.decide = fix_and_retry(
        project, m, "return 100 // x + count", "return (100 // x if x else -1) + count"
    )
    assert bump(0) == 19  # the restored frame shares the closure's cells
    assert bump(1) == 130


def test_a_paused_method_using_super_continues(project, policy):
    m = project.module(
        """
        class Base:
            def describe(self, n):
                return f"base {n}"

        class Child(Base):
            def describe(self, n):
                prefix = super().describe(n)
                return prefix + " / " + str(10 // n)
        """
    )
    c = m.Child()
    policy.decide = fix_and_retry(project, m, "str(10 // n)", "str(10 // n if n else 'zero')")
    assert c.describe(0) == "base 0 / zero"


def test_a_paused_generator_is_refused(project, policy):
    m = project.module(
        """
        def gen(items):
            for x in items:
                yield 10 // x
        """
    )
    reasons = []

    def decide(failure):
        project.replace(m, "yield 10 // x", "yield 10 // (x or 1)")
        reload_ok()
        with pytest.raises(engine.RestartRefused) as info:
            rl.continue_in_new_code(failure)
        reasons.append(str(info.value))
        return Decision(Action.SKIP)

    policy.decide = decide
    assert list(m.gen([1, 0, 2])) == [10, 5]  # skipped in the old code
    assert "a generator or coroutine cannot switch to new code" in reasons[0]
    assert list(m.gen([0])) == [10]  # a new generator runs the new code


def test_a_paused_frame_in_a_helper_module_edited_elsewhere(project, policy):
    """Editing another module than the paused one: the paused function's code
    did not change, a plain retry calls the new helper."""
    helper = project.module("def parse(s):\n    return int(s)\n", name="helper_parse")
    user = project.module(
        """
        from helper_parse import parse

        def total(items):
            out = 0
            for s in items:
                out += parse(s)
            return out
        """,
        name="user_parse",
    )

    def decide(failure):
        project.replace(helper, "return int(s)", "return int(float(s))")
        report = reload_ok()
        assert [s.function for s in report.frames] == ["parse"]
        return Decision(Action.RETRY)

    policy.decide = decide
    assert user.total(["1", "2.5", "3"]) == 6


def test_a_changed_loop_header_keeps_the_old_iterator(project, policy):
    m = project.module(
        """
        def f(items):
            out = []
            for x in items:
                out.append(10 // x)
            return out
        """
    )
    notes = []

    def decide(failure):
        project.replace(m, "for x in items:", "for x in sorted(items):")
        project.replace(m, "10 // x", "10 // (x or 1)")
        report = reload_ok()
        notes.extend(n for s in report.frames for n in s.notes)
        return Decision(Action.RETRY)

    policy.decide = decide
    assert m.f([5, 0, 1, 2]) == [2, 10, 10, 5]  # the rest of the old order
    assert notes == [
        "the header of the `for` loop at line 4 changed: the loop goes on over its old iterator"
    ]


def test_a_local_the_new_code_reads_before_assigning_it(project, policy):
    """A statement added above the paused one (not directly above it) does not
    run: a local it would bind stays unbound. 3.13 reads pairs of locals without
    an unbound check, so the hand-over is refused until the local is assigned;
    earlier versions raise UnboundLocalError in the new code."""
    m = project.module(
        """
        def f(x):
            z = 0
            total = 10 // x
            return total + z
        """
    )
    refusals = []

    def decide(failure):
        if len(policy.calls) == 1:
            project.edit(
                m,
                """
                def f(x):
                    y = 1
                    z = 0
                    total = 10 // (x + y)
                    return total + z
                """,
            )
            reload_ok()
            try:
                rl.continue_in_new_code(failure)
            except engine.RestartRefused as e:
                refusals.append(str(e))
        _set(failure.frame, "y", 1)
        return rl.continue_in_new_code(failure)

    policy.decide = decide
    assert m.f(0) == 10
    if sys.version_info >= (3, 13):
        assert refusals == [
            "the new code would read `y` before assigning it (assign it at the prompt first)"
        ]


def test_an_exception_leaving_the_new_code_exits_the_with_block_once(project, policy):
    m = project.module(
        """
        import contextlib

        class Resource:
            def __init__(self, log):
                self.log = log
                log.append("enter")

            def close(self):
                self.log.append("exit")

        def run(log):
            with contextlib.closing(Resource(log)):
                a = 1 // 0
                b = 2
            return a + b
        """
    )

    def decide(failure):
        if len(policy.calls) == 1:
            project.replace(m, "a = 1 // 0", "a = 1")
            project.replace(m, "b = 2", "b = int('x')")
            reload_ok()
            return Decision(Action.RETRY)
        return Decision(Action.PROPAGATE)

    policy.decide = decide
    log = []
    with pytest.raises(ValueError):
        m.run(log)
    assert log == ["enter", "exit"]


def fix_then_fail(project, m, policy, edits):
    """A policy that, at the first failure, makes the paused statement succeed
    and a later one raise, reloads and retries (a hand-over); later failures
    propagate."""

    def decide(failure):
        if len(policy.calls) == 1:
            for old, new in edits:
                project.replace(m, old, new)
            reload_ok()
            return Decision(Action.RETRY)
        return Decision(Action.PROPAGATE)

    return decide


def test_an_exception_leaving_the_new_code_meets_the_except_clause_once(project, policy):
    m = project.module(
        """
        def run(log):
            try:
                a = 1 // 0
                b = 2
            except ValueError as e:
                log.append(str(e))
                raise
            return a + b
        """
    )
    policy.decide = fix_then_fail(
        project, m, policy, [("a = 1 // 0", "a = 1"), ("b = 2", "b = int('x')")]
    )
    log = []
    with pytest.raises(ValueError) as info:
        m.run(log)
    assert log == [str(info.value)]
    assert sys.exception() is None


def test_an_exception_leaving_the_new_code_from_a_paused_except_body(project, policy):
    """The paused statement is in an `except` body: the old frame drops the
    saved exception state (restoring it) without running the `except`'s
    cleanup or the outer clause again."""
    m = project.module(
        """
        def run(log):
            try:
                try:
                    int("x")
                except ValueError:
                    a = 1 // 0
                    b = 2
            except ValueError as e:
                log.append(str(e))
                raise
            return a + b
        """
    )
    policy.decide = fix_then_fail(
        project, m, policy, [("a = 1 // 0", "a = 1"), ("b = 2", "b = int('y')")]
    )
    log = []
    with pytest.raises(ValueError) as info:
        m.run(log)
    assert "'y'" in str(info.value)
    assert log == [str(info.value)]
    # Raised in the `except ValueError` body the continuation re-entered.
    assert "'x'" in str(info.value.__context__)
    assert sys.exception() is None


def test_an_exception_leaving_the_new_code_runs_the_finally_once(project, policy):
    m = project.module(
        """
        def run(log):
            try:
                a = 1 // 0
                b = 2
            finally:
                log.append("finally")
            return a + b
        """
    )
    policy.decide = fix_then_fail(
        project, m, policy, [("a = 1 // 0", "a = 1"), ("b = 2", "b = int('x')")]
    )
    log = []
    with pytest.raises(ValueError):
        m.run(log)
    assert log == ["finally"]


def test_a_paused_frame_in_a_try_finally_hands_over(project, policy):
    """Leaving is refused inside `try`/`finally` (it would skip the `finally`),
    but a hand-over is not: the new code runs the `finally`, once."""
    m = project.module(
        """
        def run(log):
            try:
                a = 1 // 0
                log.append("old")
            finally:
                log.append("finally")
            return a
        """
    )
    policy.decide = fix_and_retry(project, m, "a = 1 // 0", "a = 7")
    log = []
    assert m.run(log) == 7
    assert log == ["old", "finally"]


def test_an_exception_leaving_the_new_code_in_nested_loops(project, policy):
    """Two iterators and a `with` below the paused statement: the old frame
    drops all three without exiting the `with` again."""
    m = project.module(
        """
        import contextlib

        class Resource:
            def __init__(self, log):
                self.log = log
                log.append("enter")

            def close(self):
                self.log.append("exit")

        def run(rows, log):
            out = []
            with contextlib.closing(Resource(log)):
                for row in rows:
                    for x in row:
                        out.append(100 // x)
                    out.append("|")
            return out
        """
    )
    policy.decide = fix_then_fail(
        project,
        m,
        policy,
        [("out.append(100 // x)", "out.append(100 // x if x else int('bad'))")],
    )
    log = []
    with pytest.raises(ValueError):
        m.run([[1], [2, 0, 3], [4]], log)
    assert log == ["enter", "exit"]


def test_several_outer_frames_switch_at_their_loops(project, policy):
    m = project.module(
        """
        def inner(x):
            return 10 // x

        def middle(values):
            out = []
            for v in values:
                out.append(inner(v))
                out.append("m-old")
            return out

        def outer(groups):
            res = []
            for g in groups:
                res.append(middle(g))
                res.append("o-old")
            return res
        """
    )

    def decide(failure):
        project.replace(m, "return 10 // x", "return 10 // (x or 5)")
        project.replace(m, '"m-old"', '"m-new"')
        project.replace(m, '"o-old"', '"o-new"')
        report = reload_ok()
        assert [(s.function, s.switches) for s in report.frames] == [
            ("outer", True),
            ("middle", True),
            ("inner", False),
        ]
        return Decision(Action.RETRY)

    policy.decide = decide
    assert m.outer([[1, 0], [2]]) == [[10, "m-old", 2, "m-old"], "o-old", [5, "m-new"], "o-new"]
