"""The parts of checkpoints, in one process: the file format and its checks,
the pickler (what is saved by name, by value, out-of-band, reopened,
refused), the analysis of call statements, the mapping of statements across
edits. ``test_checkpoint.py`` runs them together as a user does."""

from __future__ import annotations

import ast
import dataclasses
import os
import struct
import sys
import textwrap
import threading
import types

import pytest
from resurrect import _core, checkpoint, engine, instrument_code
from resurrect import checkpoint_format as fmt
from resurrect import checkpoint_frames as frames
from resurrect import checkpoint_pickle as cp
from resurrect import checkpoint_source as src


@pytest.fixture(autouse=True)
def key(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("RESURRECT_KEY_FILE", raising=False)


def roundtrip(obj, index=None):
    stream, blobs, files = cp.dump(obj, index or src.SourceIndex())
    parts = [bytes(b.view()) if b.kind == "bytes" else bytearray(b.view()) for b in blobs]
    return cp.load(bytes(stream), parts, [b.kind for b in blobs], src.Resolver({})), blobs, files


# ---------------------------------------------------------------------------
# The file


def write_sample(path, blobs=()):
    header = {**fmt.base_header(), "reason": "test"}
    return fmt.write(str(path), header, memoryview(b"pickle stream"), list(blobs))


def test_write_then_read(tmp_path):
    data = bytearray(os.urandom(3 * fmt._CHUNK + 5))
    path = tmp_path / "a.ckpt"
    write_sample(path, [fmt.Blob("bytes", b"x" * 100), fmt.Blob("buffer", data)])
    ck = fmt.open_checkpoint(str(path))
    stream, parts = ck.read_body()
    assert bytes(stream) == b"pickle stream"
    assert parts[0] == b"x" * 100
    assert bytes(parts[1]) == bytes(data)
    parts[1][0:4] = b"abcd"  # writable, copy-on-write: the file does not change
    assert fmt.open_checkpoint(str(path)).read_body()[1][1][:4] == data[:4]
    assert path.stat().st_mode & 0o777 == 0o600
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []


def test_key_is_created_private(tmp_path):
    write_sample(tmp_path / "a.ckpt")
    key = tmp_path / "config" / "resurrect" / "key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(bytes.fromhex(key.read_text().strip())) == 32


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[:10], "truncated"),
        (lambda d: d[:-1], "truncated"),
        (lambda d: d + b"x", "damaged (1 bytes more than its header says)"),
        (lambda d: b"PK" + d[2:], "not a resurrect checkpoint"),
        (
            lambda d: d[:-60] + bytes([d[-60] ^ 1]) + d[-59:],
            "tampered with (its signature does not match)",
        ),
        (lambda d: d[:-44] + bytes(40) + d[-4:], "unsigned"),
        (
            lambda d: d[:-82] + bytes([d[-82] ^ 1]) + d[-81:],
            "tampered with or damaged (its content does not match",
        ),
    ],
)
def test_damaged_files_are_refused(tmp_path, damage, message):
    path = tmp_path / "a.ckpt"
    write_sample(path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(fmt.RefusedCheckpoint, match=r"a\.ckpt: ") as e:
        fmt.open_checkpoint(str(path)).read_body()
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_another_python_version_is_refused(tmp_path):
    path = tmp_path / "a.ckpt"
    header = {**fmt.base_header(), "python": "3.10"}
    fmt.write(str(path), header, memoryview(b"x"), [])
    with pytest.raises(
        fmt.RefusedCheckpoint, match=r"written by Python 3\.10; this is Python 3\.1\d"
    ):
        fmt.open_checkpoint(str(path))


def test_a_header_is_signed(tmp_path):
    path = tmp_path / "a.ckpt"
    write_sample(path)
    data = path.read_bytes()
    (hlen,) = struct.unpack(">I", data[16:20])
    assert b'"reason":"test"' in data[20 : 20 + hlen]
    path.write_bytes(data.replace(b'"reason":"test"', b'"reason":"tesT"'))
    with pytest.raises(fmt.RefusedCheckpoint, match="signature does not match"):
        fmt.open_checkpoint(str(path))


# ---------------------------------------------------------------------------
# The pickler


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


def test_shared_references_stay_shared():
    shared = [1, 2]
    obj = {"a": shared, "b": (shared, shared), "point": Point(1, 2)}
    back, _, _ = roundtrip(obj)
    assert back["a"] is back["b"][0] is back["b"][1]
    assert back["point"] == Point(1, 2)
    assert dataclasses.fields(back["point"])  # the dataclass sentinels are the real ones


def test_large_bytes_are_out_of_band_and_shared():
    big = b"a" * (cp.BLOB_MIN + 1)
    buf = bytearray(b"b" * cp.BLOB_MIN)
    back, blobs, _ = roundtrip([big, big, buf])
    assert [b.kind for b in blobs] == ["bytes", "bytearray"]
    assert back[0] == big and back[0] is back[1]
    assert type(back[2]) is bytearray and back[2] == buf


def test_numpy_arrays_and_views():
    numpy = pytest.importorskip("numpy")
    a = numpy.arange(100_000, dtype=numpy.float64)
    back, blobs, _ = roundtrip({"a": a, "view": a[::7], "alias": a})
    assert [b.kind for b in blobs] == ["buffer"]
    assert back["alias"] is back["a"]
    back["a"][7] = -1
    assert back["view"][1] == -1 and back["a"].flags.writeable


def test_closures_keep_sharing_their_cells():
    def make():
        n = 1

        def get():
            return n

        def set_(v):
            nonlocal n
            n = v

        return get, set_

    (get, set_), _, _ = roundtrip(make())
    set_(42)
    assert get() == 42


def test_a_class_defined_in_a_function_is_rebuilt():
    def make():
        class Local:
            tag = "local"

            def hello(self):
                return f"hello from {type(self).__name__} {self.tag}"

        return Local()

    back, _, _ = roundtrip(make())
    assert back.hello() == "hello from Local local"


def test_locks_come_back_unless_held():
    lock = threading.Lock()
    back, _, _ = roundtrip({"lock": lock, "rlock": threading.RLock()})
    assert not back["lock"].locked()
    lock.acquire()
    with pytest.raises(cp.Unsaveable, match="lock that is held"):
        roundtrip(lock)


def test_generators_threads_frames_are_refused():
    with pytest.raises(cp.Unsaveable, match="generator"):
        roundtrip(i for i in range(3))
    with pytest.raises(cp.Unsaveable, match="a frame object"):
        roundtrip(sys._getframe())


def test_locate_names_the_variable_and_the_path():
    gen = (i for i in range(3))
    items = [("variable `x` of f()", "x", {"ok": 1, "deep": [0, Point(gen, 1)]})]
    where = cp.locate(items, src.SourceIndex())
    assert where.startswith("variable `x` of f() (at `x['deep'][1].x`): a generator (")
    assert where.endswith("<genexpr>): generators cannot be saved")


def test_files_are_reopened_where_they_were(tmp_path):
    w = open(tmp_path / "w.txt", "w")
    w.write("one\ntwo\n")
    a = open(tmp_path / "a.txt", "a")
    a.write("x\n")
    (tmp_path / "r.bin").write_bytes(b"0123456789")
    r = open(tmp_path / "r.bin", "rb")
    r.read(4)
    closed = open(tmp_path / "r.bin", "rb")
    closed.close()
    stream, _blobs, files = cp.dump([w, a, r, closed, sys.stdout], src.SourceIndex())
    assert {f["path"] for f in files} == {str(tmp_path / n) for n in ("w.txt", "a.txt", "r.bin")}
    # what the old process writes after the checkpoint is cut off when resuming
    w.write("three\n")
    w.close()
    a.write("y\n")
    a.close()
    bw, ba, br, bclosed, out = cp.load(bytes(stream), [], [], src.Resolver({}))
    assert out is sys.stdout
    assert bclosed.closed
    assert br.read() == b"456789"
    bw.write("THREE\n")
    bw.close()
    ba.write("Y\n")
    ba.close()
    r.close()
    assert (tmp_path / "w.txt").read_text() == "one\ntwo\nTHREE\n"
    assert (tmp_path / "a.txt").read_text() == "x\nY\n"


def test_a_file_read_by_a_for_loop_is_refused_with_advice(tmp_path):
    (tmp_path / "t.txt").write_text("a\nb\n")
    with open(tmp_path / "t.txt") as f:
        next(iter(f))
        with pytest.raises(cp.Unsaveable, match=r"iter\(f\.readline, ''\)"):
            roundtrip(f)


def test_a_changed_input_file_is_refused(tmp_path):
    (tmp_path / "t.bin").write_bytes(b"abc")
    with open(tmp_path / "t.bin", "rb") as f:
        stream, _blobs, _ = cp.dump(f, src.SourceIndex())
        (tmp_path / "t.bin").write_bytes(b"abcd")
        with pytest.raises(fmt.CheckpointError, match="changed since the checkpoint"):
            cp.load(bytes(stream), [], [], src.Resolver({}))


# ---------------------------------------------------------------------------
# Re-entering a statement at the call in progress


def reenter(statement: str):
    """Run ``outer``, whose ``statement`` calls ``probe``; at that call, read
    ``outer``'s call site as a checkpoint does, let ``outer`` finish, then run
    a continuation of ``outer`` built from what was read, entering the call
    with a function that returns what ``probe`` returned. Returns both results
    and how often ``helper`` (which the statement may call before ``probe``)
    ran."""
    seen: dict = {}
    calls: list = []

    def helper(v):
        calls.append(v)
        return v * 10

    def probe(*args, **kwargs):
        f = sys._getframe(1)
        rp = _core.resume_point_at(f.f_code, f.f_lasti)
        site = _core.call_site(f, sys._getframe(0))
        assert site is not None and site[0] == rp.start, site
        plain, _cells = frames.frame_locals(f)
        names = frames.localsplus_names(f.f_code)
        seen.update(
            rp=rp,
            site=frames.CallSite(*site[1:4], list(site[4])),
            restores=[(names.index(k), False, v) for k, v in plain.items()],
            base=_core.frame_stack(f, rp.start),
        )
        return 100

    source = f"""
    def outer():
        a, b, items, it = 1, 2, [3, 1], iter([5, 6])
        obj = type("O", (), {{"method": lambda self, v: v + 1}})()
        {statement}
        return x, a
    """
    ns = {"probe": probe, "helper": helper}
    exec(instrument_code(compile(textwrap.dedent(source), "<units>", "exec")), ns)
    plain_result = ns["outer"]()
    n_calls = len(calls)
    entry = frames._entry(frames._RETURN, (100,), {})
    stack = seen["site"].stack + frames.call_operands(seen["site"], entry)
    cont = _core.call_continuation(
        ns["outer"].__code__,
        seen["rp"].start,
        seen["site"].ordinal,
        seen["restores"],
        seen["base"],
        stack,
    )
    resumed = types.FunctionType(cont, ns)()
    return plain_result, resumed, n_calls, len(calls)


# (statement, calls of `helper` made after `probe` returns)
STATEMENTS = [
    ("x = probe(a, b)", 0),
    ("x = helper(a) + probe(a)", 0),
    ("x = helper(a) + helper(b) * probe(a, k=b)", 0),
    ("x = probe(list(it))", 0),
    ("x = probe(a) if a else helper(b)", 0),
    ("x = (helper(a), probe(obj.method(a), a), helper(b))", 1),
    ("x = helper(probe(helper(a)))", 1),
    ("x = f'{helper(a)}: {probe(a)}'", 0),
    ("x = probe(*items, **{'k': helper(b)})", 0),
    ("x = {'a': helper(a), 'p': probe(a=a)}", 0),
    ("x = obj.method(probe(a))", 0),
]
if sys.version_info >= (3, 12):  # 3.11 runs comprehensions in their own frames
    # the state is read at the last call of `probe`: in the second iteration,
    # with the list built so far and the comprehension's iterator on the stack
    STATEMENTS.append(("x = [helper(v) + probe(v) for v in items if v > 0]", 0))


@pytest.mark.parametrize(("statement", "after"), STATEMENTS)
def test_a_statement_is_reentered_at_its_call_without_repeating_work(statement, after):
    plain, resumed, calls_before, calls_after = reenter(statement)
    assert resumed == plain
    # The helper calls made before `probe` are not made again.
    assert calls_after == calls_before + after


def test_reentering_with_a_wrong_stack_is_refused():
    def outer():
        return abs(-1)

    code = instrument_code(outer.__code__)
    rp = _core.resume_points(code)[0]
    with pytest.raises(_core.BytecodeError, match="stack"):
        _core.call_continuation(code, rp.start, 0, [], [], [("value", 1)])
    with pytest.raises(_core.BytecodeError, match="no call number 3"):
        _core.call_continuation(code, rp.start, 3, [], [], [])
    with pytest.raises(_core.BytecodeError, match="no statement starts"):
        _core.call_continuation(code, rp.start + 2, 0, [], [], [])


# ---------------------------------------------------------------------------
# Statements across edits


def steps_of(source: str, line: int):
    tree = ast.parse(textwrap.dedent(source))
    fn = tree.body[0]
    return fn, src.owner_path(fn, line, loop=False)


OLD = """\
def f(items):
    total = 0
    for x in items:
        y = x * 2
        total += y
    return total
"""


def test_an_edited_statement_is_found_in_its_place():
    old, steps = steps_of(OLD, 4)
    new = ast.parse(OLD.replace("y = x * 2", "y = x * 3\n        log(y)")).body[0]
    mapped = src.follow(new, steps, old)
    assert ast.unparse(mapped[-1][2]) == "y = x * 3"


def test_statements_inserted_before_do_not_move_the_mapping():
    old, steps = steps_of(OLD, 5)
    new = ast.parse(OLD.replace("    total = 0\n", "    total = 0\n    seen = set()\n")).body[0]
    mapped = src.follow(new, steps, old)
    assert ast.unparse(mapped[-1][2]) == "total += y"
    assert ast.unparse(mapped[0][2]).startswith("for x in items:")


def test_a_removed_statement_has_no_counterpart():
    old, steps = steps_of(OLD, 5)
    new = ast.parse(OLD.replace("        total += y\n", "")).body[0]
    assert src.follow(new, steps, old) is None


# ---------------------------------------------------------------------------
# Continuations holding unhashable values


def test_the_engine_can_dispatch_in_a_continuation_holding_a_list(policy, monkeypatch):
    """A continuation keeps its restored values among its constants, so it
    cannot be hashed; the engine's resume-point cache must not need to."""

    def f(xs, table):
        out = []
        for x in xs:
            out.append(table[x])
        return out

    code = instrument_code(f.__code__)
    rp = next(r for r in _core.resume_points(code) if r.kind == "loop")
    it = iter([1, 2, 3])
    next(it)
    cont = _core.continuation(
        code, rp.start, [(0, False, [1, 2, 3]), (1, False, {1: 1}), (2, False, [1])], [("iter", it)]
    )
    monkeypatch.setattr(engine, "_rp_cache", engine._rp_cache)  # restored afterwards
    checkpoint._fix_code_cache()
    g = types.FunctionType(cont, globals())
    with pytest.raises(KeyError):  # the program's error, not a TypeError of the engine
        g([1, 2, 3], {1: 1})


def test_checkpoint_is_callable_as_the_api():
    assert callable(checkpoint)
    assert checkpoint.resume_main is not None
    assert engine.policies["checkpoint"] is checkpoint._policy


def test_usage_of_resume_and_checkpoints(capsys, tmp_path):
    assert checkpoint.resume_main(["--bogus"]) == 2
    assert "unknown option '--bogus'" in capsys.readouterr().err
    assert checkpoint.resume_main(["--help"]) == 0
    assert "usage: resurrect resume" in capsys.readouterr().out
    assert checkpoint.list_main([str(tmp_path)]) == 0
    assert "no checkpoints in" in capsys.readouterr().out
    assert checkpoint.list_main([str(tmp_path / "nope")]) == 2


def test_signal_names():
    import signal

    assert checkpoint.parse_signal("TERM") == signal.SIGTERM
    assert checkpoint.parse_signal("sigusr1") == signal.SIGUSR1
    assert checkpoint.parse_signal("10") == 10
    with pytest.raises(ValueError, match="unknown signal"):
        checkpoint.parse_signal("NOPE")
