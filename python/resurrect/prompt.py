"""The interactive prompt: the debugger of the condition system.

It opens when an exception nothing would catch reaches a resume point
(``--on-error pause``: :func:`policy`, registered as ``engine.policies["pause"]``),
on Ctrl-C (:func:`install_sigint`), on :func:`pause`, and while stepping after
one of those (a :class:`bdb.Bdb` whose stops open the prompt again).

Shaped like ``pdb``: :class:`Prompt` is a :class:`cmd.Cmd` whose ``do_name``
methods carry their usage line as the first line of their docstring; every
line of output goes through :meth:`Prompt.message` / :meth:`Prompt.error` to
the :class:`Console` -- the terminal (``/dev/tty``) when there is one, so the
program's own stdout and stderr stay clean when redirected.

One prompt is open at a time in the whole process; a thread that fails while
another thread's prompt is open waits (paused, its frame alive) for its turn.
"""

from __future__ import annotations

import _thread
import builtins
import cmd
import contextlib
import dataclasses
import linecache
import os
import signal
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

from . import _core, _frames, engine
from .engine import Action, Decision

__all__ = ["Console", "Prompt", "install_sigint", "pause", "policy", "register_source"]

# ---------------------------------------------------------------------------
# Process-wide state

#: Held while a prompt is open: one prompt at a time.
_lock = threading.Lock()
#: The thread whose prompt is open, if any.
_owner: threading.Thread | None = None
#: Threads paused on an exception, waiting for the open prompt to close.
_waiting: list[threading.Thread] = []
#: Set when `quit` was chosen in another thread: the main thread's SIGINT
#: handler then ends the program.
_quit_requested = False

#: Commands provided by other parts of resurrect (``reload``, ``edit``,
#: ``checkpoint``): ``extensions[name](prompt, arg)``. Each registers when
#: its module is imported; :data:`_providers` imports it on first use.
extensions: dict[str, Callable[[Prompt, str], Any]] = {}
_providers = {"checkpoint": "checkpoint", "reload": "reload", "edit": "reload"}

#: Source text of code that has no file (``-c``), by its ``co_filename``.
_sources: dict[str, list[str]] = {}


def register_source(filename: str, source: str) -> None:
    """Make ``source`` the text the prompt shows for code compiled as ``filename``
    (for code with no file, such as ``resurrect run -c``), without putting it in
    :mod:`linecache` (which would change the program's tracebacks)."""
    _sources[filename] = source.splitlines(keepends=True)


def _lines_of(frame: types.FrameType) -> list[str]:
    filename = frame.f_code.co_filename
    if filename in _sources:
        return _sources[filename]
    reload_ = sys.modules.get("resurrect.reload")
    if reload_ is not None:
        # A frame still running code from before a reload: the text it ran from.
        lines = reload_.source_lines(frame.f_code)
        if lines is not None:
            return lines
    return linecache.getlines(filename, frame.f_globals)


def _here() -> bool:
    """Whether the current thread is the one at the prompt (a command evaluated
    at the prompt is running)."""
    return _owner is threading.current_thread()


# ---------------------------------------------------------------------------
# The terminal


class Console:
    """Where the prompt talks: ``/dev/tty`` when the process has a controlling
    terminal, else standard error (output) and standard input (commands).
    Colour follows ``NO_COLOR``, ``TERM=dumb`` and whether the output is a
    terminal."""

    _instance: Console | None = None
    _instance_lock = threading.RLock()

    @classmethod
    def get(cls) -> Console:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def __init__(self) -> None:
        import io
        import locale

        self.fd: int | None = None
        try:
            self.fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            self.fd = None
        if self.fd is not None:
            encoding = locale.getpreferredencoding(False) or "utf-8"
            raw_out = io.FileIO(self.fd, "w", closefd=False)
            self.out: Any = io.TextIOWrapper(
                raw_out, encoding, errors="backslashreplace", write_through=True
            )
            self.inp: Any = None  # read unbuffered from self.fd
            self.terminal = True
        else:
            self.out = sys.__stderr__ or sys.stderr
            self.inp = sys.__stdin__
            self.terminal = False
        self.color = (
            _isatty(self.out)
            and not os.environ.get("NO_COLOR")
            and os.environ.get("TERM") != "dumb"
        )
        self._editor: Callable[[str], str | None] | bool | None = None
        self._write_lock = threading.RLock()  # re-entrant: a signal handler may write

    # -- output

    def write(self, text: str) -> None:
        with self._write_lock:
            try:
                self.out.write(text)
                self.out.flush()
            except (OSError, ValueError):
                pass

    def width(self) -> int:
        try:
            if self.fd is not None:
                return max(40, os.get_terminal_size(self.fd).columns)
            return max(40, os.get_terminal_size(self.out.fileno()).columns)
        except (OSError, ValueError, AttributeError):
            return 100

    def style(self, text: str, code: str) -> str:
        if not self.color or not text:
            return text
        return f"{code}{text}\x1b[0m"

    # -- input

    def read(self, prompt: str) -> str | None:
        """One line typed by the user (without its line end), or ``None`` at
        end of input. Line editing, history and completion through GNU
        readline when the prompt talks on a terminal. ``KeyboardInterrupt``
        propagates (Ctrl-C while reading)."""
        if self.terminal:
            editor = self._line_editor()
            if editor is not None:
                try:
                    return editor(prompt)
                except RuntimeError:
                    pass  # "can't re-enter readline": the program is inside input()
        self.write(prompt)
        try:
            if self.fd is not None:
                with self._cooked():
                    line = self._read_tty_line()
            elif self.inp is not None:
                line = self.inp.readline()
            else:
                return None
        except (OSError, ValueError):
            return None
        if not line:
            return None
        return line.rstrip("\r\n")

    def _read_tty_line(self) -> str:
        """One line from the terminal, unbuffered: what the user types after
        it is left for the program."""
        assert self.fd is not None
        data = bytearray()
        while not data.endswith(b"\n"):
            chunk = os.read(self.fd, 1)
            if not chunk:
                break
            data += chunk
        return data.decode(getattr(self.out, "encoding", "utf-8"), "replace")

    def _line_editor(self) -> Callable[[str], str | None] | None:
        """``PyOS_Readline`` on the terminal's file descriptor: what ``input()``
        uses, but on ``/dev/tty`` instead of the program's stdin/stdout."""
        if self._editor is None:
            self._editor = False
            try:
                import ctypes
                import readline  # noqa: F401  (installs GNU readline as PyOS_Readline's editor)

                libc = ctypes.CDLL(None)
                fdopen = libc.fdopen
                fdopen.restype = ctypes.c_void_p
                fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
                assert self.fd is not None
                fin = fdopen(os.dup(self.fd), b"r")
                fout = fdopen(os.dup(self.fd), b"w")
                if not fin or not fout:
                    raise OSError("fdopen failed")
                pyos_readline = ctypes.pythonapi.PyOS_Readline
                pyos_readline.restype = ctypes.c_void_p
                pyos_readline.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p]
                mem_free = ctypes.pythonapi.PyMem_Free
                mem_free.restype = None
                mem_free.argtypes = [ctypes.c_void_p]
                encoding = getattr(self.out, "encoding", "utf-8")

                def editor(prompt: str) -> str | None:
                    p = pyos_readline(fin, fout, prompt.encode(encoding, "replace"))
                    if not p:
                        return None
                    try:
                        raw = ctypes.string_at(p)
                    finally:
                        mem_free(p)
                    if not raw:
                        return None  # end of input
                    return raw.decode(encoding, "replace").rstrip("\r\n")

                self._editor = editor
            except Exception:
                self._editor = False
        return self._editor or None

    @contextlib.contextmanager
    def _cooked(self) -> Iterator[None]:
        """Canonical mode with echo while reading without readline: the
        program may have left the terminal in raw mode (inside ``input()``)."""
        saved = None
        if self.fd is not None:
            try:
                import termios

                saved = termios.tcgetattr(self.fd)
                mode = termios.tcgetattr(self.fd)
                mode[0] |= termios.ICRNL
                mode[3] |= termios.ICANON | termios.ECHO | termios.ISIG
                termios.tcsetattr(self.fd, termios.TCSANOW, mode)
            except (ImportError, OSError, Exception):
                saved = None
        try:
            yield
        finally:
            if saved is not None:
                import termios

                with contextlib.suppress(Exception):
                    termios.tcsetattr(self.fd, termios.TCSANOW, saved)

    def restore_terminal(self) -> None:
        """Echo and line mode on again (before the process ends abruptly)."""
        if self.fd is None:
            return
        with contextlib.suppress(Exception):
            import termios

            mode = termios.tcgetattr(self.fd)
            mode[0] |= termios.ICRNL
            mode[3] |= termios.ICANON | termios.ECHO | termios.ISIG
            termios.tcsetattr(self.fd, termios.TCSANOW, mode)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


# ---------------------------------------------------------------------------
# What the prompt is about


@dataclasses.dataclass
class Pause:
    """Why the program is paused and where."""

    #: "exception", "sigint", "pause", "step", "call" or "return"
    kind: str
    #: The innermost frame shown (the failing frame for an exception).
    frame: types.FrameType
    failure: engine.Failure | None = None
    #: The value being returned (kind "return").
    value: Any = None
    thread: threading.Thread = dataclasses.field(default_factory=threading.current_thread)


@dataclasses.dataclass
class Outcome:
    """What the user chose: ``kind`` is "decision" (a restart on ``frame``),
    "invoke" (a ``restart_case`` restart), "raise", "continue", "step", "next",
    "return" or "quit"."""

    kind: str
    frame: types.FrameType | None = None
    decision: Decision | None = None
    #: For "invoke": a ``restart_case`` restart of the program and its arguments.
    restart: Any = None
    args: tuple = ()


@dataclasses.dataclass
class Restart:
    """A restart as the prompt lists it."""

    name: str
    usage: str
    description: str
    #: Why it is impossible here, or None.
    refusal: str | None = None


_EXCEPTION_HELP = {
    "retry": "retry",
    "skip": "skip",
    "use": "use EXPR",
    "leave": "leave [EXPR]",
    "rerun": "rerun",
}


def _is_own(frame: types.FrameType) -> bool:
    name = frame.f_globals.get("__name__") or ""
    return name == "resurrect" or name.startswith("resurrect.")


def _is_launcher(frame: types.FrameType) -> bool:
    """Frames of resurrect's start-up (the command line, ``runpy``): the
    program's own stack ends above them."""
    name = frame.f_globals.get("__name__") or ""
    return name == "resurrect.cli"


def visible_stack(frame: types.FrameType) -> list[types.FrameType]:
    """The program's frames from the outermost to ``frame``, without
    resurrect's own frames."""
    frames: list[types.FrameType] = []
    f: types.FrameType | None = frame
    while f is not None:
        if _is_launcher(f):
            break
        if not _is_own(f) and f.f_code.co_filename != "<frozen runpy>":
            frames.append(f)
        f = f.f_back
    frames.reverse()
    return frames or [frame]


def _display_path(filename: str) -> str:
    try:
        cwd = os.getcwd()
    except OSError:
        return filename
    if filename.startswith(cwd + os.sep):
        return filename[len(cwd) + 1 :]
    return filename


def _function(frame: types.FrameType) -> str:
    code = frame.f_code
    name = getattr(code, "co_qualname", code.co_name)
    return name if name.startswith("<") else f"{name}()"


_repr_instance = None


def short_repr(value: Any) -> str:
    """An abbreviated repr (:mod:`reprlib`) that never raises."""
    global _repr_instance
    if _repr_instance is None:
        import reprlib

        r = reprlib.Repr()
        r.maxstring = 80
        r.maxother = 80
        r.maxlong = 60
        r.maxlist = r.maxtuple = r.maxset = r.maxfrozenset = r.maxdeque = r.maxarray = 8
        r.maxdict = 6
        r.maxlevel = 3
        _repr_instance = r
    try:
        return _repr_instance.repr(value)
    except Exception as e:
        return f"<repr failed: {type(e).__name__}>"


def _statement_text(st: engine.Statement) -> str:
    """The statement as the user wrote it, without comments; a compound
    statement by its header line."""
    import ast

    node = st.node
    simple = node is not None and not isinstance(
        node,
        ast.For | ast.AsyncFor | ast.While | ast.If | ast.With | ast.AsyncWith | ast.Try | ast.TryStar
        | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Match,
    )  # fmt: skip
    if simple:
        assert node is not None
        lines = ast.unparse(node).splitlines()
        if lines:
            return lines[0] + (" …" if len(lines) > 1 else "")
    text = st.text
    if "#" in text:
        import io
        import tokenize

        try:
            for tok in tokenize.generate_tokens(io.StringIO(text).readline):
                if tok.type == tokenize.COMMENT:
                    text = text[: tok.start[1]].rstrip()
                    break
        except (tokenize.TokenError, SyntaxError):
            pass
    return text or "the statement"


def _exception_text(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n")


# ---------------------------------------------------------------------------
# The prompt


class Prompt(cmd.Cmd):
    """The commands of the prompt. Restarts end the prompt by setting
    :attr:`outcome`; everything else inspects or changes the selected frame."""

    prompt = "(resurrect) "
    identchars = cmd.Cmd.identchars

    def __init__(self, pause: Pause, console: Console):
        super().__init__(stdout=console.out)
        self.use_rawinput = False
        self.console = console
        self.pause = pause
        self.stack = visible_stack(pause.frame)
        self.index = len(self.stack) - 1
        self.outcome: Outcome | None = None
        self._list_next: int | None = None
        #: The program's own restarts (``restart_case``) in force, by name.
        self.program_restarts: dict[str, Any] = self._find_program_restarts()

    # -- output

    def message(self, text: str = "") -> None:
        self.console.write(text + "\n")

    def error(self, text: str) -> None:
        self.console.write(self.console.style("*** ", "\x1b[1;31m") + text + "\n")

    def _style(self, text: str, code: str) -> str:
        return self.console.style(text, code)

    # -- the loop

    def run(self) -> Outcome:
        """Show where the program is paused, then read commands until one of
        them chooses how to go on."""
        restore: Callable[[], None] = _nothing
        try:
            self.show()
            restore = self._install_completion()
            while self.outcome is None:
                line = self.console.read(self.prompt)
                if line is None:
                    self.message("")
                    self.outcome = self._on_eof()
                    break
                self.execute(line)
        except KeyboardInterrupt:
            # A second Ctrl-C at the prompt ends the program.
            self.message("")
            self.message("resurrect: Ctrl-C at the prompt: ending the program")
            self.outcome = Outcome("quit")
        finally:
            restore()
        return self.outcome

    def execute(self, line: str) -> None:
        """Run one command line; an error in it is reported, the program stays paused."""
        if line.strip():
            Prompt.last_command = line
        try:
            line = self.precmd(line)
            self.onecmd(line)
        except KeyboardInterrupt:
            self.error("interrupted")
        except _PromptError as e:
            self.error(str(e))
        except BaseException as e:
            self.error(_exception_text(e))

    def _on_eof(self) -> Outcome:
        # End of input counts as `raise` (INTERFACE.md); with no exception in
        # flight the program continues.
        if self.pause.kind in ("exception", "sigint"):
            return Outcome("raise", self.frame)
        return Outcome("continue", self.frame)

    def precmd(self, line: str) -> str:
        stripped = line.strip()
        if stripped.isdigit():
            available = [r for r in self.restarts() if r.refusal is None]
            n = int(stripped)
            if not 1 <= n <= len(available):
                raise _PromptError(f"no restart numbered {n} (see `restarts`)")
            return available[n - 1].name
        return line

    #: The last command typed, at this prompt or an earlier one (stepping opens
    #: a new prompt at each stop): an empty line repeats it when it is one of
    #: `step`, `next` or `list`.
    last_command = ""

    def emptyline(self) -> bool:
        last = Prompt.last_command
        if last.split() and last.split()[0] in ("s", "step", "n", "next", "l", "list"):
            return bool(self.onecmd(last))
        return False

    def default(self, line: str) -> None:
        if line.lstrip().startswith("#"):
            return
        name, _, rest = line.strip().partition(" ")
        if name in self.program_restarts:
            args = self._eval(f"({rest},)") if rest.strip() else ()
            self.outcome = Outcome(
                "invoke", self.frame, restart=self.program_restarts[name], args=tuple(args)
            )
            return
        self._run_source(line)

    def _find_program_restarts(self) -> dict[str, Any]:
        failure = self.pause.failure
        if failure is None:
            return {}
        try:
            from . import conditions

            found = conditions.compute_restarts(failure.exception)
        except Exception:
            return {}
        out: dict[str, Any] = {}
        for r in found:  # innermost first: the innermost of a name wins
            if r.kind == "restart_case" and r.name not in out:
                out[r.name] = r
        return out

    def do_shell(self, arg: str) -> None:
        """!STATEMENT
        Run a Python statement or expression in the selected frame (also without
        `!`, when the line does not start with a command's name)."""
        self._run_source(arg)

    # -- selected frame

    @property
    def frame(self) -> types.FrameType:
        return self.stack[self.index]

    def _lineno(self, frame: types.FrameType) -> int:
        p = self.pause
        if p.failure is not None and frame is p.failure.frame and p.failure.line:
            return p.failure.line
        return frame.f_lineno or frame.f_code.co_firstlineno

    def _source_line(self, frame: types.FrameType, lineno: int) -> str:
        lines = _lines_of(frame)
        if 1 <= lineno <= len(lines):
            return lines[lineno - 1].strip()
        return ""

    def _location(self, frame: types.FrameType) -> str:
        path = _display_path(frame.f_code.co_filename)
        return f"{path}:{self._lineno(frame)} in {_function(frame)}"

    # -- what is shown when the prompt opens

    def show(self) -> None:
        p = self.pause
        if p.kind in ("step", "call", "return"):
            self._show_step()
            return
        if p.failure is not None:
            self._show_exception(p.failure.exception)
        where = self._style(self._location(self.frame), "\x1b[1m")
        header = {
            "exception": "paused before unwinding at",
            "sigint": "paused by Ctrl-C at",
            "pause": "paused at",
        }[p.kind]
        line = f"{header} {where}"
        if p.thread is not threading.main_thread():
            line += f" in thread {p.thread.name!r} (other threads keep running)"
        self.message(line)
        if _waiting:
            names = ", ".join(repr(t.name) for t in _waiting)
            self.message(f"(also paused, waiting for this prompt: {names})")
        self._show_source(self.frame, before=3, after=2)
        self._show_locals(self.frame)
        self._show_restarts()

    def _show_step(self) -> None:
        p = self.pause
        tag = {"call": "--Call-- ", "return": "--Return-- ", "step": ""}[p.kind]
        line = f"> {tag}{self._location(self.frame)}"
        if p.kind == "return":
            line += f" -> {short_repr(p.value)}"
        self.message(line)
        text = self._source_line(self.frame, self._lineno(self.frame))
        if text:
            self.message(f"-> {self._highlight_one(self.frame, self._lineno(self.frame), text)}")

    def _show_exception(self, exc: BaseException) -> None:
        text = _exception_text(exc)
        head, sep, rest = text.partition(":")
        if sep and "\n" not in head:
            text = self._style(head, "\x1b[1;31m") + sep + rest
        self.message(text)
        seen = {id(exc)}
        e = exc
        for _ in range(8):
            if e.__cause__ is not None:
                nxt, how = e.__cause__, "caused by"
            elif e.__context__ is not None and not e.__suppress_context__:
                nxt, how = e.__context__, "while handling"
            else:
                break
            if id(nxt) in seen:
                break
            seen.add(id(nxt))
            first, *more = _exception_text(nxt).splitlines() or [""]
            self.message(f"  {how} {first}")
            for m in more:
                self.message(f"    {m}")
            e = nxt

    def _highlight_one(self, frame: types.FrameType, lineno: int, text: str) -> str:
        if not self.console.color:
            return text
        coloured = self._window(frame, lineno, lineno)
        return coloured[0].strip() if coloured and coloured[0].strip() else text

    def _window(self, frame: types.FrameType, first: int, last: int) -> list[str]:
        """Source lines ``first..last`` of ``frame``'s file, highlighted when
        colour is on."""
        lines = _lines_of(frame)
        first, last = max(1, first), min(len(lines), last)
        if first > last:
            return []
        if not self.console.color:
            return [line.rstrip("\r\n") for line in lines[first - 1 : last]]
        from .highlight import highlight_window

        # Tokenize from a statement boundary: the function's first line when
        # the window is inside it, else the top of the file.
        start = frame.f_code.co_firstlineno
        if start > first:
            start = 1
        coloured = highlight_window(frame.f_code.co_filename, lines, start, last)
        return coloured[first - start :]

    def _show_source(self, frame: types.FrameType, before: int, after: int) -> None:
        current = self._lineno(frame)
        self._show_range(frame, current - before, current + after, current)

    def _show_range(self, frame: types.FrameType, first: int, last: int, current: int) -> int:
        """List lines ``first..last`` (clipped); returns the last line listed."""
        lines = _lines_of(frame)
        if not lines:
            self.error(f"no source for {frame.f_code.co_filename}")
            return last
        first = max(1, first)
        last = min(len(lines), last)
        width = len(str(last))
        width_total = self.console.width()
        for n, text in enumerate(self._window(frame, first, last), first):
            text = text.expandtabs(8)
            number = self._style(str(n).rjust(width), "\x1b[90m")
            if n == current:
                marker = self._style("->", "\x1b[1;31m")
                number = self._style(str(n).rjust(width), "\x1b[1m")
            else:
                marker = "  "
            if not self.console.color and len(text) > width_total - width - 5:
                text = text[: max(10, width_total - width - 6)] + "…"
            self.message(f"{marker} {number}  {text}".rstrip())
        return last

    def _variables(self, frame: types.FrameType) -> list[tuple[str, Any]]:
        ns = frame.f_locals
        module_level = ns is frame.f_globals or frame.f_code.co_name == "<module>"
        items = []
        for name, value in list(ns.items()):
            if module_level and (
                name.startswith("__")
                or isinstance(value, types.ModuleType | types.FunctionType | type)
            ):
                continue
            items.append((name, value))
        return items

    def _show_locals(self, frame: types.FrameType, limit: int = 12) -> None:
        try:
            items = self._variables(frame)
        except Exception as e:
            self.error(f"cannot read the frame's variables: {_exception_text(e)}")
            return
        if not items:
            return
        title = "variables:" if frame.f_code.co_name == "<module>" else "locals:"
        self.message(self._style(title, "\x1b[1m"))
        width = self.console.width()
        for name, value in items[:limit]:
            text = f"  {name} = {short_repr(value)}"
            if len(text) > width - 1:
                text = text[: width - 2] + "…"
            self.message(text)
        if len(items) > limit:
            self.message(f"  … {len(items) - limit} more (`p vars()` shows them all)")

    def _show_restarts(self, compact: bool = False) -> None:
        items = self.restarts()
        available = [r for r in items if r.refusal is None]
        if compact:
            names = ", ".join(f"{i} {r.name}" for i, r in enumerate(available, 1))
            self.message(f"restarts: {names}   (`restarts` for details)")
            return
        self.message(self._style("restarts:", "\x1b[1m"))
        width = max(len(r.usage) for r in items)
        for i, r in enumerate(available, 1):
            number = self._style(str(i).rjust(2), "\x1b[1;32m")
            usage = self._style(r.usage.ljust(width), "\x1b[1m")
            self.message(f"  {number} {usage}  {r.description}")
        for r in items:
            if r.refusal is not None:
                self.message(
                    self._style(f"     {r.usage.ljust(width)}  unavailable: {r.refusal}", "\x1b[2m")
                )

    # -- restarts

    def _statement_at(self, frame: types.FrameType) -> tuple[engine.Statement | None, str | None]:
        """The statement a restart applies to in ``frame``, or why there is none."""
        failure = self.pause.failure
        assert failure is not None
        if frame is failure.frame:
            return failure.statement, None
        name = _function(frame)
        if not _core.is_instrumented(frame.f_code):
            return (
                None,
                f"{name} has no resume points (its file is not instrumented; see --instrument)",
            )
        rp = _core.resume_point_at(frame.f_code, frame.f_lasti)
        if rp is None:
            return None, f"no resume point at this line of {name}"
        return engine.statement(frame.f_code, rp.index), None

    def _refusal(self, action: Action) -> str | None:
        st, reason = self._statement_at(self.frame)
        if reason is not None:
            return reason
        assert st is not None
        reason = engine.refusal(self.frame, st, action)
        if reason is None and action is Action.USE_VALUE and st.rp.kind == "loop":
            # engine.Statement.refusal allows it, but engine._use_value refuses
            # loops at apply time, which would lose the program (reported).
            reason = (
                "`use` on a loop's next item is not supported yet; assign the variable and `skip`"
            )
        return reason

    def restarts(self) -> list[Restart]:
        """The restarts for the selected frame, available ones and not."""
        p = self.pause
        if p.kind == "exception":
            st, _ = self._statement_at(self.frame)
            text = f"`{_statement_text(st)}`" if st is not None else "the statement"
            func = _function(self.frame)
            use = "the statement produced EXPR: bind its targets, continue after it"
            if st is not None and st.rp.kind == "loop":
                use = "EXPR is the loop's next item"
            elif st is not None and st.node is not None:
                import ast

                if isinstance(st.node, ast.Return):
                    use = f"{text} returns EXPR"
                elif isinstance(st.node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                    targets = (
                        st.node.targets if isinstance(st.node, ast.Assign) else [st.node.target]
                    )
                    names = " = ".join(ast.unparse(t) for t in targets)
                    use = f"{names} = EXPR instead, continue after it"
                elif isinstance(st.node, ast.Expr):
                    use = "the expression's value is EXPR; continue after it"
            items = [
                Restart("retry", "retry", f"run {text} again", self._refusal(Action.RETRY)),
                Restart("skip", "skip", f"continue after {text}", self._refusal(Action.SKIP)),
                Restart("use", "use EXPR", use, self._refusal(Action.USE_VALUE)),
                Restart(
                    "leave",
                    "leave [EXPR]",
                    f"return EXPR (default None) from {func} to its caller",
                    self._refusal(Action.LEAVE),
                ),
                Restart(
                    "rerun",
                    "rerun",
                    f"call {func} again from its first line",
                    self._refusal(Action.RERUN),
                ),
            ]
            items += [
                Restart(name, f"{name} [ARGS]", f"{r.description} (restart_case)")
                for name, r in self.program_restarts.items()
            ]
            items.append(Restart("raise", "raise", "let the exception propagate, as python would"))
        elif p.kind == "sigint":
            items = [
                Restart("continue", "continue", "resume the program where it was interrupted"),
                Restart("step", "step", "run until the next line, stepping into calls"),
                Restart("next", "next", "run until the next line of the selected frame"),
                Restart("return", "return", "run until the selected frame returns"),
                Restart("raise", "raise", "raise KeyboardInterrupt here, as python would"),
            ]
        else:
            items = [
                Restart("continue", "continue", "resume the program"),
                Restart("step", "step", "run until the next line, stepping into calls"),
                Restart("next", "next", "run until the next line of the selected frame"),
                Restart("return", "return", "run until the selected frame returns"),
            ]
        items.append(Restart("quit", "quit", "end the program (exit status 1)"))
        return items

    def _choose(self, action: Action, value: Any = None) -> None:
        if self.pause.kind != "exception":
            self.error("not paused on an exception: `continue`, `step`, `next`, `return` or `quit`")
            return
        reason = self._refusal(action)
        if reason is not None:
            self.error(f"cannot {action.value} here: {reason}")
            return
        self.outcome = Outcome("decision", self.frame, Decision(action, value))

    def _value(self, arg: str, usage: str) -> tuple[bool, Any]:
        if not arg.strip():
            self.error(f"usage: {usage}")
            return False, None
        return True, self._eval(arg)

    def do_retry(self, arg: str) -> None:
        """retry
        Run the failing statement again (of the selected frame: after `up`, the
        call in the caller; the frames in between unwind first)."""
        self._choose(Action.RETRY)

    def do_skip(self, arg: str) -> None:
        """skip
        Continue with the statement after the failing one."""
        self._choose(Action.SKIP)

    def do_use(self, arg: str) -> None:
        """use EXPR
        The failing statement produced EXPR: an assignment binds its targets to
        it, a `return` returns it; then the program continues."""
        ok, value = self._value(arg, "use EXPR")
        if ok:
            self._choose(Action.USE_VALUE, value)

    def do_leave(self, arg: str) -> None:
        """leave [EXPR]
        Return EXPR (default None) from the selected frame to its caller."""
        value = self._eval(arg) if arg.strip() else None
        self._choose(Action.LEAVE, value)

    def do_rerun(self, arg: str) -> None:
        """rerun
        Call the selected frame's function again from its first line, with its
        arguments."""
        self._choose(Action.RERUN)

    def do_raise(self, arg: str) -> None:
        """raise
        Let the exception propagate as plain Python would (after Ctrl-C: raise
        KeyboardInterrupt where the program was interrupted)."""
        if self.pause.kind not in ("exception", "sigint"):
            self.error("there is no exception to raise here")
            return
        self.outcome = Outcome("raise", self.frame)

    def do_continue(self, arg: str) -> None:
        """continue (c, cont)
        Paused on an exception: the same as `raise`. Otherwise resume the
        program where it was paused."""
        if self.pause.kind == "exception":
            self.outcome = Outcome("raise", self.frame)
        else:
            self.outcome = Outcome("continue", self.frame)

    def _stepping(self, kind: str) -> None:
        if self.pause.kind == "exception":
            self.error("paused on an exception: choose a restart (`restarts` lists them)")
            return
        self.outcome = Outcome(kind, self.frame)

    def do_step(self, arg: str) -> None:
        """step (s)
        Run until the next line, stepping into function calls."""
        self._stepping("step")

    def do_next(self, arg: str) -> None:
        """next (n)
        Run until the next line of the selected frame (or until it returns)."""
        self._stepping("next")

    def do_return(self, arg: str) -> None:
        """return (r)
        Run until the selected frame returns."""
        self._stepping("return")

    def do_quit(self, arg: str) -> None:
        """quit (q, exit)
        End the program (exit status 1); `finally` blocks and `__exit__`s run."""
        self.outcome = Outcome("quit", self.frame)

    def do_restarts(self, arg: str) -> None:
        """restarts
        List the restarts for the selected frame, numbered; a number alone
        chooses one."""
        self._show_restarts()

    # -- inspecting

    def do_where(self, arg: str) -> None:
        """where (w, bt)
        Print the stack, oldest frame first; `>` marks the selected frame."""
        for i, f in enumerate(self.stack):
            mark = self._style(">", "\x1b[1;31m") if i == self.index else " "
            self.message(f"{mark} {self._location(f)}")
            text = self._source_line(f, self._lineno(f))
            if text:
                self.message(f"    {text}")

    def _select(self, index: int) -> None:
        self.index = index
        self._list_next = None
        self.message(f"> {self._location(self.frame)}")
        text = self._source_line(self.frame, self._lineno(self.frame))
        if text:
            self.message(f"-> {self._highlight_one(self.frame, self._lineno(self.frame), text)}")
        if self.pause.kind == "exception":
            self._show_restarts(compact=True)

    def _count(self, arg: str) -> int:
        try:
            count = int(arg or 1)
        except ValueError:
            raise _PromptError(f"not a number: {arg!r}") from None
        return max(1, count)

    def do_up(self, arg: str) -> None:
        """up [COUNT] (u)
        Select an older frame (toward the program's start)."""
        count = self._count(arg)
        if self.index == 0:
            self.error("oldest frame")
            return
        self._select(max(0, self.index - count))

    def do_down(self, arg: str) -> None:
        """down [COUNT] (d)
        Select a newer frame (toward where the program is paused)."""
        count = self._count(arg)
        if self.index == len(self.stack) - 1:
            self.error("newest frame")
            return
        self._select(min(len(self.stack) - 1, self.index + count))

    def do_list(self, arg: str) -> None:
        """list [FIRST[, LAST] | .] (l)
        List 11 lines around the current line, or continue the previous
        listing; `list .` lists around the current line again."""
        frame = self.frame
        current = self._lineno(frame)
        arg = arg.strip()
        if not arg:
            first = self._list_next if self._list_next is not None else max(1, current - 5)
            last = first + 10
        elif arg == ".":
            first, last = max(1, current - 5), current + 5
        else:
            try:
                parts = [int(x) for x in arg.split(",")]
            except ValueError:
                self.error(f"usage: list [FIRST[, LAST] | .], not {arg!r}")
                return
            if len(parts) == 1:
                first, last = max(1, parts[0] - 5), parts[0] + 5
            else:
                first, last = parts[0], parts[1]
                if last < first:
                    last = first + last
        end = self._show_range(frame, first, last, current)
        self._list_next = end + 1

    def do_longlist(self, arg: str) -> None:
        """longlist (ll)
        List the whole source of the selected frame's function or module."""
        import inspect

        frame = self.frame
        lines = _lines_of(frame)
        if frame.f_code.co_name == "<module>":
            first, last = 1, len(lines)
        else:
            try:
                block, first = inspect.getsourcelines(frame.f_code)
            except (OSError, TypeError):
                if not lines:
                    self.error("no source available")
                    return
                block = inspect.getblock(lines[frame.f_code.co_firstlineno - 1 :])
                first = frame.f_code.co_firstlineno
            last = first + len(block) - 1
        self._show_range(frame, max(1, first), last, self._lineno(frame))

    def _eval(self, source: str) -> Any:
        return _frames.run_in_frame(self.frame, source.strip(), mode="eval")

    def do_p(self, arg: str) -> None:
        """p EXPR
        Print the value of EXPR, evaluated in the selected frame."""
        if not arg.strip():
            self.error("usage: p EXPR")
            return
        self.message(repr(self._eval(arg)))

    def do_pp(self, arg: str) -> None:
        """pp EXPR
        Pretty-print the value of EXPR."""
        import pprint

        if not arg.strip():
            self.error("usage: pp EXPR")
            return
        self.message(pprint.pformat(self._eval(arg), width=self.console.width() - 1))

    def do_whatis(self, arg: str) -> None:
        """whatis EXPR
        Print the type of EXPR (function, method, class or other)."""
        if not arg.strip():
            self.error("usage: whatis EXPR")
            return
        value = self._eval(arg)
        func = getattr(value, "__func__", None)
        if func is not None and hasattr(func, "__code__"):
            self.message(f"Method {func.__code__.co_name}")
        elif hasattr(value, "__code__"):
            self.message(f"Function {value.__code__.co_name}")
        elif isinstance(value, type):
            self.message(f"Class {value.__module__}.{value.__qualname__}")
        else:
            self.message(str(type(value)))

    def do_args(self, arg: str) -> None:
        """args (a)
        Print the arguments of the selected frame's function."""
        code = self.frame.f_code
        n = code.co_argcount + code.co_kwonlyargcount
        if code.co_flags & 0x04:
            n += 1
        if code.co_flags & 0x08:
            n += 1
        ns = self.frame.f_locals
        for name in code.co_varnames[:n]:
            value = short_repr(ns[name]) if name in ns else "*** undefined ***"
            self.message(f"{name} = {value}")

    def do_interact(self, arg: str) -> None:
        """interact
        Start an interactive Python shell in the selected frame; assignments
        change the frame's variables. Ctrl-D returns to the prompt."""
        shell = _Shell(self)
        try:
            shell.interact(banner="*interactive* (Ctrl-D returns to the prompt)", exitmsg="")
        except SystemExit:
            pass

    def do_help(self, arg: str) -> None:
        """help [COMMAND] (h)
        List the commands, or show what COMMAND does."""
        arg = arg.strip()
        if arg:
            if arg == "!":
                arg = "shell"
            func = getattr(self, "do_" + arg, None)
            if func is None or not func.__doc__:
                self.error(f"no help for {arg!r}")
                return
            self.message(_dedent(func.__doc__))
            return
        groups = [
            ("restarts (paused on an exception)", self._restart_commands),
            ("running (paused by Ctrl-C or pause())", ["continue", "step", "next", "return"]),
            (
                "inspecting",
                [
                    "where", "up", "down", "list", "longlist", "p", "pp", "whatis",
                    "args", "interact", "shell", "restarts", "help",
                ],
            ),
            ("changing the program", ["reload", "edit", "checkpoint"]),
        ]  # fmt: skip
        for title, names in groups:
            self.message(self._style(title + ":", "\x1b[1m"))
            for name in names:
                doc = getattr(self, "do_" + name).__doc__ or name
                self.message("  " + _dedent(doc).splitlines()[0])
        self.message("The program's own restarts (restart_case) are listed by `restarts`;")
        self.message("type a name with its arguments (`NAME ARG, ...`) to invoke one.")
        self.message("A number alone chooses that restart. Any other line runs as Python in")
        self.message("the selected frame; prefix it with `!` when it starts like a command.")

    _restart_commands = ["retry", "skip", "use", "leave", "rerun", "raise", "quit"]

    # -- commands of other parts of resurrect

    def _extension(self, name: str, arg: str) -> None:
        handler = extensions.get(name)
        if handler is None and name in _providers:
            import importlib

            module = importlib.import_module(f"{__package__}.{_providers[name]}")
            install = getattr(module, "install", None)
            if name in ("reload", "edit") and install is not None:
                install()  # registers `reload` and `edit`, connects the engine
            handler = extensions.get(name)
        if handler is None:
            self.error(f"`{name}` is not available here")
            return
        handler(self, arg)

    def do_reload(self, arg: str) -> None:
        """reload
        Re-read edited source files now and patch the live code."""
        self._extension("reload", arg)

    def do_edit(self, arg: str) -> None:
        """edit
        Open $EDITOR at the current line; reload when it closes."""
        self._extension("edit", arg)

    def do_checkpoint(self, arg: str) -> None:
        """checkpoint [PATH]
        Write a checkpoint of the paused program."""
        self._extension("checkpoint", arg)

    # -- aliases, as pdb names them

    do_w = do_bt = do_where
    do_u = do_up
    do_d = do_down
    do_l = do_list
    do_ll = do_longlist
    do_a = do_args
    do_h = do_help
    do_c = do_cont = do_continue
    do_s = do_step
    do_n = do_next
    do_r = do_return
    do_q = do_exit = do_quit

    # -- running Python in the frame

    def _run_source(self, source: str) -> None:
        source = source.strip()
        if not source:
            return
        try:
            compile(source, "<prompt>", "eval")
        except SyntaxError:
            _frames.run_in_frame(self.frame, source, mode="exec")
            return
        value = _frames.run_in_frame(self.frame, source, mode="eval")
        if value is not None:
            self.message(repr(value))

    # -- completion

    def _install_completion(self) -> Callable[[], None]:
        if not self.console.terminal:
            return lambda: None
        try:
            import readline
            import rlcompleter  # noqa: F401  (its import sets readline's completer: first)
        except ImportError:
            return lambda: None
        old = readline.get_completer()
        old_delims = readline.get_completer_delims()
        readline.set_completer(self.complete)
        readline.set_completer_delims(" \t\n`~!@#$%^&*()-=+[{]}\\|;:'\",<>/?")
        readline.parse_and_bind("tab: complete")

        def restore() -> None:
            readline.set_completer(old)
            readline.set_completer_delims(old_delims)

        return restore

    def _names(self, text: str) -> list[str]:
        if not text:
            return []
        import rlcompleter

        frame = self.frame
        ns = dict(vars(builtins))
        ns.update(frame.f_globals)
        ns.update(frame.f_locals)
        completer = rlcompleter.Completer(ns)
        out: list[str] = []
        for state in range(500):
            match = completer.complete(text, state)
            if match is None:
                break
            out.append(match)
        return out

    def completenames(self, text: str, *ignored: Any) -> list[str]:
        commands = super().completenames(text, *ignored)
        return sorted(set(commands) | set(self._names(text)))

    def completedefault(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        return self._names(text)


def _nothing() -> None:
    return None


class _PromptError(Exception):
    """A mistake in a command: shown as its message."""


def _dedent(doc: str) -> str:
    import inspect

    return inspect.cleandoc(doc)


class _Shell:
    """``interact``: :class:`code.InteractiveConsole` on the prompt's terminal,
    running in the selected frame (assignments are written back)."""

    def __new__(cls, prompt: Prompt):  # built lazily: `code` is imported on first use
        import code

        class Shell(code.InteractiveConsole):
            def raw_input(self, text: str = "") -> str:
                line = prompt.console.read(text)
                if line is None:
                    raise EOFError
                return line

            def write(self, data: str) -> None:
                prompt.console.write(data)

            def runcode(self, code_: types.CodeType) -> None:
                frame = prompt.frame
                ns = _frames.namespace(frame)
                hook = sys.displayhook

                def display(value: Any) -> None:
                    if value is not None:
                        builtins._ = value  # type: ignore[attr-defined]
                        prompt.message(repr(value))

                sys.displayhook = display
                try:
                    exec(code_, frame.f_globals, ns)
                except SystemExit:
                    raise
                except BaseException:
                    self.showtraceback()
                finally:
                    sys.displayhook = hook
                    _frames.commit(frame, ns)

        return Shell(filename="<interact>")


# ---------------------------------------------------------------------------
# Opening the prompt


def _open(pause_: Pause) -> Outcome:
    """Show the prompt for ``pause_`` once the prompt is free; what the user chose."""
    global _owner
    me = threading.current_thread()
    _waiting.append(me)
    try:
        _lock.acquire()
    finally:
        _waiting.remove(me)
    try:
        _owner = me
        console = Console.get()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        return Prompt(pause_, console).run()
    finally:
        _owner = None
        _lock.release()


def policy(failure: engine.Failure) -> Decision:
    """``engine.policies["pause"]``: pause at the prompt and return what the user
    chose. A restart on an outer frame raises :class:`engine.UnwindTo`."""
    if _here():
        # Code run from the prompt failed: report it at the prompt.
        return Decision(Action.PROPAGATE)
    outcome = _open(Pause("exception", failure.frame, failure))
    if outcome.kind == "decision":
        assert outcome.decision is not None and outcome.frame is not None
        if outcome.frame is failure.frame:
            return outcome.decision
        raise engine.UnwindTo(outcome.frame, outcome.decision)
    if outcome.kind == "quit":
        _quit()
    if outcome.kind == "invoke":
        from . import conditions

        conditions.invoke_restart(outcome.restart, *outcome.args)
    _stop_stepping()
    return Decision(Action.PROPAGATE)


def pause() -> None:
    """Open the prompt at the caller's line (``resurrect.pause()``); returns
    when the user chooses ``continue`` (or starts stepping)."""
    frame = sys._getframe(1)
    if _here():
        return
    _go_on(_open(Pause("pause", frame)), frame)


def _go_on(outcome: Outcome, frame: types.FrameType) -> None:
    """Carry out a choice made at a prompt opened by Ctrl-C or ``pause()``."""
    if outcome.kind == "quit":
        _quit()
    if outcome.kind == "raise":
        raise KeyboardInterrupt
    if outcome.kind in ("step", "next", "return"):
        _Stepper.get().begin(frame, outcome.kind, outcome.frame or frame)
    else:
        _stop_stepping()


def _quit() -> None:
    """End the program with exit status 1; ``finally`` blocks and ``__exit__``s
    of the thread's frames run."""
    global _quit_requested
    sys.settrace(None)
    if threading.current_thread() is threading.main_thread():
        raise SystemExit(1)
    if signal.getsignal(signal.SIGINT) is _on_sigint:
        # The main thread's handler ends the program there.
        _quit_requested = True
        _thread.interrupt_main()
        raise SystemExit(1)
    _exit_now(1)


def _exit_now(status: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if Console._instance is not None:
        Console._instance.restore_terminal()
    os._exit(status)


# ---------------------------------------------------------------------------
# Ctrl-C


def _on_sigint(signum: int, frame: types.FrameType | None) -> None:
    if _quit_requested:
        raise SystemExit(1)
    owner = _owner
    if owner is threading.current_thread():
        raise KeyboardInterrupt  # at this thread's prompt: the prompt handles it
    if owner is not None:
        Console.get().write("\nresurrect: Ctrl-C at the prompt: ending the program\n")
        _exit_now(1)
    user = frame
    while user is not None and _is_own(user):
        user = user.f_back
    if user is None:
        user = frame
    if user is None:
        raise KeyboardInterrupt
    _go_on(_open(Pause("sigint", user)), user)


def install_sigint() -> bool:
    """Make Ctrl-C pause the program at the prompt (main thread only). Does
    nothing when SIGINT is ignored (a background job); returns whether it was
    installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return False
    signal.signal(signal.SIGINT, _on_sigint)
    return True


# ---------------------------------------------------------------------------
# Stepping after a pause


class _Stepper:
    """``step``/``next``/``return``/``continue`` as in pdb, on :mod:`bdb`: each
    stop opens the prompt again."""

    _instance: Any = None

    @classmethod
    def get(cls) -> Any:
        if cls._instance is None:
            import bdb

            class Stepper(bdb.Bdb):
                def __init__(self) -> None:
                    super().__init__(skip=["resurrect", "resurrect.*", "runpy", "bdb"])

                def begin(self, frame: types.FrameType, kind: str, selected: types.FrameType):
                    self.set_trace(frame)
                    self.follow(kind, selected)

                def follow(self, kind: str, selected: types.FrameType) -> None:
                    if kind == "step":
                        self.set_step()
                    elif kind == "next":
                        self.set_next(selected)
                    elif kind == "return":
                        self.set_return(selected)
                    else:
                        self.set_continue()

                def user_call(self, frame: types.FrameType, argument_list: Any) -> None:
                    if self.stop_here(frame):
                        self.interaction(Pause("call", frame))

                def user_line(self, frame: types.FrameType) -> None:
                    self.interaction(Pause("step", frame))

                def user_return(self, frame: types.FrameType, value: Any) -> None:
                    self.interaction(Pause("return", frame, value=value))

                def interaction(self, p: Pause) -> None:
                    if _here():
                        return
                    outcome = _open(p)
                    if outcome.kind == "quit":
                        self.set_continue()
                        _quit()
                    if outcome.kind == "raise":
                        outcome.kind = "continue"
                    self.follow(outcome.kind, outcome.frame or p.frame)

            cls._instance = Stepper()
        return cls._instance


def _stop_stepping() -> None:
    stepper = _Stepper._instance
    if stepper is not None and sys.gettrace() is not None:
        stepper.set_continue()


engine.policies["pause"] = policy
