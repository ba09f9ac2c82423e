#!/usr/bin/env python3
"""Transparency check against real code: CPython's own test suites, run on
stdlib modules whose every function has resume points.

For the interpreter running this script, each chosen module's test suite
(``python -m test test_x``) runs twice in child processes:

* **plain**: ``python -m test ...`` exactly as CPython's developers run it;
* **instrumented**: ``_stdlib_suite_boot.py`` enables resurrect with
  ``on_error="raise"`` (every exception propagates as plain Python would),
  installs the import hook for the module's source files *before* they are
  imported, gives the live functions of those already imported (``os``,
  ``posixpath``, ``enum`` ...) instrumented code, then runs regrtest in the same
  process. It reports how many of the module's functions carry resume points.

Both runs are compared test by test (regrtest's JUnit XML). The instrumented run
must not fail a test the plain run passes, nor run a different number of tests,
nor crash or time out. A crash (a signal such as SIGSEGV) is reported with the
test that was running. A difference that comes with the mechanism rather than
a bug (a test printing the module's own code object, which carries the stubs'
names) is declared per module as *known*: reported, not counted. Tests that
hang plain on a supported version are left out of both runs (``ignore``).

Usage::

    python scripts/stdlib_suite.py            # all modules of the catalogue
    python scripts/stdlib_suite.py --fast     # a quick subset, for CI
    python scripts/stdlib_suite.py --modules json,enum,os -j 2
    python scripts/stdlib_suite.py --list

Exit status: 0 when every module behaves as plain, 1 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import glob
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
BOOT = os.path.join(HERE, "_stdlib_suite_boot.py")
REPO_PYTHON = os.path.join(os.path.dirname(HERE), "python")


@dataclasses.dataclass(frozen=True)
class Suite:
    """One line of the catalogue: CPython test modules and the stdlib source
    files (globs relative to the stdlib directory) whose functions get resume
    points. Globs that match nothing on a version are ignored (``_pydatetime``
    exists from 3.12 on, ``pathlib`` is a package from 3.13 on ...)."""

    name: str
    tests: tuple[str, ...]
    sources: tuple[str, ...]
    #: Tests expected to fail instrumented, and why: they inspect the module's
    #: own code objects, which carry the resume points' extra names and constants.
    known: tuple[str, ...] = ()
    known_why: str = ""
    #: Tests left out of both runs (regrtest ``--ignore`` patterns): they hang
    #: or fail plain on some supported version.
    ignore: tuple[str, ...] = ()


def _s(
    name: str, tests: str = "", sources: str = "", known: str = "", why: str = "", ignore: str = ""
) -> Suite:
    return Suite(
        name,
        tuple(tests.split()) or (f"test_{name}",),
        tuple(sources.split()) or (f"{name}.py",),
        tuple(known.split()),
        why,
        tuple(ignore.split()),
    )


# Pure-Python modules whose CPython tests pass plain on 3.11, 3.12 and 3.13 and
# take at most ~25 s each on a 2-core machine. Several are imported before any
# hook can be installed (frozen at start-up: os, posixpath, genericpath, stat,
# abc, codecs; imported by resurrect itself: enum, ast, dataclasses, threading,
# linecache, fnmatch ...), which exercises the live-function patching.
CATALOGUE: tuple[Suite, ...] = (
    _s("abc", sources="abc.py _py_abc.py"),
    _s("argparse"),
    _s("ast"),
    _s("base64"),
    _s("bdb"),
    _s("bisect"),
    _s("calendar"),
    _s("cmd"),
    _s("code", tests="test_code_module"),
    _s("codecs"),
    _s("codeop"),
    _s("collections", sources="collections/__init__.py _collections_abc.py"),
    _s("colorsys"),
    _s("configparser"),
    _s("contextlib", tests="test_contextlib test_contextlib_async"),
    _s("copy"),
    _s("copyreg"),
    _s("csv"),
    _s("dataclasses"),
    _s("datetime", sources="datetime.py _pydatetime.py _strptime.py"),
    _s("decimal", sources="decimal.py _pydecimal.py"),
    _s("difflib"),
    _s(
        "dis",
        known="BytecodeTests.test_info CodeInfoTests.test_code_info CodeInfoTests.test_show_code",
        why="they print dis.code_info.__code__ itself, whose co_names and co_consts "
        "gain the names and constants the stubs use",
    ),
    _s("email", sources="email/*.py email/mime/*.py"),
    _s("enum"),
    _s("filecmp"),
    _s("fileinput"),
    _s("fnmatch"),
    _s("fractions"),
    _s("functools"),
    _s("getopt"),
    _s("gettext"),
    _s("glob"),
    _s("graphlib"),
    _s("heapq"),
    _s("html", tests="test_html test_htmlparser", sources="html/*.py"),
    _s("http.cookiejar", tests="test_http_cookiejar", sources="http/cookiejar.py"),
    _s("http.cookies", tests="test_http_cookies", sources="http/cookies.py"),
    _s("inspect"),
    _s("ipaddress"),
    _s("json", sources="json/*.py"),
    _s("linecache"),
    _s("locale"),
    _s("logging", sources="logging/*.py"),
    _s("memoryio", sources="_pyio.py"),
    _s("mimetypes"),
    _s("minidom", sources="xml/dom/*.py"),
    _s("netrc"),
    _s("ntpath"),
    _s("numbers", tests="test_abstract_numbers"),
    _s("operator"),
    _s("optparse"),
    _s("os"),
    _s("pathlib", sources="pathlib.py pathlib/*.py"),
    _s("pdb"),
    _s("pickle", sources="pickle.py _compat_pickle.py"),
    _s("plistlib"),
    _s("posixpath", tests="test_posixpath test_genericpath", sources="posixpath.py genericpath.py"),
    _s("pprint"),
    _s("profile", tests="test_profile test_pstats", sources="profile.py pstats.py"),
    _s("queue"),
    _s("quopri"),
    _s("random"),
    _s("re", sources="re/*.py"),
    _s("reprlib"),
    _s("sax", sources="xml/sax/*.py"),
    _s("sched"),
    _s("secrets"),
    _s("shlex"),
    _s("shutil"),
    _s("smtplib"),
    _s("stat"),
    _s("statistics"),
    _s("string"),
    _s("tarfile"),
    _s("tempfile"),
    _s("textwrap"),
    # hangs plain on 3.12.1 (a subprocess that never exits)
    _s("threading", ignore="test_print_exception_gh_102056"),
    _s("timeit"),
    _s("tokenize"),
    _s("tomllib", sources="tomllib/*.py"),
    _s("traceback"),
    _s("types"),
    _s("typing"),
    _s("unittest", sources="unittest/*.py"),
    _s("urllib.parse", tests="test_urlparse", sources="urllib/parse.py"),
    _s("uuid"),
    _s("warnings"),
    _s("wave"),
    _s("weakref", sources="weakref.py _weakrefset.py"),
    _s("xml.etree", tests="test_xml_etree", sources="xml/etree/*.py"),
    _s("zipapp"),
    _s("zipfile", sources="zipfile.py zipfile/*.py zipfile/_path/*.py"),
    _s("zipimport"),
    _s("zoneinfo", sources="zoneinfo/*.py"),
)

#: The subset CI runs on every version: quick, and covering a package, a module
#: frozen at start-up, modules resurrect itself imports, and heavy users of
#: exceptions, generators and closures.
FAST = ("argparse", "collections", "dataclasses", "enum", "json", "posixpath", "traceback")


# ---------------------------------------------------------------------------
# One child run


@dataclasses.dataclass
class RunResult:
    mode: str  # "plain" | "instrumented"
    status: str  # "ok" | "failed" | "crash" | "timeout" | "error"
    rc: int | None
    seconds: float
    log: str
    tests: int = 0
    skipped: int = 0
    failed: set[str] = dataclasses.field(default_factory=set)  # failures + errors
    signal: str = ""
    last_test: str = ""
    detail: str = ""
    report: dict | None = None
    regrtest: str = ""  # regrtest's own verdict: SUCCESS, FAILURE, ENV CHANGED ...

    def summary(self) -> str:
        if self.status == "crash":
            return f"CRASH {self.signal}"
        if self.status == "timeout":
            return "TIMEOUT"
        if self.status == "error":
            return f"ERROR rc={self.rc}"
        if self.failed:
            return f"{len(self.failed)} failed"
        return "ok"


_TEST_LINE = re.compile(r"^(test\w*) \(([\w.]+)\)")


def _last_test(log_text: str) -> str:
    """The test regrtest's verbose output started last (the one running at a
    crash or a hang)."""
    last = ""
    for line in log_text.splitlines():
        m = _TEST_LINE.match(line)
        if m:
            last = m.group(2)
    return last


def _parse_junit(path: str, res: RunResult) -> bool:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return False
    for case in root.iter("testcase"):
        res.tests += 1
        tags = {child.tag for child in case}
        if "failure" in tags or "error" in tags:
            res.failed.add(case.get("name", "?"))
        elif "skipped" in tags or case.get("status") == "skipped":
            res.skipped += 1
    return True


def run_child(
    suite: Suite,
    mode: str,
    workdir: str,
    timeout: float,
    env_extra: dict[str, str],
) -> RunResult:
    tag = f"{suite.name}-{mode}"
    rundir = tempfile.mkdtemp(prefix=f"{tag}-", dir=workdir)
    log = os.path.join(workdir, f"{tag}.log")
    junit = os.path.join(rundir, "junit.xml")
    report = os.path.join(rundir, "report.json")
    regrtest_args = [
        "-v",
        "--randseed",
        "1",
        "--junit-xml",
        junit,
        # regrtest dumps the stack and exits if one test file hangs
        "--timeout",
        str(int(max(timeout - 30, 30))),
        *(f"--ignore={pattern}" for pattern in suite.ignore),
        *suite.tests,
    ]
    env = dict(os.environ)
    if mode == "plain":
        cmd = [sys.executable, "-m", "test", *regrtest_args]
    else:
        cmd = [sys.executable, BOOT, *regrtest_args]
        env.update(env_extra)
        env["RESURRECT_SUITE_REPORT"] = report
    env.setdefault("PYTHONFAULTHANDLER", "1")
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=rundir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            rc: int | None = proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            rc = None
        # Whatever it left behind: a test's subprocess outlives regrtest when
        # regrtest's own --timeout ends it (the child has its own session).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    seconds = time.perf_counter() - t0
    with open(log, encoding="utf-8", errors="replace") as f:
        text = f.read()
    res = RunResult(mode, "ok", rc, seconds, log)
    have_junit = _parse_junit(junit, res)
    if mode == "instrumented":
        try:
            with open(report, encoding="utf-8") as f:
                res.report = json.load(f)
        except (OSError, ValueError):
            res.report = None
    hung = re.search(r"Timeout \(\d+:\d\d:\d\d\)!", text) is not None
    if timed_out or (hung and not have_junit):
        res.status = "timeout"
        res.last_test = _last_test(text)
    elif rc is not None and rc < 0:
        res.status = "crash"
        try:
            res.signal = signal.Signals(-rc).name
        except ValueError:
            res.signal = f"signal {-rc}"
        res.last_test = _last_test(text)
        m = re.search(r"^Fatal Python error: .*$", text, re.M)
        res.detail = m.group(0) if m else ""
    else:
        verdicts = re.findall(r"^(?:== Tests result|Result): ([A-Z][A-Z ,]*)", text, re.M)
        res.regrtest = verdicts[-1].strip() if verdicts else ""
        if not have_junit or ("FAILURE" in res.regrtest and not res.failed):
            # no per-test results, or a failure no test case accounts for (the
            # test module did not import, an error at tear-down ...)
            res.status = "error"
            res.last_test = _last_test(text)
            tail = [ln for ln in text.splitlines() if ln.strip()][-3:]
            res.detail = " | ".join(tail)
        elif res.failed:
            res.status = "failed"
    shutil.rmtree(rundir, ignore_errors=True)
    return res


# ---------------------------------------------------------------------------
# One module: plain and instrumented, compared


@dataclasses.dataclass
class Outcome:
    suite: Suite
    plain: RunResult
    inst: RunResult
    sources: list[str]
    bad: bool = False
    verdict: str = ""
    notes: list[str] = dataclasses.field(default_factory=list)
    #: module functions: instrumented, total (less those with nothing to cover)
    fns: tuple[int, int] = (0, 0)
    trivial: int = 0  # module functions with nothing to cover
    live: tuple[int, int] = (0, 0)  # live function objects at exit
    retried: bool = False


def _judge(o: Outcome) -> None:
    p, i = o.plain, o.inst
    o.notes.clear()
    o.bad = False
    if i.status == "crash":
        o.bad, o.verdict = True, f"CRASH ({i.signal})"
        o.notes.append(f"crashed with {i.signal} in {i.last_test or '?'} {i.detail}".rstrip())
    elif i.status == "timeout" and p.status != "timeout":
        o.bad, o.verdict = True, "TIMEOUT"
        o.notes.append(f"timed out in {i.last_test or '?'}")
    elif i.status == "error" and p.status != "error":
        o.bad, o.verdict = True, "ERROR"
        o.notes.append(f"no results (rc={i.rc}): {i.detail}")
    elif p.status in ("crash", "timeout", "error"):
        o.verdict = f"plain {p.summary()}"
        o.notes.append(f"the plain run did not complete ({p.summary()}): nothing to compare")
    else:
        new = sorted(i.failed - p.failed)
        known = [t for t in new if any(t.endswith(k) for k in o.suite.known)]
        new = [t for t in new if t not in known]
        if known:
            short = ", ".join(".".join(k.split(".")[-2:]) for k in known)
            o.notes.append(f"known differences ({short}): {o.suite.known_why}")
        if new:
            o.bad = True
            o.verdict = f"{len(new)} NEW FAILURES"
            o.notes.extend(f"fails only instrumented: {t}" for t in new[:15])
            if len(new) > 15:
                o.notes.append(f"... and {len(new) - 15} more")
        elif len(i.failed) - len(known) > len(p.failed):
            o.bad, o.verdict = True, "MORE FAILURES"
        elif i.tests != p.tests:
            o.bad = True
            o.verdict = "TESTS DIFFER"
            o.notes.append(f"{i.tests} tests ran instrumented, {p.tests} plain")
        else:
            o.verdict = f"same ({len(known)} known)" if known else "same"
            if p.failed:
                o.notes.append(f"fails plain too: {', '.join(sorted(p.failed)[:5])}")
    if p.regrtest and i.regrtest and p.regrtest != i.regrtest and not o.bad:
        o.notes.append(f"regrtest says {i.regrtest} instrumented, {p.regrtest} plain")
    # Did the module's code really run instrumented?
    rep = i.report
    if rep is not None:
        mods = rep.get("modules", {})
        ins = sum(m["module_fns"][0] for m in mods.values())
        tot = sum(m["module_fns"][1] for m in mods.values())
        o.fns = (ins, tot)
        o.trivial = sum(m["module_fns"][2] for m in mods.values())
        live = rep.get("live", {})
        o.live = (sum(v[0] for v in live.values()), sum(v[1] for v in live.values()))
        for path, m in sorted(mods.items()):
            if m.get("missing"):
                o.notes.append(
                    f"{os.path.basename(path)}: not instrumented: {', '.join(m['missing'][:8])}"
                )
        for name in rep.get("early", []):
            o.notes.append(f"{name}: imported before the hook; live functions given resume points")
        if rep.get("hook_error"):
            o.notes.insert(0, rep["hook_error"])
            if not o.bad:
                o.bad, o.verdict = True, "HOOK ERROR"
        if tot == 0 and not o.bad and i.status != "crash":
            o.bad, o.verdict = True, "NOT INSTRUMENTED"
            o.notes.append("no function of the module was loaded: the check proved nothing")
    elif i.status not in ("crash", "timeout"):
        o.notes.append("the instrumented run wrote no report")


def run_suite(suite: Suite, args, workdir: str, env_extra: dict[str, str]) -> Outcome:
    stdlib = sysconfig.get_paths()["stdlib"]
    sources = sorted(
        {
            os.path.abspath(p)
            for pattern in suite.sources
            for p in glob.glob(os.path.join(stdlib, pattern))
            if p.endswith(".py")
        }
    )
    extra = dict(env_extra, RESURRECT_SUITE_GLOBS="\n".join(sources))
    plain = run_child(suite, "plain", workdir, args.timeout, extra)
    inst = run_child(suite, "instrumented", workdir, args.timeout, extra)
    o = Outcome(suite, plain, inst, sources)
    _judge(o)
    # A timing-sensitive test (queue, threading ...) may fail under load: run
    # once more before calling it a difference. Crashes, hangs and errors are
    # never retried away.
    for _ in range(args.retries):
        if not o.bad or inst.status != "failed":
            break
        o.retried = True
        first = o.verdict
        o.inst = inst = run_child(suite, "instrumented", workdir, args.timeout, extra)
        _judge(o)
        if not o.bad:
            o.verdict = "same (flaky)"
            o.notes.insert(0, f"first instrumented run: {first}; passed when run again")
    return o


# ---------------------------------------------------------------------------
# Driver


def _available(suite: Suite) -> bool:
    return all(importlib.util.find_spec(f"test.{t}") is not None for t in suite.tests)


def _resurrect_env() -> dict[str, str]:
    """How the child finds ``resurrect``: as this interpreter does, else from
    the source tree next to this script."""
    try:
        spec = importlib.util.find_spec("resurrect")
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        return {}
    if glob.glob(os.path.join(REPO_PYTHON, "resurrect", "_core*")):
        return {"RESURRECT_SUITE_SYSPATH": REPO_PYTHON}
    sys.exit(
        "stdlib_suite: cannot import resurrect: install it (make setup) or build "
        "python/resurrect/_core (maturin develop)"
    )


def _fmt_result(r: RunResult) -> str:
    return r.summary()


def _print_table(outcomes: list[Outcome]) -> None:
    head = (
        f"{'module':<14} {'tests':>6} {'skip':>5}  {'plain':<10} {'instrumented':<14}"
        f" {'fns instr':>11} {'live instr':>11} {'plain s':>8} {'instr s':>8} {'ratio':>6}  verdict"
    )
    print(head)
    print("-" * len(head))
    for o in outcomes:
        p, i = o.plain, o.inst
        fns = f"{o.fns[0]}/{o.fns[1]}" if o.fns[1] else "-"
        live = f"{o.live[0]}/{o.live[1]}" if o.live[1] else "-"
        ratio = f"{i.seconds / p.seconds:.2f}" if p.seconds > 0 else "-"
        print(
            f"{o.suite.name:<14} {p.tests:>6} {p.skipped:>5}  {_fmt_result(p):<10}"
            f" {_fmt_result(i):<14} {fns:>11} {live:>11} {p.seconds:>8.1f} {i.seconds:>8.1f}"
            f" {ratio:>6}  {o.verdict}"
        )
    print(
        "fns instr: functions of the module (module level, methods, properties) running\n"
        "  instrumented code / all that have something to cover; live instr: the same for\n"
        "  every function object alive at exit (closures included); times are of the whole\n"
        "  child process (start-up and instrumenting included)."
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Run CPython's test suites of stdlib modules plain and with every "
        "function of the module instrumented, and compare.",
    )
    ap.add_argument("--fast", action="store_true", help=f"only {', '.join(FAST)}")
    ap.add_argument("--modules", help="comma-separated catalogue names (see --list)")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="modules run at once (default 1)")
    ap.add_argument(
        "--timeout",
        type=float,
        help="seconds per child run (default 180, with --fast 90)",
    )
    ap.add_argument(
        "--retries",
        type=int,
        default=1,
        help="rerun an instrumented run with new test failures this many times (default 1)",
    )
    ap.add_argument("--log-dir", help="keep the child logs here (default: a temporary directory)")
    ap.add_argument("--list", action="store_true", help="list the catalogue and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="print notes of every module")
    args = ap.parse_args(argv)
    if args.timeout is None:
        args.timeout = 90.0 if args.fast else 180.0

    by_name = {s.name: s for s in CATALOGUE}
    if args.list:
        for s in CATALOGUE:
            mark = "*" if s.name in FAST else " "
            print(f"{mark} {s.name:<14} {' '.join(s.tests):<40} {' '.join(s.sources)}")
        return 0
    if args.modules:
        names = [n.strip() for n in args.modules.split(",") if n.strip()]
        unknown = [n for n in names if n not in by_name]
        if unknown:
            ap.error(f"unknown modules: {', '.join(unknown)} (see --list)")
        suites = [by_name[n] for n in names]
    elif args.fast:
        suites = [by_name[n] for n in FAST]
    else:
        suites = list(CATALOGUE)
    missing = [s.name for s in suites if not _available(s)]
    suites = [s for s in suites if s.name not in missing]

    env_extra = _resurrect_env()
    workdir = args.log_dir or tempfile.mkdtemp(prefix="stdlib-suite-")
    os.makedirs(workdir, exist_ok=True)
    print(
        f"stdlib suite: {sys.implementation.name} {sys.version.split()[0]} ({sys.executable}), "
        f"{len(suites)} modules, -j{args.jobs}, logs in {workdir}",
        flush=True,
    )
    if missing:
        print(f"  not on this version: {', '.join(missing)}")

    lock = threading.Lock()
    outcomes: dict[str, Outcome] = {}
    t0 = time.perf_counter()

    def one(s: Suite) -> Outcome:
        o = run_suite(s, args, workdir, env_extra)
        with lock:
            outcomes[s.name] = o
            flag = "!!" if o.bad else "  "
            print(
                f"{flag} [{len(outcomes):>2}/{len(suites)}] {s.name:<14} plain {o.plain.summary()}"
                f" ({o.plain.seconds:.1f}s), instrumented {o.inst.summary()}"
                f" ({o.inst.seconds:.1f}s), functions {o.fns[0]}/{o.fns[1]}: {o.verdict}",
                flush=True,
            )
        return o

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(one, suites))
    total = time.perf_counter() - t0

    ordered = [outcomes[s.name] for s in suites]
    print()
    _print_table(ordered)
    bad = [o for o in ordered if o.bad]
    print()
    for o in ordered:
        if o.notes and (o.bad or args.verbose or o.retried or "known" in o.verdict):
            print(f"{o.suite.name}:")
            for n in o.notes:
                print(f"    {n}")
            if o.bad:
                print(f"    logs: {o.plain.log}  {o.inst.log}")
    crashes = [o for o in ordered if o.inst.status == "crash"]
    tests = sum(o.plain.tests for o in ordered)
    fns = sum(o.fns[0] for o in ordered), sum(o.fns[1] for o in ordered)
    tp = sum(o.plain.seconds for o in ordered)
    ti = sum(o.inst.seconds for o in ordered)
    trivial = sum(o.trivial for o in ordered)
    print(
        f"\n{len(ordered)} modules, {tests} tests, {fns[0]}/{fns[1]} module functions "
        f"instrumented (and {trivial} with nothing to cover); "
        f"plain {tp:.0f}s, instrumented {ti:.0f}s; wall {total:.0f}s"
    )
    for o in crashes:
        print(f"CRASH: {o.suite.name}: {o.inst.signal} in {o.inst.last_test or '?'} ({o.inst.log})")
    if bad:
        print(f"FAILED: {len(bad)} modules differ: {', '.join(o.suite.name for o in bad)}")
        print(f"logs kept in {workdir}")
        return 1
    print("OK: every module behaves instrumented as plain")
    if not args.log_dir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
