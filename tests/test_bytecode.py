"""The bytecode crate against the running interpreter: opcode tables, stack
effects, and decode -> encode round trips of every code object of the stdlib.

The round trip and the instrumentation run print how many code objects they
checked (in the terminal summary, and on stderr with ``-s``).
"""

from __future__ import annotations

import dis
import json
import opcode
import os
import subprocess
import sys
import sysconfig
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from resurrect import _core

V = sys.version_info[:2]

# ---------------------------------------------------------------------------
# (a) opcode tables


def _cache_entries(name: str, num: int) -> int:
    entries = opcode._inline_cache_entries
    if isinstance(entries, dict):  # 3.13: by name
        return entries.get(name, 0)
    return entries[num]  # 3.11, 3.12: by number


def test_opcode_table_matches_dis():
    table = {num: (name, caches) for num, name, caches in _core.opcode_table()}
    expected = {
        num: (name, _cache_entries(name, num)) for name, num in dis.opmap.items() if num < 256
    }
    assert table == expected


def test_extended_arg_and_have_argument():
    table = {name: num for num, name, _ in _core.opcode_table()}
    assert table["EXTENDED_ARG"] == dis.EXTENDED_ARG == (71 if V >= (3, 13) else 144)
    assert table["CACHE"] == 0


# ---------------------------------------------------------------------------
# (b) stack effects

#: Opcodes the analysis does not model (`None`): they never appear in `co_code`
#: (instrumented variants, executor entries, the interpreter's own exit).
NEVER_IN_CO_CODE = {"RESERVED", "INTERPRETER_EXIT", "ENTER_EXECUTOR"}

ARGS = [*range(301), 511, 1000, 0x103, 0x1FF, 0x7FFF, 0xFFFF, 0x10000]


def _documented_difference(name: str, arg: int, jump: bool, dis_value, core_value) -> bool:
    """The differences the core documents (crates/bytecode/src/effects.rs)."""
    if name == "RETURN_GENERATOR" and V <= (3, 12):
        # dis models 0; the value is popped by the POP_TOP that follows.
        return dis_value == 0 and core_value == 1
    if name == "FOR_ITER" and jump and V >= (3, 12):
        # dis models the jump to END_FOR (iterator and a value still on the
        # stack); the interpreter lands past it with the iterator popped.
        return dis_value == 1 and core_value == -1
    return False


def _dis_effect(num: int, arg: int, jump: bool):
    try:
        return dis.stack_effect(num, arg if num >= dis.HAVE_ARGUMENT else None, jump=jump)
    except ValueError:
        return None


def _stack_effect_mismatches(args) -> list:
    out = []
    for num, name, _ in _core.opcode_table():
        if name.startswith("INSTRUMENTED_") or name in NEVER_IN_CO_CODE:
            continue
        for jump in (False, True):
            for arg in args if num >= dis.HAVE_ARGUMENT else [0]:
                d = _dis_effect(num, arg, jump)
                c = _core.stack_effect(num, arg, jump)
                if d != c and not _documented_difference(name, arg, jump, d, c):
                    out.append((name, arg, jump, "dis", d, "core", c))
    return out


def test_stack_effect_matches_dis():
    mismatches = _stack_effect_mismatches(ARGS)
    assert mismatches == []


def test_stack_effect_flags():
    """The flag bits of LOAD_GLOBAL, LOAD_ATTR, MAKE_FUNCTION, FORMAT_VALUE,
    UNPACK_EX (and LOAD_SUPER_ATTR in 3.12+) change the effect; each value of
    the bits is covered by the sweep above, this checks a few by name."""
    names = {name: num for num, name, _ in _core.opcode_table()}
    cases = {
        "LOAD_GLOBAL": [0, 1, 2, 3, 0x1FF],
        "LOAD_ATTR": [0, 1, 2, 3, 0x1FF],
        "MAKE_FUNCTION": [*range(16)],
        "FORMAT_VALUE": [*range(8)],
        "UNPACK_EX": [0, 1, 0x100, 0x101, 0x305, 0xFFFF],
        "LOAD_SUPER_ATTR": [0, 1, 2, 3, 4, 5, 6, 7],
        "CALL_INTRINSIC_1": [1, 2, 3],
        "CALL_FUNCTION_EX": [0, 1],
        "BUILD_SLICE": [2, 3],
        "RAISE_VARARGS": [0, 1, 2],
    }
    checked = 0
    for name, args in cases.items():
        if name not in names:
            continue
        num = names[name]
        for arg in args:
            for jump in (False, True):
                assert _core.stack_effect(num, arg, jump) == _dis_effect(num, arg, jump), (
                    name,
                    arg,
                    jump,
                )
                checked += 1
    assert checked >= 90


def test_stack_effect_documented_differences():
    names = {name: num for num, name, _ in _core.opcode_table()}
    rg = names["RETURN_GENERATOR"]
    assert _core.stack_effect(rg, 0, False) == 1
    fi = names["FOR_ITER"]
    assert _core.stack_effect(fi, 10, False) == 1
    assert _core.stack_effect(fi, 10, True) == (
        -1 if V >= (3, 12) else dis.stack_effect(fi, 10, jump=True)
    )
    if V == (3, 11):
        # PRECALL n pops nothing of its own and CALL n pops the callable, self/NULL and n args.
        for n in range(5):
            assert _core.stack_effect(names["PRECALL"], n, False) == dis.stack_effect(
                names["PRECALL"], n
            )
            assert _core.stack_effect(names["CALL"], n, False) == dis.stack_effect(names["CALL"], n)


def test_unmodelled_opcodes_never_appear_in_co_code():
    unmodelled = {
        name
        for num, name, _ in _core.opcode_table()
        if _core.stack_effect(num, 0, False) is None and _core.stack_effect(num, 1, False) is None
    }
    assert all(n.startswith("INSTRUMENTED_") or n in NEVER_IN_CO_CODE for n in unmodelled), (
        unmodelled
    )


# ---------------------------------------------------------------------------
# (c) every code object of the stdlib

SKIP_DIRS = {"site-packages", "__pycache__"}


def stdlib_files() -> list[Path]:
    """Every ``.py`` file of the standard library (packages, tests and tools included)."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for root, dirs, files in os.walk(lib):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        out.extend(Path(root, f) for f in sorted(files) if f.endswith(".py"))
    return out


def compile_file(path: Path) -> types.CodeType | None:
    """The module code object of ``path`` as the import system compiles it (without
    running the module: compiling has no side effects), or ``None`` for the few
    files that are not valid Python on purpose (test data of the tokenizer)."""
    try:
        source = path.read_bytes()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return compile(source, str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError, UnicodeDecodeError, OSError, RecursionError):
        return None


def code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    stack = [code]
    while stack:
        c = stack.pop()
        yield c
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))


def stdlib_code_objects() -> Iterator[tuple[Path, types.CodeType]]:
    for path in stdlib_files():
        code = compile_file(path)
        if code is not None:
            for c in code_objects(code):
                yield path, c


def test_stdlib_modules_are_covered():
    """Every importable top-level stdlib module written in Python is among the files."""
    files = {p.stem for p in stdlib_files()} | {p.parent.name for p in stdlib_files()}
    missing = [
        name
        for name in sorted(sys.stdlib_module_names)
        if name not in files
        and not name.startswith("_")
        and name not in sys.builtin_module_names
        and _is_python_module(name)
    ]
    assert missing == []


def _is_python_module(name: str) -> bool:
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    return spec is not None and bool(spec.origin) and spec.origin.endswith(".py")


def test_roundtrip_every_stdlib_code_object(summary):
    checked = 0
    files = set()
    failures = []
    for path, code in stdlib_code_objects():
        files.add(path)
        got = _core.roundtrip(code)
        if tuple(got) != (code.co_code, code.co_exceptiontable, code.co_linetable):
            parts = [
                part
                for part, a, b in zip(
                    ("co_code", "co_exceptiontable", "co_linetable"),
                    got,
                    (code.co_code, code.co_exceptiontable, code.co_linetable),
                    strict=True,
                )
                if a != b
            ]
            failures.append(f"{path}:{code.co_firstlineno} {code.co_qualname}: {parts}")
        checked += 1
    summary(
        f"round trip (Python {V[0]}.{V[1]}): {checked} code objects of {len(files)} stdlib "
        f"files reproduced byte for byte ({len(failures)} failures)"
    )
    assert failures == []
    assert checked > 10000


def test_roundtrip_synthetic_edge_cases():
    """Code the stdlib rarely has: EXTENDED_ARG jumps and constants, long line
    tables (columns > 127, lines far apart), deeply nested handlers."""
    body = "\n".join(f"        x{i} = {i}" for i in range(300))
    big_jump = f"def f(c):\n    if c:\n{body}\n    return 1\n"
    consts = "def g():\n    return [" + ", ".join(f"'s{i}'" for i in range(400)) + "]\n"
    wide = "def h():\n    return " + " + ".join(["a_very_long_name_for_a_value"] * 12) + "\n"
    far = "def k():\n    a = 1\n" + "\n" * 5000 + "    return a\n"
    nested = "def n():\n"
    for depth in range(18):
        nested += "    " * (depth + 1) + "try:\n"
    nested += "    " * 19 + "pass\n"
    for depth in reversed(range(18)):
        nested += "    " * (depth + 1) + "except Exception:\n" + "    " * (depth + 2) + "pass\n"
    for src in (big_jump, consts, wide, far, nested):
        for c in code_objects(compile(src, "<edge>", "exec")):
            assert tuple(_core.roundtrip(c)) == (c.co_code, c.co_exceptiontable, c.co_linetable)


def _random_code_bytes(rnd) -> bytes:
    """Structurally valid but meaningless ``co_code``: real opcodes with their
    (zeroed) inline caches and random arguments. (Truly arbitrary bytes crash
    CPython itself when it builds the code object or deoptimises ``co_code``: a
    cache run past the end is read without a bounds check; so do the
    ``INSTRUMENTED_*`` opcodes, which need monitoring data the code lacks.)"""
    ops = [
        (num, caches)
        for num, name, caches in _core.opcode_table()
        if name != "CACHE" and not name.startswith("INSTRUMENTED_") and name not in NEVER_IN_CO_CODE
    ]
    out = bytearray()
    for _ in range(rnd.randrange(1, 30)):
        num, caches = rnd.choice(ops)
        out += bytes([num, rnd.randrange(256)]) + bytes(2 * caches)
    return bytes(out)


@pytest.mark.isolated(timeout=300)
def test_decoders_never_panic_on_garbage():
    """Arbitrary instruction sequences, exception tables and line tables give a
    faithful round trip or a typed ``BytecodeError``, never a panic; so do the
    analysis (``resume_points``) and ``instrument``."""
    import random

    rnd = random.Random(1234)
    src = "def f(a):\n    for i in a:\n        try:\n            pass\n        except E:\n            pass\n"
    fn = next(c for c in compile(src, "<g>", "exec").co_consts if isinstance(c, types.CodeType))
    outcomes = {"ok": 0, "error": 0}
    for _ in range(15000):
        which = rnd.randrange(3)
        if which == 0:
            code = fn.replace(co_code=_random_code_bytes(rnd))
        else:
            blob = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 40)))
            code = fn.replace(**{("co_exceptiontable", "co_linetable")[which - 1]: blob})
        for check in (_core.roundtrip, _core.resume_points, _core.instrument):
            try:
                got = check(code)
            except _core.BytecodeError:
                outcomes["error"] += 1
                continue
            except BaseException as e:  # a Rust panic surfaces as pyo3's PanicException
                pytest.fail(
                    f"{check.__name__} raised {type(e).__name__}: {e} on {code.co_code!r} "
                    f"{code.co_exceptiontable!r} {code.co_linetable!r}"
                )
            outcomes["ok"] += 1
            if check is _core.roundtrip:
                # Garbage may be normalised (entry-start bits of the exception
                # table), but what comes back must be a fixed point.
                again = fn.replace(co_code=got[0], co_exceptiontable=got[1], co_linetable=got[2])
                assert tuple(_core.roundtrip(again)) == tuple(got)
    assert outcomes["error"] > 0 and outcomes["ok"] > 0


# --- instrumenting every code object, in a child process per version

_INSTRUMENT_ALL = r"""
import dis, json, sys, types
sys.path.insert(0, sys.argv[1])
import test_bytecode as t
from resurrect import _core

progress = open(sys.argv[2], "w", buffering=1)
stats = {"files": 0, "code_objects": 0, "instrumented": 0, "with_resume_points": 0,
         "resume_points": 0, "covered": 0, "not_code": [], "invalid": []}
last = None
for path, code in t.stdlib_code_objects():
    if path != last:
        progress.write(f"{path}\n")
        stats["files"] += 1
        last = path
    stats["code_objects"] += 1
    new = _core.instrument(code)
    if not isinstance(new, types.CodeType):
        stats["not_code"].append(f"{path}:{code.co_qualname}")
        continue
    if new is not code and new.co_code != code.co_code:
        stats["instrumented"] += 1
        # The original instructions stay where they are (3.12+: LOAD_FAST may
        # become LOAD_FAST_CHECK of the same size).
        n = len(code.co_code)
        if len(new.co_code) < n:
            stats["invalid"].append(f"{path}:{code.co_qualname}: code shrank")
        # The interpreter's own decoders accept the rewritten tables.
        try:
            list(dis.get_instructions(new))
            entries = dis._parse_exception_table(new)
            for e in entries:
                assert 0 <= e.start < e.end <= len(new.co_code), e
                assert 0 <= e.target < len(new.co_code), e
            list(new.co_positions())
            list(new.co_lines())
        except Exception as e:
            stats["invalid"].append(f"{path}:{code.co_qualname}: {type(e).__name__}: {e}")
    if _core.is_instrumented(new):
        stats["with_resume_points"] += 1
        stats["resume_points"] += sum(1 for r in _core.resume_points(new) if r.covered)
print(json.dumps(stats))
"""


def test_instrument_every_stdlib_code_object(tmp_path, summary):
    progress = tmp_path / "progress.txt"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(_core.__file__).parent.parent), env.get("PYTHONPATH", "")]
    )
    proc = subprocess.run(
        [sys.executable, "-c", _INSTRUMENT_ALL, str(Path(__file__).parent), str(progress)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if proc.returncode != 0:
        lines = progress.read_text().splitlines() if progress.exists() else []
        where = lines[-1] if lines else "?"
        crash = ""
        if proc.returncode < 0:
            import signal

            crash = f"CRASHED with {signal.Signals(-proc.returncode).name} "
        pytest.fail(
            f"instrumenting the stdlib {crash}(exit {proc.returncode}) while in {where}\n"
            f"{proc.stderr[-4000:]}",
            pytrace=False,
        )
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    summary(
        f"instrument (Python {V[0]}.{V[1]}): {stats['code_objects']} code objects of "
        f"{stats['files']} stdlib files; {stats['instrumented']} rewritten, "
        f"{stats['with_resume_points']} with stubs ({stats['resume_points']} resume points)"
    )
    assert stats["not_code"] == []
    assert stats["invalid"] == []
    assert stats["code_objects"] > 10000
    assert stats["instrumented"] > stats["code_objects"] // 2
