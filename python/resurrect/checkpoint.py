"""Checkpoints: save a running program to a file, resume it in a new process.

Taking a checkpoint (each writes ``<script>-<UTC time>-<pid>.ckpt`` in the
checkpoint directory, default ``./.resurrect``):

* ``--on-error checkpoint``: the policy ``engine.policies["checkpoint"]`` saves
  the stack while the failing frame is alive, before anything unwinds; the
  exception then propagates (the normal traceback, exit status 1) and
  ``resume with: resurrect resume <path>`` follows the traceback;
* ``--checkpoint-on SIGNAL``: the signal arms a trace function that takes the
  checkpoint at the next statement start where the stack can be saved
  (:func:`.checkpoint_frames.walk_stack`); ``TERM`` then ends the process as
  ``SIGTERM`` would (after flushing the standard streams), other signals
  let it continue;
* ``--checkpoint-every SECONDS``: a timer thread does the same periodically
  (the two newest periodic checkpoints of a process are kept);
* ``checkpoint [PATH]`` at the prompt, and ``resurrect.checkpoint(path=None)``,
  which returns the path (and, in the program resumed from it, returns that
  path again instead of writing another: like ``fork``, both continue).

What is saved, the file format and how frames are rebuilt are described in
:mod:`.checkpoint_frames`, :mod:`.checkpoint_pickle`, :mod:`.checkpoint_format`
and :mod:`.checkpoint_source`. Entry points for the command line:
:func:`install`, :func:`resume_main`, :func:`list_main`.

This module is callable: ``resurrect.checkpoint(path)`` is :func:`checkpoint`.
"""

from __future__ import annotations

import _thread
import ast
import atexit
import dataclasses
import datetime as _dt
import os
import pickle
import signal
import sys
import threading
import time
import types
from typing import Any

from . import _core, engine
from . import checkpoint_format as _format
from .checkpoint_format import CheckpointError, RefusedCheckpoint
from .cli import parse_seconds, parse_signal

__all__ = [
    "CheckpointError",
    "RefusedCheckpoint",
    "checkpoint",
    "install",
    "list_main",
    "note_source",
    "resume_main",
]

DEFAULT_DIR = ".resurrect"
#: Periodic checkpoints of one process kept on disk (older ones are deleted).
KEEP_PERIODIC = 2


@dataclasses.dataclass
class Settings:
    directory: str = DEFAULT_DIR
    #: Signal numbers that take a checkpoint.
    signals: list[int] = dataclasses.field(default_factory=list)
    every: float | None = None


settings = Settings(directory=os.path.abspath(DEFAULT_DIR))


def note_source(path: str, text: str | bytes) -> None:
    """Tell checkpoints the text a file had when its code was compiled
    (``resurrect run`` calls this for the script)."""
    from . import checkpoint_source

    checkpoint_source.note_source(path, text)


# ---------------------------------------------------------------------------
# Taking a checkpoint


def _main_module() -> types.ModuleType:
    return sys.modules["__main__"]


def _program() -> dict[str, Any]:
    main = _main_module()
    spec = getattr(main, "__spec__", None)
    return {
        "main_file": os.path.abspath(getattr(main, "__file__", "") or ""),
        "module": spec.name if spec is not None and getattr(spec, "name", None) else None,
    }


def _instrumentation() -> dict[str, Any]:
    from . import instrument

    for finder in sys.meta_path:
        if isinstance(finder, instrument.InstrumentingFinder):
            selection = getattr(finder, "selection", None)
            if selection is not None:
                return {
                    "globs": list(selection.globs),
                    "default_dirs": list(selection.default_dirs),
                }
            return {"globs": list(finder.globs), "default_dirs": []}
    return {"globs": [], "default_dirs": []}


def _instrumented_modules() -> list[tuple[str, types.ModuleType]]:
    from . import instrument

    out = []
    for name, module in list(sys.modules.items()):
        if name == "__main__" or not isinstance(module, types.ModuleType):
            continue
        if isinstance(getattr(module, "__loader__", None), instrument._InstrumentingLoader):
            out.append((name, module))
    return out


_MODULE_SKIP = frozenset(
    (
        "__name__",
        "__file__",
        "__loader__",
        "__spec__",
        "__builtins__",
        "__cached__",
        "__package__",
        "__path__",
    )
)


def _module_state(module: types.ModuleType) -> dict[str, Any]:
    return {k: v for k, v in vars(module).items() if k not in _MODULE_SKIP}


def _default_path(kind: str) -> str:
    program = _program()
    stem = (
        program["module"]
        or os.path.splitext(os.path.basename(program["main_file"]))[0]
        or "program"
    )
    now = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    name = f"{stem}-{now}-{os.getpid()}{_format.SUFFIX}"
    return os.path.join(settings.directory, name)


def _display(path: str) -> str:
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") and len(rel) < len(path) else path


_periodic: list[str] = []


def save(
    frame: types.FrameType,
    rp: Any,
    handled: BaseException | None,
    reason: str,
    path: str | None = None,
    kind: str = "api",
) -> str:
    """Write a checkpoint of the stack from ``frame`` (stopped at resume point
    ``rp``; ``None`` when it is calling into resurrect) out to ``__main__``.
    Returns the path; raises :class:`CheckpointError` with the reason."""
    from . import checkpoint_frames as _frames_mod
    from . import checkpoint_pickle as _pickle_mod
    from . import checkpoint_source as _source

    if threading.current_thread() is not threading.main_thread():
        raise CheckpointError("only the main thread can be saved")
    live = _frames_mod.walk_stack(frame, rp)
    others = _frames_mod.other_threads()
    if others:
        raise _frames_mod.StackRefused(
            f"thread {', '.join(others)} is running; a checkpoint holds only the main thread"
        )
    index = _source.SourceIndex()
    states = _frames_mod.capture(live, handled, index)
    main = _main_module()
    modules = _instrumented_modules()
    root: dict[str, Any] = {
        "frames": states,
        "main": _module_state(main),
        "modules": {name: _module_state(m) for name, m in modules},
        "argv": list(sys.argv),
        "path": list(sys.path),
        "random": _random_state(),
    }
    try:
        stream, blobs, files = _pickle_mod.dump(root, index)
    except CheckpointError:
        raise
    except (
        _pickle_mod.Unsaveable,
        pickle.PicklingError,
        TypeError,
        AttributeError,
        ValueError,
        OSError,
    ) as e:
        items = list(_frames_mod.pickle_items(states))
        items += [(f"global `{k}` of __main__", k, v) for k, v in root["main"].items()]
        for name, state in root["modules"].items():
            items += [(f"global `{k}` of module {name}", k, v) for k, v in state.items()]
        where = _pickle_mod.locate(items, index)
        raise CheckpointError(where or f"the program's state cannot be saved: {e}") from None
    for _name, m in modules:
        f = getattr(m, "__file__", None)
        if f:
            index.tree(os.path.abspath(f))
    inner = states[-1]
    header = _format.base_header()
    header.update(
        {
            "kind": kind,
            "reason": reason,
            "argv": list(sys.argv),
            "path": [p for p in sys.path if isinstance(p, str)],
            "cwd": os.getcwd(),
            "executable": sys.executable,
            "program": _program(),
            "where": {
                "file": inner.code.file,
                "line": inner.rp_line,
                "function": inner.code.qualname if inner.code.path else "<module>",
                "statement": inner.text,
            },
            "frames": [
                [fs.code.file, fs.rp_line, fs.code.qualname if fs.code.path else "<module>"]
                for fs in states
            ],
            "sources": {p: t.sha256 for p, t in index.trees.items()},
            "source_texts": {p: t.text for p, t in index.trees.items()},
            "modules": [
                [name, os.path.abspath(m.__file__)]
                for name, m in modules
                if getattr(m, "__file__", None)
            ],
            "instrument": _instrumentation(),
            "settings": {
                "directory": os.path.abspath(settings.directory),
                "on": [signal.Signals(s).name for s in settings.signals],
                "every": settings.every,
            },
            "files": [f["path"] for f in files],
        }
    )
    target = os.path.abspath(path if path else _default_path(kind))
    _format.remove_stale_temporaries(os.path.dirname(target))
    _format.write(target, header, stream, blobs)
    if kind == "every":
        _periodic.append(target)
        while len(_periodic) > KEEP_PERIODIC:
            old = _periodic.pop(0)
            try:
                os.unlink(old)
            except OSError:
                pass
    return target


def _random_state() -> dict[str, Any]:
    out: dict[str, Any] = {}
    r = sys.modules.get("random")
    if r is not None:
        out["random"] = r.getstate()
    nr = sys.modules.get("numpy.random")
    if nr is not None:
        try:
            out["numpy"] = nr.get_state()
        except Exception:
            pass
    return out


def _restore_random(state: dict[str, Any]) -> None:
    if "random" in state:
        import random

        random.setstate(state["random"])
    if "numpy" in state:
        try:
            import numpy.random

            numpy.random.set_state(state["numpy"])
        except Exception:
            pass


# ---------------------------------------------------------------------------
# The API


def _caller() -> types.FrameType:
    f = sys._getframe(1)
    while f is not None and f.f_globals.get("__name__") == __name__:
        f = f.f_back
    assert f is not None
    return f


def checkpoint(path: str | None = None) -> str:
    """Write a checkpoint now; returns its path. Resuming continues the
    program in the statement that called this, where this returns the path
    of the checkpoint it was resumed from."""
    handled = sys.exc_info()[1]
    frame = _caller()
    return save(frame, None, handled, "resurrect.checkpoint()", path, kind="api")


class _CallableModule(types.ModuleType):
    """``resurrect.checkpoint(...)`` calls :func:`checkpoint` while
    ``resurrect.checkpoint.resume_main`` etc. stay reachable."""

    def __call__(self, path: str | None = None) -> str:
        return checkpoint(path)


sys.modules[__name__].__class__ = _CallableModule


# ---------------------------------------------------------------------------
# --on-error checkpoint


def _policy(failure: engine.Failure) -> engine.Decision:
    exc = failure.exception
    handled = sys.exc_info()[1]
    if failure.thread is not threading.main_thread():
        sys.stderr.write(
            f"resurrect: cannot checkpoint: the exception is in thread {failure.thread.name} "
            "(only the main thread is saved)\n"
        )
        return engine.Decision(engine.Action.PROPAGATE)
    try:
        path = save(
            failure.frame,
            failure.statement.rp,
            handled,
            f"{type(exc).__name__}: {exc}"[:300],
            kind="error",
        )
    except CheckpointError as e:
        sys.stderr.write(f"resurrect: cannot checkpoint: {e}\n")
        return engine.Decision(engine.Action.PROPAGATE)
    except Exception as e:  # never replace the program's exception with ours
        sys.stderr.write(f"resurrect: cannot checkpoint: internal error: {type(e).__name__}: {e}\n")
        return engine.Decision(engine.Action.PROPAGATE)
    _announce(path, exc)
    return engine.Decision(engine.Action.PROPAGATE)


engine.policies["checkpoint"] = _policy

_announcements: list[str] = []


def _announce(path: str, exc: BaseException) -> None:
    """Print ``resume with: ...`` after the traceback of ``exc`` (or at exit
    if the exception never reaches ``sys.excepthook``)."""
    line = f"resume with: resurrect resume {_display(path)}"
    _announcements.append(line)
    previous = sys.excepthook

    def hook(t, v, tb):
        sys.excepthook = previous
        previous(t, v, tb)
        if v is exc and line in _announcements:
            _announcements.remove(line)
            _write_err(line)

    sys.excepthook = hook
    if len(_announcements) == 1:
        atexit.register(_announce_at_exit)


def _write_err(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _announce_at_exit() -> None:
    while _announcements:
        _write_err(_announcements.pop(0))


# ---------------------------------------------------------------------------
# Signals and timers: a checkpoint at the next statement start


@dataclasses.dataclass
class _Request:
    reason: str
    kind: str
    exit_signal: int | None = None
    since: float = dataclasses.field(default_factory=time.monotonic)
    reported: bool = False


_requests: list[_Request] = []
_armed = False
_busy = False
_previous_trace: Any = None
#: Set while a resumed program's frames are being re-entered (no checkpoint then).
_reentry: Any = None
_failed_reasons: set[str] = set()


def _on_signal(signum: int, frame: types.FrameType | None) -> None:
    name = signal.Signals(signum).name
    _request(
        _Request(f"signal {name}", "signal", signum if signum == signal.SIGTERM else None), frame
    )


def _on_timer(signum: int, frame: types.FrameType | None) -> None:
    if not _busy and not any(r.kind == "every" for r in _requests):
        _request(_Request("periodic", "every"), frame)


def _request(req: _Request, frame: types.FrameType | None) -> None:
    _requests.append(req)
    if not _busy:
        _arm(frame)


def _arm(frame: types.FrameType | None) -> None:
    global _armed, _previous_trace
    if _armed:
        return
    _armed = True
    _previous_trace = sys.gettrace()
    sys.settrace(_global_trace)
    f = frame
    while f is not None:
        if _core.is_instrumented(f.f_code):
            f.f_trace = _local_trace
            f.f_trace_lines = True
        f = f.f_back


def _disarm() -> None:
    global _armed
    if not _armed:
        return
    _armed = False
    sys.settrace(_previous_trace)
    f: types.FrameType | None = sys._getframe(1)
    while f is not None:
        if f.f_trace is _local_trace:
            f.f_trace = None
        f = f.f_back


def _global_trace(frame, event, arg):
    if event == "call" and _core.is_instrumented(frame.f_code):
        return _local_trace
    return None


def _local_trace(frame, event, arg):
    if event == "line" and _armed:
        try:
            _attempt(frame)
        except Exception as e:  # an error here must not reach the program
            _requests.clear()
            _disarm()
            _write_err(f"resurrect: cannot checkpoint: internal error: {type(e).__name__}: {e}")
    return _local_trace if _armed else None


def _attempt(frame: types.FrameType) -> None:
    """At a line start: take the requested checkpoint if the stack can be saved here."""
    global _busy
    if _busy or (_reentry is not None and not _reentry.done.is_set()):
        return
    rp = _core.resume_point_at(frame.f_code, frame.f_lasti)
    if rp is None or rp.start != frame.f_lasti:
        return
    from . import checkpoint_frames as _frames_mod

    try:
        _frames_mod.walk_stack(frame, rp)
    except _frames_mod.StackRefused as e:
        _still_waiting(str(e))
        return  # not here: wait for the next statement start
    handled = sys.exc_info()[1]
    requests = list(_requests)
    _requests.clear()
    _disarm()
    _busy = True
    exit_signal = next((r.exit_signal for r in requests if r.exit_signal is not None), None)
    kind = "every" if all(r.kind == "every" for r in requests) else "signal"
    reason = "; ".join(dict.fromkeys(r.reason for r in requests))
    try:
        path = save(frame, rp, handled, reason, kind=kind)
    except Exception as e:
        what = (
            str(e) if isinstance(e, CheckpointError) else f"internal error: {type(e).__name__}: {e}"
        )
        message = f"resurrect: cannot checkpoint ({reason}): {what}"
        if exit_signal is not None or message not in _failed_reasons:
            _failed_reasons.add(message)
            _write_err(message)
        path = None
    finally:
        _busy = False
    late = [r for r in _requests if r.exit_signal is not None]
    if exit_signal is None and late:
        exit_signal = late[0].exit_signal
    if path is not None and (exit_signal is not None or kind == "signal"):
        _write_err(
            f"resurrect: checkpoint written ({reason}); resume with: resurrect resume {_display(path)}"
        )
    if exit_signal is not None:
        _terminate(exit_signal)
    if _requests:
        _arm(frame)


#: Report why a requested checkpoint is still not taken after this many seconds.
WAIT_REPORT = 2.0


def _still_waiting(reason: str) -> None:
    now = time.monotonic()
    pending = [r for r in _requests if not r.reported and now - r.since > WAIT_REPORT]
    if pending:
        for r in pending:
            r.reported = True
        _write_err(
            f"resurrect: waiting to checkpoint ({pending[0].reason}) at a statement where the stack can be saved: {reason}"
        )


def _terminate(signum: int) -> None:
    """End the process as the signal would have."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    time.sleep(1)
    os._exit(128 + signum)


_timer_signal: int | None = None
_timer_thread: threading.Thread | None = None


def _timer_loop(every: float, signum: int) -> None:
    while True:
        time.sleep(every)
        if not _busy:
            try:
                _thread.interrupt_main(signum)
            except Exception:
                return


def install(
    checkpoint_dir: str | None = None, on: list[str | int] | tuple = (), every: float | None = None
) -> None:
    """Enable checkpoints in this process before the program starts:
    ``--checkpoint-dir``, ``--checkpoint-on`` (signal names or numbers) and
    ``--checkpoint-every`` (seconds). ``--on-error checkpoint`` needs nothing
    more than importing this module."""
    global _timer_signal, _timer_thread
    if checkpoint_dir:
        settings.directory = os.path.abspath(checkpoint_dir)
    else:
        settings.directory = os.path.abspath(settings.directory)
    if on or every is not None:
        _register_exit_guard()
    for s in on:
        num = parse_signal(str(s))
        if num not in settings.signals:
            settings.signals.append(num)
        signal.signal(num, _on_signal)
    if every is not None:
        if every <= 0:
            raise ValueError("--checkpoint-every needs a positive number of seconds")
        settings.every = float(every)
        if _timer_thread is None:
            _timer_signal = _pick_timer_signal()
            signal.signal(_timer_signal, _on_timer)
            _timer_thread = threading.Thread(
                target=_timer_loop,
                args=(settings.every, _timer_signal),
                name="resurrect-every",
                daemon=True,
            )
            _timer_thread.start()


_exit_guard = False


def _register_exit_guard() -> None:
    global _exit_guard
    if not _exit_guard:
        _exit_guard = True
        atexit.register(_at_exit)


def _at_exit() -> None:
    """The program has ended: a checkpoint signal arriving while the
    interpreter shuts down must not kill it (its work is done, and being
    killed would tell a scheduler to resume it again)."""
    _disarm()
    for num in settings.signals:
        try:
            signal.signal(num, signal.SIG_IGN)
        except (OSError, ValueError):
            pass


def _pick_timer_signal() -> int:
    # A signal nothing sends: interrupt_main() only runs its Python handler.
    if hasattr(signal, "SIGRTMAX"):
        return signal.SIGRTMAX - 2
    return signal.SIGALRM


# ---------------------------------------------------------------------------
# resurrect resume


class _UsageError(Exception):
    pass


@dataclasses.dataclass
class ResumeOptions:
    path: str | None = None
    skip: bool = False
    on_error: str | None = None
    directory: str | None = None
    signals: list[str] = dataclasses.field(default_factory=list)
    every: float | None = None
    sigint: bool = True


RESUME_USAGE = """\
usage: resurrect resume [OPTIONS] [CHECKPOINT]

Continue a program from a checkpoint (a file, or the newest in a directory;
default: the newest in ./.resurrect), in the current version of its source.

options:
  --skip                continue after the stopped statement instead of retrying it
  --on-error pause|checkpoint|skip|raise
                        what an exception nothing would catch does from now on
  --checkpoint-dir DIR, --checkpoint-on SIGNAL, --checkpoint-every SECONDS
                        as for `run` (default: what the checkpointed run used)
  --no-sigint           Ctrl-C raises KeyboardInterrupt as usual
"""


def _parse_resume(args: list[str]) -> ResumeOptions | None:
    o = ResumeOptions()
    i = 0

    def value(option: str, inline: str | None) -> str:
        nonlocal i
        if inline is not None:
            return inline
        if i + 1 >= len(args):
            raise _UsageError(f"{option} needs a value")
        i += 1
        return args[i]

    while i < len(args):
        arg = args[i]
        if arg in ("-h", "--help"):
            return None
        if arg.startswith("--"):
            option, eq, inline = arg.partition("=")
            inline_value = inline if eq else None
            if option == "--skip" and not eq:
                o.skip = True
            elif option == "--no-sigint" and not eq:
                o.sigint = False
            elif option == "--on-error":
                o.on_error = value(option, inline_value)
                if o.on_error not in ("pause", "checkpoint", "skip", "raise"):
                    raise _UsageError(
                        f"--on-error must be one of pause, checkpoint, skip, raise, not {o.on_error!r}"
                    )
            elif option == "--checkpoint-dir":
                o.directory = value(option, inline_value)
            elif option == "--checkpoint-on":
                name = value(option, inline_value)
                try:
                    parse_signal(name)
                except ValueError as e:
                    raise _UsageError(f"--checkpoint-on: {e}") from None
                o.signals.append(name)
            elif option == "--checkpoint-every":
                try:
                    o.every = parse_seconds(value(option, inline_value))
                except ValueError as e:
                    raise _UsageError(str(e)) from None
            else:
                raise _UsageError(f"unknown option {arg!r} (see `resurrect resume --help`)")
        elif o.path is None:
            o.path = arg
        else:
            raise _UsageError(f"one checkpoint at a time (got {o.path!r} and {arg!r})")
        i += 1
    return o


def newest(directory: str) -> str | None:
    paths = _format.list_dir(directory)
    return paths[-1] if paths else None


def resume_main(argv: list[str]) -> int | None:
    """``resurrect resume [OPTIONS] [CHECKPOINT]``. Returns ``2`` (after one
    line on stderr) when the checkpoint is refused; otherwise the program runs
    in this process and its own exit status reaches the interpreter (as for
    ``run``)."""
    try:
        o = _parse_resume(argv)
    except _UsageError as e:
        _write_err(f"resurrect: {e}")
        return 2
    if o is None:
        sys.stdout.write(RESUME_USAGE)
        return 0
    target = o.path or o.directory or DEFAULT_DIR
    if o.path is None and not os.path.isdir(target):
        _write_err(f"resurrect: no checkpoint in {target} (no such directory)")
        return 2
    if os.path.isdir(target):
        found = newest(target)
        if found is None:
            _write_err(f"resurrect: no checkpoint in {target}")
            return 2
        target = found
    try:
        program = prepare(os.path.abspath(target), o)
    except CheckpointError as e:
        _write_err(f"resurrect: cannot resume: {e}")
        return 2
    program.run()
    return None


@dataclasses.dataclass
class Prepared:
    """A checkpoint loaded and rebuilt, ready to continue."""

    path: str
    header: dict[str, Any]
    main: types.ModuleType
    levels: list[Any]
    reentry: Any
    skip: bool = False

    def run(self) -> None:
        global _reentry
        from . import cli

        inner = self.levels[-1].state
        how = "after" if self.skip else "at"
        _write_err(f"resurrect: resuming {how} {inner.where} from {_display(self.path)}")
        _reentry = self.reentry
        self.reentry.start()
        try:
            with cli._CutTraceback():
                cli._exec(self.levels[0].continuation, self.main.__dict__)
        finally:
            self.reentry.abort()


def prepare(path: str, o: ResumeOptions) -> Prepared:
    """Check and load a checkpoint and build its frames' continuations; the
    process is then set up as the checkpointed one was (directory, argv,
    ``sys.path``, ``__main__``, instrumented imports, policies, signals)."""
    import importlib
    import importlib.machinery
    import importlib.util

    from . import checkpoint_frames as _frames_mod
    from . import checkpoint_pickle as _pickle_mod
    from . import checkpoint_source as _source
    from . import cli, instrument

    ck = _format.open_checkpoint(path)
    h = ck.header
    for source in h.get("sources", {}):
        if not os.path.exists(source):
            raise CheckpointError(f"the source file {source} is missing")
    for _name, source in h.get("modules", []):
        if not os.path.exists(source):
            raise CheckpointError(f"the source file {source} is missing")
    stream, parts = ck.read_body()
    kinds = [k for k, _ in ck.blob_sizes]

    cwd = h.get("cwd")
    try:
        os.chdir(cwd)
    except OSError:
        raise CheckpointError(f"the program's directory {cwd} is missing") from None

    program = h["program"]
    main_file = program["main_file"]
    if not main_file or not os.path.isfile(main_file):
        raise CheckpointError(f"the source file {main_file or '(none)'} is missing")

    # Where imports come from, and which get resume points: as in `run`.
    inst = h.get("instrument", {})
    selection = cli.Selection(
        list(inst.get("globs", [])),
        list(inst.get("default_dirs", [])) or [os.path.dirname(main_file)],
    )
    if not any(isinstance(f, instrument.InstrumentingFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, cli._Finder(selection))
    on_error = o.on_error or cli._default_on_error()
    cli._set_policy(on_error)
    if on_error == "skip":
        atexit.register(cli._skip_summary)
    if o.sigint:
        from . import prompt

        prompt.install_sigint()
    saved = h.get("settings", {})
    install(
        o.directory or saved.get("directory"),
        o.signals or saved.get("on", []),
        o.every if o.every is not None else saved.get("every"),
    )

    main = cli._fresh_main()
    main.__file__ = main_file
    main.__cached__ = None
    if program.get("module"):
        spec = importlib.util.find_spec(program["module"])
        main.__spec__ = spec
        main.__loader__ = spec.loader if spec else None
        main.__package__ = program["module"].rpartition(".")[0]
    else:
        main.__loader__ = importlib.machinery.SourceFileLoader("__main__", main_file)

    # What the program's imports see: its argv and sys.path (the rest of the
    # state comes with the body).
    sys.argv[:] = list(h.get("argv", sys.argv))
    saved_path = list(h.get("path", []))
    sys.path[:] = saved_path + [p for p in sys.path if p not in saved_path]
    resolver = _source.Resolver(dict(h.get("source_texts", {})))
    try:
        for name, source in h.get("modules", []):
            module = importlib.import_module(name)
            if os.path.abspath(getattr(module, "__file__", "") or "") != source:
                raise CheckpointError(
                    f"module {name} now comes from {module.__file__}, not {source}"
                )
        root = _pickle_mod.load(stream, parts, kinds, resolver)
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(
            f"the program's state cannot be loaded: {type(e).__name__}: {e}"
        ) from None
    sys.argv[:] = root["argv"]
    sys.path[:] = root["path"] + [p for p in sys.path if p not in root["path"]]
    main.__dict__.update(root["main"])
    for name, state in root["modules"].items():
        sys.modules[name].__dict__.update(state)
    _restore_random(root.get("random", {}))

    states = root["frames"]
    main_code = resolver.new_tree(main_file).code
    levels = _frames_mod.build(states, main_code, resolver, o.skip, returns=path)
    new, notes = _frames_mod.new_definitions(resolver, main_file, levels[0].rp.line or 0)
    for node in new:
        code = compile(
            ast.Module(body=[node], type_ignores=[]), main_file, "exec", dont_inherit=True
        )
        try:
            exec(_core.instrument(code), main.__dict__)
        except Exception as e:
            raise CheckpointError(
                f"the new definition at line {node.lineno} of {main_file} failed: {e}"
            ) from None
    for note in notes + resolver.notes:
        _write_err(f"resurrect: {note}")
    _fix_code_cache()
    return Prepared(path, h, main, levels, _frames_mod.Reentry(levels), o.skip)


def _fix_code_cache() -> None:
    """The engine caches resume points in a dict keyed by code objects; a
    continuation holds restored values (lists, dicts) among its constants and
    cannot be hashed. Until the engine keys that cache by identity, give it a
    mapping that does."""
    cache = engine._rp_cache
    if isinstance(cache, _IdentityCache):
        return
    engine._rp_cache = _IdentityCache(cache)


class _IdentityCache(dict):
    """A dict of code objects keyed by identity (keeps its keys alive)."""

    def __init__(self, items=()):
        super().__init__()
        for k, v in dict(items).items():
            self[k] = v

    def get(self, code, default=None):
        entry = super().get(id(code))
        return entry[1] if entry is not None and entry[0] is code else default

    def __getitem__(self, code):
        entry = super().get(id(code))
        if entry is None or entry[0] is not code:
            raise KeyError(code)
        return entry[1]

    def __setitem__(self, code, value):
        super().__setitem__(id(code), (code, value))

    def __contains__(self, code):
        entry = super().get(id(code))
        return entry is not None and entry[0] is code


# ---------------------------------------------------------------------------
# resurrect checkpoints


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def list_main(argv: list[str]) -> int:
    """``resurrect checkpoints [DIR]``: one line per checkpoint, oldest first:
    time (UTC), script, where it stopped, why, size, file. Damaged files
    are listed with what is wrong (without reading their content)."""
    if len(argv) > 1 or (argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        _write_err("resurrect: usage: resurrect checkpoints [DIR]")
        return 2
    if argv and argv[0] in ("-h", "--help"):
        sys.stdout.write(
            "usage: resurrect checkpoints [DIR]\n\nList the checkpoints in DIR (default ./.resurrect).\n"
        )
        return 0
    directory = argv[0] if argv else DEFAULT_DIR
    if not os.path.isdir(directory):
        _write_err(f"resurrect: no checkpoint directory {directory}")
        return 2
    rows = []
    for path in _format.list_dir(directory):
        shown = _display(path)
        try:
            h, size, _, _ = _format.read_header(path)
        except RefusedCheckpoint as e:
            rows.append(("?", "?", "?", str(e).removeprefix(path + ": "), "", shown))
            continue
        when = str(h.get("created", "?"))[:19].replace("T", " ")
        prog = h.get("program", {})
        script = prog.get("module") or os.path.basename(prog.get("main_file", "") or "?")
        w = h.get("where", {})
        where = f"{os.path.basename(w.get('file', '?'))}:{w.get('line', '?')} in {w.get('function', '?')}"
        reason = str(h.get("reason", ""))
        if h.get("python") != _format.python_version():
            reason += f" [Python {h.get('python')}]"
        rows.append((when, script, where, reason, _size(size), shown))
    if not rows:
        sys.stdout.write(f"no checkpoints in {directory}\n")
        return 0
    titles = ("TIME (UTC)", "SCRIPT", "STOPPED AT", "REASON", "SIZE", "FILE")
    widths = [max(len(str(r[i])) for r in [titles, *rows]) for i in range(len(titles))]
    widths[3] = min(widths[3], 40)
    for r in [titles, *rows]:
        cells = [str(c)[: widths[i]].ljust(widths[i]) for i, c in enumerate(r)]
        sys.stdout.write("  ".join(cells).rstrip() + "\n")
    return 0


# ---------------------------------------------------------------------------
# The prompt's `checkpoint [PATH]`


def _prompt_checkpoint(prompt: Any, arg: str) -> None:
    pause = prompt.pause
    failure = getattr(pause, "failure", None)
    try:
        if failure is not None:
            path = save(
                failure.frame,
                failure.statement.rp,
                sys.exc_info()[1],
                "checkpoint at the prompt",
                arg.strip() or None,
                kind="prompt",
            )
        else:
            frame = pause.frame
            rp = _core.resume_point_at(frame.f_code, frame.f_lasti)
            if rp is None:
                raise CheckpointError("the paused line has no resume point")
            path = save(
                frame,
                rp,
                sys.exc_info()[1],
                "checkpoint at the prompt",
                arg.strip() or None,
                kind="prompt",
            )
    except CheckpointError as e:
        prompt.error(f"cannot checkpoint: {e}")
        return
    prompt.message(f"checkpoint written; resume with: resurrect resume {_display(path)}")


def _register_prompt() -> None:
    try:
        from . import prompt
    except Exception:
        return
    prompt.extensions.setdefault("checkpoint", _prompt_checkpoint)


_register_prompt()
