"""``resurrect run``: run a program the way ``python`` would, with resume points.

The program sees what plain ``python`` gives it: ``sys.argv``, a fresh
``__main__`` module, ``sys.path[0]``, its own standard streams, and the same exit
status and traceback text (resurrect's own frames are cut from the traceback
of an exception nothing handled). Its ``__main__`` code and the modules under
its directory (or the ``--instrument`` globs) get resume points; an exception
nothing would catch then follows ``--on-error``.
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib.machinery
import os
import site
import sys
import sysconfig
import types

from . import engine, instrument

USAGE = """\
usage: resurrect run [OPTIONS] SCRIPT [ARGS...]
       resurrect run [OPTIONS] -m MODULE [ARGS...]
       resurrect run [OPTIONS] -c CODE [ARGS...]
       resurrect resume [OPTIONS] [CHECKPOINT]
       resurrect checkpoints [DIR]

Run a Python program; an exception nothing would catch pauses it before the
stack unwinds (or skips the statement, or raises as python would).

options of `run`:
  --on-error pause|checkpoint|skip|raise
                        what an exception nothing would catch does (default:
                        pause when stdin and stderr are terminals, else checkpoint)
  --instrument GLOB     source files that get resume points (repeatable; default:
                        files under the script's directory, or the current
                        directory for -m/-c; never the stdlib or site-packages
                        unless named)
  --no-sigint           Ctrl-C raises KeyboardInterrupt as usual instead of pausing
  --watch               reload edited source files while the program runs
  --checkpoint-dir DIR  where checkpoints are written (default ./.resurrect)
  --checkpoint-on SIGNAL
                        take a checkpoint at the next statement when SIGNAL
                        arrives (repeatable; TERM then exits, others continue)
  --checkpoint-every SECONDS
                        take a checkpoint every SECONDS (the two newest are kept)

`resurrect resume --help` and `resurrect checkpoints --help` describe the others.
"""

_ON_ERROR = ("pause", "checkpoint", "skip", "raise")


class UsageError(Exception):
    """A mistake in resurrect's own command line: one line, exit status 2."""


@dataclasses.dataclass
class RunOptions:
    #: "script", "module" or "code"
    kind: str
    #: The script's path, the module's name or the code.
    target: str
    args: list[str]
    on_error: str | None = None
    instrument: list[str] = dataclasses.field(default_factory=list)
    sigint: bool = True
    #: Reload edited source files while the program runs.
    watch: bool = False
    checkpoint_dir: str | None = None
    #: Signal numbers that take a checkpoint.
    checkpoint_on: list[int] = dataclasses.field(default_factory=list)
    checkpoint_every: float | None = None

    @property
    def checkpoints(self) -> bool:
        """Whether checkpoints must be set up before the program starts."""
        return bool(self.checkpoint_dir or self.checkpoint_on or self.checkpoint_every)


def main(argv: list[str] | None = None) -> int | None:
    """The ``resurrect`` command. Returns the exit status for resurrect's own
    outcomes; the program's own exit status reaches the interpreter as
    ``SystemExit`` or an uncaught exception, exactly as under ``python``."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        return _main(args)
    except UsageError as e:
        sys.stderr.write(f"resurrect: {e}\n")
        return 2


def _main(args: list[str]) -> int | None:
    if not args:
        raise UsageError("a command is needed: run, resume or checkpoints (see `resurrect --help`)")
    command, rest = args[0], args[1:]
    if command in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    if command == "--version":
        from importlib import metadata

        try:
            version = metadata.version("resurrect")
        except metadata.PackageNotFoundError:
            version = "unknown"
        sys.stdout.write(f"resurrect {version}\n")
        return 0
    if command == "run":
        options = parse_run(rest)
        if options is None:
            sys.stdout.write(USAGE)
            return 0
        return run(options)
    if command == "resume":
        from . import checkpoint

        return checkpoint.resume_main(rest)
    if command == "checkpoints":
        from . import checkpoint

        return checkpoint.list_main(rest)
    raise UsageError(f"unknown command {command!r}: expected run, resume or checkpoints")


def parse_run(args: list[str]) -> RunOptions | None:
    """The options of ``run``; ``None`` for ``--help``. Everything after the
    program (SCRIPT, ``-m MODULE`` or ``-c CODE``) belongs to the program."""
    o = RunOptions("script", "", [])
    i = 0

    def value(option: str, inline: str | None) -> str:
        nonlocal i
        if inline is not None:
            return inline
        if i + 1 >= len(args):
            raise UsageError(f"{option} needs a value")
        i += 1
        return args[i]

    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg in ("-h", "--help"):
            return None
        if arg.startswith("-m") or arg.startswith("-c"):
            o.kind = "module" if arg[1] == "m" else "code"
            o.target = arg[2:] if len(arg) > 2 else value(arg, None)
            o.args = args[i + 1 :]
            return o
        if not arg.startswith("-") or arg == "-":
            break
        option, eq, inline = arg.partition("=")
        inline_value = inline if eq else None
        if option == "--on-error":
            o.on_error = value(option, inline_value)
            if o.on_error not in _ON_ERROR:
                raise UsageError(
                    f"--on-error must be one of {', '.join(_ON_ERROR)}, not {o.on_error!r}"
                )
        elif option == "--instrument":
            o.instrument.append(value(option, inline_value))
        elif option == "--no-sigint" and not eq:
            o.sigint = False
        elif option == "--watch" and not eq:
            o.watch = True
        elif option == "--checkpoint-dir":
            o.checkpoint_dir = value(option, inline_value)
            if not o.checkpoint_dir:
                raise UsageError("--checkpoint-dir needs a directory")
        elif option == "--checkpoint-on":
            try:
                o.checkpoint_on.append(parse_signal(value(option, inline_value)))
            except ValueError as e:
                raise UsageError(f"--checkpoint-on: {e}") from None
        elif option == "--checkpoint-every":
            try:
                o.checkpoint_every = parse_seconds(value(option, inline_value))
            except ValueError as e:
                raise UsageError(str(e)) from None
        else:
            raise UsageError(f"unknown option {arg!r} (see `resurrect run --help`)")
        i += 1
    if i >= len(args):
        raise UsageError("nothing to run: give SCRIPT, -m MODULE or -c CODE")
    if args[i] == "-":
        raise UsageError("running a program from standard input is not supported")
    o.target, o.args = args[i], args[i + 1 :]
    return o


def parse_signal(name: str) -> int:
    """``TERM``, ``SIGTERM`` or ``15`` -> the number of a signal that can take
    a checkpoint (``--checkpoint-on``, for ``run`` and ``resume``); a
    ``ValueError`` says why not."""
    import signal

    text = name.strip().upper()
    try:
        if text.isdigit():
            num = int(signal.Signals(int(text)))
        else:
            num = int(getattr(signal.Signals, text if text.startswith("SIG") else "SIG" + text))
    except (ValueError, AttributeError):
        raise ValueError(f"unknown signal {name!r}") from None
    if num in (signal.SIGKILL, signal.SIGSTOP):
        raise ValueError(f"{signal.Signals(num).name} cannot be caught")
    if num == signal.SIGINT:
        raise ValueError("INT is Ctrl-C, which pauses (use `checkpoint` at the prompt)")
    return num


def parse_seconds(text: str) -> float:
    """``--checkpoint-every``'s value; a ``ValueError`` says why not."""
    import math

    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"--checkpoint-every needs a positive number of seconds, not {text!r}")
    return seconds


# ---------------------------------------------------------------------------
# Which files get resume points


def _library_roots() -> list[str]:
    """Directories of the standard library and installed packages."""
    roots: set[str] = set()
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            roots.add(paths[key])
    try:
        roots.update(site.getsitepackages())
    except AttributeError:
        pass
    user_site = getattr(site, "USER_SITE", None)
    if user_site:
        roots.add(user_site)
    roots.add(os.path.dirname(os.path.abspath(__file__)))  # resurrect itself
    return sorted({os.path.normcase(os.path.realpath(r)) for r in roots})


class Selection:
    """Which source files get resume points: those matching the ``--instrument``
    globs, or by default those under the program's directory that are not part
    of the standard library or of installed packages. resurrect's own files
    never do."""

    def __init__(self, globs: list[str], default_dirs: list[str]):
        self.globs = globs
        self.default_dirs = [d for d in default_dirs if d]
        self.library = _library_roots()
        self.own = os.path.normcase(os.path.dirname(os.path.realpath(__file__)))

    def __call__(self, path: str | None) -> bool:
        if not path or not path.endswith(".py"):
            return False
        real = os.path.normcase(os.path.realpath(path))
        if _under(real, self.own):
            return False
        if self.globs:
            return instrument.matches(path, self.globs) or instrument.matches(real, self.globs)
        if any(_under(real, root) for root in self.library):
            return False
        parts = real.split(os.sep)
        if "site-packages" in parts or "dist-packages" in parts:
            return False
        return any(_under(real, d) for d in self.default_dirs)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class _Finder(instrument.InstrumentingFinder):
    """Loads the modules a :class:`Selection` picks with resume points."""

    def __init__(self, selection: Selection):
        super().__init__(selection.globs)
        self.selection = selection

    def find_spec(self, fullname, path, target=None):
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return None
        if not self.selection(spec.origin):
            return None
        spec.loader = instrument._InstrumentingLoader(spec.loader.name, spec.loader.path)
        return spec


# ---------------------------------------------------------------------------
# Running the program


def run(options: RunOptions) -> int | None:
    """Run the program described by ``options`` in this process."""
    # Import what the program may need from us before sys.path[0] changes.
    from . import prompt

    if options.kind == "script":
        script = options.target
        if not os.path.exists(script):
            raise UsageError(
                f"can't open file {os.path.abspath(script)!r}: [Errno 2] No such file or directory"
            )
        program_dir = os.path.dirname(os.path.realpath(script))
        default_dirs = [program_dir, os.path.dirname(os.path.abspath(script))]
    else:
        program_dir = os.getcwd()
        default_dirs = [program_dir]

    on_error = options.on_error or _default_on_error()
    _set_policy(on_error)
    if options.checkpoints:
        from . import checkpoint

        checkpoint.install(options.checkpoint_dir, options.checkpoint_on, options.checkpoint_every)
    selection = Selection(options.instrument, default_dirs)
    finder = _Finder(selection)
    sys.meta_path.insert(0, finder)
    for module in list(sys.modules.values()):
        if isinstance(module, types.ModuleType) and selection(getattr(module, "__file__", None)):
            instrument.instrument_module(module)
    # Edit and continue: the prompt's `reload` and `edit` load it on first
    # use (see prompt._providers); `--watch` needs it now.
    if options.watch:
        from . import reload as reload_

        reload_.install()
        reload_.watch()
    if options.sigint:
        prompt.install_sigint()
    if on_error == "skip":
        atexit.register(_skip_summary)

    if options.kind == "script":
        _run_script(options.target, options.args)
    elif options.kind == "module":
        _run_module(options.target, options.args)
    else:
        _run_code(options.target, options.args)
    return None


def _default_on_error() -> str:
    try:
        terminal = os.isatty(0) and os.isatty(2)
    except OSError:
        terminal = False
    return "pause" if terminal else "checkpoint"


def _set_policy(on_error: str) -> None:
    engine.config.on_error = on_error
    if on_error == "checkpoint" and "checkpoint" not in engine.policies:
        engine.policies["checkpoint"] = _checkpoint_policy


def _checkpoint_policy(failure: engine.Failure) -> engine.Decision:
    """``--on-error checkpoint``: the checkpoint machinery is imported when
    the first failure needs it (importing it registers the real policy), so
    a program that never fails does not pay for it at start-up."""
    from . import checkpoint

    return checkpoint._policy(failure)


def _skip_summary() -> None:
    skipped = engine.skipped
    if not skipped:
        return
    n = len(skipped)
    lines = [f"resurrect: skipped {n} failing statement{'s' if n != 1 else ''}:"]
    for filename, line, text, exc in skipped:
        lines.append(f"  {filename}:{line}: {text}: {type(exc).__name__}: {exc}")
    try:
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _fresh_main() -> types.ModuleType:
    """A ``__main__`` module with the attributes plain ``python`` starts with."""
    import builtins

    main = types.ModuleType("__main__")
    main.__annotations__ = {}
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    return main


def _set_path0(entry: str) -> None:
    if sys.flags.safe_path:
        return
    if sys.path:
        sys.path[0] = entry
    else:
        sys.path.insert(0, entry)


def _is_zip(path: str) -> bool:
    """``zipfile.is_zipfile``, without importing ``zipfile`` (start-up time)
    unless the end of the file has a zip directory's signature."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            # The end-of-directory record is 22 bytes plus a comment of at most 64 KiB.
            f.seek(max(0, size - 22 - 0xFFFF))
            if b"PK\x05\x06" not in f.read():
                return False
    except OSError:
        return False
    import zipfile

    return zipfile.is_zipfile(path)


def _run_script(script: str, args: list[str]) -> None:
    sys.argv[:] = [script, *args]
    real_dir = os.path.dirname(os.path.realpath(script))
    if os.path.isdir(script) or _is_zip(script):
        # `python DIR` / `python ARCHIVE.zip`: their __main__ module.
        _set_path0(script)
        _fresh_main()
        with _CutTraceback():
            _exec_module("__main__", alter_argv=False)
        return
    path = os.path.abspath(script)
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        raise UsageError(f"can't open file {path!r}: [Errno {e.errno}] {e.strerror}") from None
    # What a later reload compares the edited file with.
    reload_ = sys.modules.get("resurrect.reload")
    if reload_ is not None:
        reload_.remember(path, source)
    else:
        instrument.loaded_sources[path] = source
    _set_path0(real_dir)
    main = _fresh_main()
    main.__file__ = path
    main.__cached__ = None
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    with _CutTraceback():
        code = _compile(source, path)
        _exec(code, main.__dict__)


def _run_code(source: str, args: list[str]) -> None:
    from . import prompt

    sys.argv[:] = ["-c", *args]
    _set_path0("")
    main = _fresh_main()
    main.__loader__ = importlib.machinery.BuiltinImporter
    if sys.version_info >= (3, 13):
        # 3.13 shows `-c` code in tracebacks: it registers it in linecache.
        import linecache

        linecache.cache["<string>"] = (
            len(source),
            None,
            [line + "\n" for line in source.splitlines()],
            "<string>",
        )
    else:
        prompt.register_source("<string>", source)
    with _CutTraceback():
        code = _compile(source, "<string>")
        _exec(code, main.__dict__)


def _run_module(name: str, args: list[str]) -> None:
    sys.argv[:] = ["-m", *args]
    _set_path0(os.getcwd())
    _fresh_main()
    with _CutTraceback():
        _exec_module(name, alter_argv=True)


def _compile(source: str | bytes, filename: str) -> types.CodeType:
    code = compile(source, filename, "exec", dont_inherit=True)
    return instrument.instrument_code(code)


def _exec(code: types.CodeType, namespace: dict) -> None:
    # Tracebacks of the program start below this frame (see _CutTraceback).
    exec(code, namespace)


def _exec_module(name: str, alter_argv: bool) -> None:
    # As `python -m`: runpy finds the module (through our finder, so it gets
    # resume points when selected) and runs it in the fresh __main__.
    import runpy

    runpy._run_module_as_main(name, alter_argv)  # type: ignore[attr-defined]


_CUT_AT = (_exec.__code__, _exec_module.__code__)


class _CutTraceback:
    """When an exception leaves the program, make the interpreter's report of
    it (``sys.excepthook``, whatever the program set it to) start at the
    program's first frame, as under plain ``python``. Not an ``except``: the
    engine must not count it as a handler of the program's exceptions."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ, value, tb) -> bool:
        if value is None or isinstance(value, SystemExit):
            return False
        program_hook = sys.excepthook

        def excepthook(t, v, traceback_) -> None:
            sys.excepthook = program_hook
            try:
                cut = _cut(traceback_)
            except Exception:
                cut = traceback_  # never lose the report over our cosmetics
            if isinstance(v, BaseException):
                v.__traceback__ = cut
            program_hook(t, v, cut)

        sys.excepthook = excepthook
        return False


def _cut(tb: types.TracebackType | None) -> types.TracebackType | None:
    """``tb`` from below the last frame of ours that ran the program (nothing
    of it when the program never ran: a syntax error in its source), without
    the prompt's frames (``raise`` after Ctrl-C raises from the handler)."""
    last = None
    t = tb
    while t is not None:
        if t.tb_frame.f_code in _CUT_AT:
            last = t
        t = t.tb_next
    if last is None:
        return None
    entries: list[types.TracebackType] = []
    t = last.tb_next
    while t is not None:
        entries.append(t)
        t = t.tb_next
    # The prompt's frames (`raise` after Ctrl-C) and the entry functions that
    # link the frames rebuilt by `resume` are resurrect's, not the program's.
    ours = ("resurrect.prompt", "resurrect._entry")
    kept = [e for e in entries if e.tb_frame.f_globals.get("__name__") not in ours]
    if len(kept) == len(entries):
        return last.tb_next
    cut: types.TracebackType | None = None
    for entry in reversed(kept):
        cut = types.TracebackType(cut, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return cut
