"""``resurrect run`` gives the program what plain ``python`` gives it, and its
own usage errors are one line with exit status 2."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from cli_helpers import PROGRAMS, REPO, child_env, marker, python, resurrect, run


def _same(a, b) -> None:
    assert (a.status, a.stdout, a.stderr) == (b.status, b.stdout, b.stderr)


# -- what the program sees


def test_script_sees_what_python_gives_it():
    _same(resurrect("run", "show_env.py", "a", "--b"), python("show_env.py", "a", "--b"))


def test_script_by_relative_path_from_another_directory():
    args = ("tests/programs/show_env.py", "x")
    _same(resurrect("run", *args, cwd=REPO), python(*args, cwd=REPO))


def test_module_sees_what_python_gives_it():
    _same(resurrect("run", "-m", "show_env", "x"), python("-m", "show_env", "x"))


def test_a_missing_module_is_reported_as_python_does():
    _same(resurrect("run", "-m", "no_such_module_here"), python("-m", "no_such_module_here"))


def test_package_main_module():
    for code in ("0", "4"):
        _same(resurrect("run", "-m", "pkgdemo", code), python("-m", "pkgdemo", code))


def test_code_sees_what_python_gives_it():
    code = (
        (PROGRAMS / "show_env.py")
        .read_text()
        .replace('"""Prints', "'''Prints")
        .replace('started."""', "started.'''")
    )
    _same(resurrect("run", "-c", code, "a", "b"), python("-c", code, "a", "b"))


def test_options_after_the_program_belong_to_the_program():
    r = resurrect("run", "--on-error", "raise", "show_env.py", "--on-error", "-m", "x")
    assert "argv ['show_env.py', '--on-error', '-m', 'x']" in r.stdout


def test_a_directory_with_main_runs_like_python(tmp_path):
    (tmp_path / "__main__.py").write_text("import sys\nprint('dir main', __name__, sys.argv)\n")
    _same(resurrect("run", str(tmp_path), "z"), python(str(tmp_path), "z"))


# -- exit status and tracebacks


@pytest.mark.parametrize("how", ["normal", "code", "message", "none", "raise", "syntax"])
def test_exit_status_and_output_are_pythons(how):
    _same(resurrect("run", "--on-error", "raise", "exits.py", how), python("exits.py", how))


def test_uncaught_keyboard_interrupt_is_pythons():
    r = resurrect("run", "--on-error", "raise", "exits.py", "keyboard")
    p = python("exits.py", "keyboard")
    _same(r, p)
    assert r.status == -2  # python re-raises SIGINT on itself


def test_syntax_error_in_the_script_is_reported_as_python_does(tmp_path):
    program = tmp_path / "syntax_error.py"
    program.write_text('print("never")\ndef broken(:\n    pass\n')
    _same(resurrect("run", str(program)), python(str(program)))


@pytest.mark.parametrize("mode", ["-m", "-c"])
def test_tracebacks_of_modules_and_code_are_pythons(mode):
    target = "exits" if mode == "-m" else "import exits"
    r = resurrect("run", "--on-error", "raise", mode, target, "raise")
    p = python(mode, target, "raise")
    _same(r, p)
    assert "resurrect" not in r.stderr


def test_the_default_without_a_terminal_checkpoints_then_prints_pythons_traceback(tmp_path):
    shutil.copy(PROGRAMS / "exits.py", tmp_path / "exits.py")
    r = resurrect("run", "exits.py", "raise", cwd=tmp_path)
    p = python("exits.py", "raise", cwd=tmp_path)
    assert r.status == p.status == 1
    assert r.stdout == p.stdout
    # The traceback is python's, byte for byte; the way back follows it.
    assert r.stderr.startswith(p.stderr), r.stderr
    rest = r.stderr[len(p.stderr) :]
    assert rest.startswith("resume with: resurrect resume .resurrect/exits-"), rest
    assert rest.count("\n") == 1
    written = list((tmp_path / ".resurrect").glob("exits-*.ckpt"))
    assert len(written) == 1 and rest.strip().endswith(written[0].name)


def test_checkpoint_dir_option_is_where_checkpoints_go(tmp_path):
    shutil.copy(PROGRAMS / "exits.py", tmp_path / "exits.py")
    r = resurrect(
        "run",
        "--checkpoint-dir",
        "saved",
        "--on-error=checkpoint",
        "exits.py",
        "raise",
        cwd=tmp_path,
    )
    assert r.status == 1
    assert [p.parent.name for p in tmp_path.glob("*/*.ckpt")] == ["saved"]
    listed = resurrect("checkpoints", "saved", cwd=tmp_path)
    assert listed.status == 0
    assert "exits.py" in listed.stdout and "RuntimeError" in listed.stdout, listed.stdout


def test_the_console_script_entry_point_hides_its_frames_too():
    code = "import sys; from resurrect.cli import main; sys.argv[0] = 'resurrect'; sys.exit(main())"
    r = run(["-c", code, "run", "--on-error", "raise", "exits.py", "raise"])
    p = python("exits.py", "raise")
    _same(r, p)


def test_program_exit_hook_sees_the_programs_frames_only(tmp_path):
    prog = tmp_path / "hook.py"
    prog.write_text(
        "import sys, traceback\n"
        "def hook(t, v, tb):\n"
        "    print('hook:', [f.name for f in traceback.extract_tb(tb)])\n"
        "sys.excepthook = hook\n"
        "def f():\n"
        "    raise RuntimeError('x')\n"
        "f()\n"
    )
    _same(resurrect("run", "--on-error", "raise", str(prog)), python(str(prog)))


# -- usage errors of resurrect itself


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "a command is needed"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["run"], "nothing to run"),
        (["run", "--on-error"], "--on-error needs a value"),
        (["run", "--on-error", "explode", "x.py"], "--on-error must be one of"),
        (["run", "--bogus", "x.py"], "unknown option '--bogus'"),
        (["run", "-m"], "-m needs a value"),
        (["run", "nonexistent.py"], "can't open file"),
        (["run", "--checkpoint-dir"], "--checkpoint-dir needs a value"),
        (["run", "--checkpoint-on", "TREM", "x.py"], "--checkpoint-on: unknown signal 'TREM'"),
        (["run", "--checkpoint-on", "KILL", "x.py"], "SIGKILL cannot be caught"),
        (["run", "--checkpoint-on", "999", "x.py"], "unknown signal '999'"),
        (["run", "--checkpoint-every", "0", "x.py"], "--checkpoint-every needs a positive"),
        (["run", "--checkpoint-every=soon", "x.py"], "not 'soon'"),
        (["resume", "--frobnicate"], "unknown option '--frobnicate'"),
        (["resume", "--checkpoint-on", "KILL"], "--checkpoint-on: SIGKILL cannot be caught"),
        (["resume", "--checkpoint-every", "-1"], "--checkpoint-every needs a positive"),
        (["resume", "no-such-dir/"], "no-such-dir: no such checkpoint"),
        (["checkpoints", "no-such-dir"], "no checkpoint directory no-such-dir"),
    ],
)
def test_usage_errors_are_one_line_with_status_2(args, message):
    r = resurrect(*args)
    assert r.status == 2
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("resurrect: ")
    assert message in r.stderr


def test_help():
    r = resurrect("--help")
    assert r.status == 0 and "usage: resurrect run" in r.stdout
    r = resurrect("run", "--help")
    assert r.status == 0 and "--on-error" in r.stdout


def test_option_value_with_equals_sign():
    r = resurrect("run", "--on-error=raise", "exits.py", "normal")
    assert r.status == 0 and "normal end" in r.stdout


# -- which files get resume points


def test_modules_next_to_the_script_are_instrumented_the_stdlib_is_not():
    r = resurrect("run", "--on-error", "skip", "uses_helper.py")
    assert r.status == 0
    assert "converted [1, 3]" in r.stdout
    helper = marker("helpermod.py", "helper")
    stdlib = marker("uses_helper.py", "stdlib")
    # the helper's own statement is skipped; json's failure is skipped at the
    # script's statement that called it (json itself has no resume points)
    assert f"helpermod.py:{helper}: out.append(int(v))" in r.stderr
    assert f"uses_helper.py:{stdlib}: data = json.loads" in r.stderr
    assert "json/decoder.py" not in r.stderr
    assert "after json no data" in r.stdout


def test_instrument_globs_replace_the_default():
    r = resurrect(
        "run", "--on-error", "skip", "--instrument", "*/nothing-matches/*", "uses_helper.py"
    )
    # the helper has no resume points now: its failure reaches the script's statement
    assert "helpermod.py" not in r.stderr.split("resurrect: skipped 2")[0]
    assert f"uses_helper.py:{marker('uses_helper.py', 'stdlib')}" in r.stderr
    r = resurrect("run", "--on-error", "skip", "--instrument", "*/helpermod.py", "uses_helper.py")
    assert f"helpermod.py:{marker('helpermod.py', 'helper')}" in r.stderr


def test_skip_reports_each_statement_and_a_summary_at_exit():
    r = resurrect("run", "--on-error", "skip", "uses_helper.py")
    lines = r.stderr.splitlines()
    per_statement = [line for line in lines if line.startswith("resurrect: skipped /")]
    assert len(per_statement) == 2
    summary = lines.index("resurrect: skipped 2 failing statements:")
    assert summary == len(lines) - 3
    assert "ValueError: invalid literal for int() with base 10: 'x'" in lines[summary + 1]
    assert "JSONDecodeError" in lines[summary + 2]


def test_no_summary_when_nothing_was_skipped():
    r = resurrect("run", "--on-error", "skip", "exits.py", "normal")
    assert r.status == 0 and r.stderr == ""


def test_site_packages_under_the_program_directory_are_not_instrumented(tmp_path):
    site = tmp_path / "venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    (site / "libmod.py").write_text("def f():\n    return int('lib')\n")
    (tmp_path / "main.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(site)!r})\n"
        "import libmod\n"
        "x = libmod.f()\n"
        "print('end')\n"
    )
    r = resurrect("run", "--on-error", "skip", str(tmp_path / "main.py"))
    assert r.status == 0 and "end" in r.stdout
    assert "libmod.py" not in r.stderr
    assert "main.py:4: x = libmod.f()" in r.stderr


def test_python_dash_m_resurrect_and_environment_are_untouched():
    env = child_env(RESURRECT_TEST_VALUE="kept")
    r = resurrect("run", "-c", "import os; print(os.environ['RESURRECT_TEST_VALUE'])", env=env)
    assert r.stdout == "kept\n"
    assert sys.executable and os.path.exists(sys.executable)


@pytest.mark.parametrize("kind", ["directory", "zipapp"])
def test_a_directory_or_zip_application_runs_as_under_python(tmp_path, kind):
    app = tmp_path / "app"
    app.mkdir()
    (app / "__main__.py").write_text(
        "import sys\nprint('main of', __name__, sys.argv[1:], sys.path[0].endswith(('app', 'app.pyz')))\n"
    )
    target = app
    if kind == "zipapp":
        import zipapp

        target = tmp_path / "app.pyz"
        zipapp.create_archive(app, target, interpreter="/usr/bin/env python3")
    r = resurrect("run", str(target), "x", cwd=tmp_path)
    p = python(str(target), "x", cwd=tmp_path)
    _same(r, p)
    assert p.stdout == "main of __main__ ['x'] True\n"


def test_the_api_loads_on_first_use():
    """`import resurrect` (and `resurrect run` of a program that uses nothing
    of it) does not pay for the condition system, skipping, checkpoints or
    reload; every public name still resolves."""
    code = (
        "import sys, resurrect\n"
        "print(sorted(m for m in sys.modules if m.startswith('resurrect.')))\n"
        "from resurrect import *\n"
        "missing = [n for n in resurrect.__all__ if n not in globals()]\n"
        "print(missing, callable(resurrect.checkpoint), callable(resurrect.reload))\n"
    )
    r = python("-c", code)
    assert r.status == 0, r.stderr
    loaded, rest = r.stdout.splitlines()
    for lazy in ("conditions", "skip", "prompt", "checkpoint", "reload"):
        assert f"'resurrect.{lazy}'" not in loaded, loaded
    assert rest == "[] True True"
