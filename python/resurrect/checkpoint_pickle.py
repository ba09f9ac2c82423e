"""One serialisation of a program's state: pickle protocol 5 with a custom
pickler, so that every object shared between frames, globals and modules is
saved once and comes back shared.

* Modules, module globals, ``sys.stdin``/``stdout``/``stderr`` and the main
  thread are **persistent references**: the resumed process uses its own.
* Functions and classes that can be imported by name are saved by name.
  Those of ``__main__`` (which is not imported again: its code has already
  run) and those defined inside functions are rebuilt: a function from its
  code, globals, closure cells, defaults and attributes; a class from its
  metaclass, bases and namespace. Their **code** is named by file and path
  (:mod:`.checkpoint_source`) and taken from the current source when resuming;
  code without a source file is saved by value (``marshal``).
* ``bytes``/``bytearray`` of 64 KiB or more and pickle-5 buffers (numpy arrays)
  are **out-of-band**: written straight from the object's memory after the
  pickle stream, read back into buffers numpy uses in place.
* Open files are reopened by path, mode and position (see :func:`_reopen`);
  a lock that is not held comes back as a new lock.
* What cannot be saved (generators, coroutines, threads, sockets, held locks,
  frames, files without a path, a text file being iterated) raises
  :class:`Unsaveable`; :func:`locate` then names the variable that holds it.
"""

from __future__ import annotations

import _thread
import importlib
import io
import marshal
import os
import pickle
import stat
import sys
import threading
import types
import warnings
from collections.abc import Iterable
from typing import Any

from . import checkpoint_source as _source
from .checkpoint_format import Blob, CheckpointError

#: ``bytes``/``bytearray``/buffers at least this large are written out-of-band.
BLOB_MIN = 1 << 16
_HEAPTYPE = 1 << 9


class Unsaveable(Exception):
    """An object that cannot be part of a checkpoint; the message says what it is."""


def _by_name(obj: Any) -> bool:
    """Whether ``obj`` (a function or class) is what its module and qualified
    name lead to, in a module other than ``__main__``."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return False
    if module == "__main__" or "<locals>" in qualname:
        return False
    target: Any = sys.modules.get(module)
    if target is None:
        return False
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            return False
    return target is obj


# ---------------------------------------------------------------------------
# Rebuilding (module-level: the pickle stream names these functions)

#: The resolver of the load in progress (see :func:`load`).
_resolver: _source.Resolver | None = None


def _resolve_code(file, path, qualname, firstlineno, freevars):
    assert _resolver is not None
    return _resolver.code(
        _source.CodeRef(file, tuple(tuple(s) for s in path), qualname, firstlineno, tuple(freevars))
    )


def _make_function(code, globals_, name, closure):
    try:
        return types.FunctionType(code, globals_, name, None, closure)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"function {name} cannot be rebuilt: {e}") from None


def _set_function_state(fn, state):
    for key, value in state.items():
        if key == "__dict__":
            fn.__dict__.update(value)
        else:
            setattr(fn, key, value)


def _make_cell():
    return types.CellType()


def _set_cell(cell, state):
    full, value = state
    if full:
        cell.cell_contents = value


def _make_class(meta, name, bases, module, qualname, slots):
    ns: dict[str, Any] = {"__module__": module, "__qualname__": qualname}
    if slots is not None:
        ns["__slots__"] = slots
    return types.new_class(name, bases, {"metaclass": meta}, lambda d: d.update(ns))


def _set_class_state(cls, state):
    for key, value in state.items():
        try:
            setattr(cls, key, value)
        except (AttributeError, TypeError):
            if not (key.startswith("__") and key.endswith("__")):
                raise


def _numpy_view(base, offset, shape, strides, dtype, writeable):
    import numpy

    flat = base.reshape(-1).view(numpy.uint8) if base.flags.c_contiguous else base
    view = numpy.ndarray(shape, dtype, buffer=flat, offset=offset, strides=strides)
    if not writeable:
        view.flags.writeable = False
    return view


def _mappingproxy(d):
    return types.MappingProxyType(d)


def _new_lock():
    return _thread.allocate_lock()


def _new_rlock():
    return _thread.RLock()


def _closed_file(name, text):
    f = open(os.devnull, "r" if text else "rb")
    f.close()
    return f


def _reopen(info: dict[str, Any]):
    """Reopen a file the program had open. Files being written ('w', 'x',
    'a') are cut back to the size they had at the checkpoint (the resumed
    program writes the rest again) and must not have shrunk; files only read
    and files updated in place ('r+') must be unchanged."""
    path = info["path"]
    mode = info["mode"]
    what = f"the file {path} (open when the checkpoint was written)"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CheckpointError(f"{what} is missing") from None
    sequential = mode[0] in "wxa"
    if sequential:
        if st.st_size < info["size"]:
            raise CheckpointError(
                f"{what} is shorter than it was ({st.st_size} < {info['size']} bytes)"
            )
    elif st.st_size != info["size"] or st.st_mtime_ns != info["mtime_ns"]:
        raise CheckpointError(f"{what} changed since the checkpoint")

    def opener(p, flags):
        # Never truncate or create: the file is continued, not started again.
        return os.open(p, flags & ~(os.O_TRUNC | os.O_CREAT | os.O_EXCL))

    reopen_mode = mode.replace("x", "w")
    kwargs: dict[str, Any] = {}
    if info["text"]:
        kwargs.update(encoding=info["encoding"], errors=info["errors"])
        if info["line_buffering"]:
            kwargs["buffering"] = 1
    f = open(path, reopen_mode, opener=opener, **kwargs)
    try:
        if sequential:
            f.truncate(info["size"])
        if mode[0] != "a":
            f.seek(info["pos"])
        if info["text"] and info["write_through"]:
            f.reconfigure(write_through=True)
    except BaseException:
        f.close()
        raise
    return f


# ---------------------------------------------------------------------------
# Pickling


_STREAMS = ("stdin", "stdout", "stderr", "__stdin__", "__stdout__", "__stderr__")
_DATACLASS_SENTINELS = (
    "MISSING",
    "KW_ONLY",
    "_FIELD",
    "_FIELD_CLASSVAR",
    "_FIELD_INITVAR",
    "_HAS_DEFAULT_FACTORY",
)


def _refuse(what: str):
    def reduce(self, obj):
        raise Unsaveable(what(obj) if callable(what) else what)

    return reduce


def _gen_name(obj) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__name__


class StatePickler(pickle.Pickler):
    """The pickler of checkpoints (see the module's docstring)."""

    def __init__(self, file, index: _source.SourceIndex, blobs: list[Blob] | None):
        super().__init__(file, protocol=5, buffer_callback=self._buffer)
        self.index = index
        self.blobs = blobs
        self._special: dict[int, tuple] = {}
        self._keep: list[Any] = []
        self._blob_ids: dict[int, int] = {}
        self.files: list[dict[str, Any]] = []
        for name, module in list(sys.modules.items()):
            d = getattr(module, "__dict__", None)
            if isinstance(module, types.ModuleType) and isinstance(d, dict):
                self._add_special(d, ("globals", name))
        for name in _STREAMS:
            stream = getattr(sys, name, None)
            if stream is not None:
                self._add_special(stream, ("stream", name))
        self._add_special(threading.main_thread(), ("main_thread",))
        dc = sys.modules.get("dataclasses")
        if dc is not None:
            for name in _DATACLASS_SENTINELS:
                if hasattr(dc, name):
                    self._add_special(getattr(dc, name), ("attr", "dataclasses", name))

    def _add_special(self, obj: Any, pid: tuple) -> None:
        if id(obj) not in self._special:
            self._special[id(obj)] = pid
            self._keep.append(obj)

    # -- out-of-band data

    def _buffer(self, buf: pickle.PickleBuffer):
        with buf.raw() as m:
            n = m.nbytes
        if n < BLOB_MIN or self.blobs is None:
            return self.blobs is not None  # in-band when small; dropped in a dry run
        self.blobs.append(Blob("buffer", buf))
        return None

    def _blob(self, obj: bytes | bytearray) -> tuple:
        index = self._blob_ids.get(id(obj))
        if index is None:
            index = len(self.blobs) if self.blobs is not None else 0
            if self.blobs is not None:
                self.blobs.append(Blob(type(obj).__name__, obj))
            self._blob_ids[id(obj)] = index
            self._keep.append(obj)
        return ("blob", index)

    # -- the two hooks

    def persistent_id(self, obj: Any):
        pid = self._special.get(id(obj))
        if pid is not None:
            return pid
        t = type(obj)
        if t is bytes or t is bytearray:
            return self._blob(obj) if len(obj) >= BLOB_MIN else None
        if isinstance(obj, types.ModuleType):
            return ("module", obj.__name__)
        return None

    def reducer_override(self, obj: Any):
        t = type(obj)
        if t is types.FunctionType:
            return self._function(obj)
        if t is types.CodeType:
            return self._code(obj)
        if t is types.CellType:
            return self._cell(obj)
        if isinstance(obj, type):
            return self._class(obj)
        handler = _HANDLERS.get(t)
        if handler is not None:
            return handler(self, obj)
        if isinstance(obj, io.IOBase):
            return self._file(obj)
        if t.__name__ == "ndarray" and t.__module__ == "numpy":
            return self._ndarray(obj)
        if isinstance(obj, threading.Thread):
            raise Unsaveable(f"a thread ({obj.name}) cannot be saved")
        sock = sys.modules.get("socket")
        if sock is not None and isinstance(obj, sock.socket):
            raise Unsaveable("a socket cannot be saved")
        return NotImplemented

    # -- reductions

    def _function(self, fn: types.FunctionType):
        if _by_name(fn):
            return NotImplemented
        state: dict[str, Any] = {
            "__qualname__": fn.__qualname__,
            "__module__": fn.__module__,
            "__defaults__": fn.__defaults__,
            "__kwdefaults__": fn.__kwdefaults__,
            "__doc__": fn.__doc__,
        }
        if fn.__annotations__:
            state["__annotations__"] = fn.__annotations__
        if fn.__dict__:
            state["__dict__"] = fn.__dict__
        if getattr(fn, "__type_params__", ()):
            state["__type_params__"] = fn.__type_params__
        return (
            _make_function,
            (fn.__code__, fn.__globals__, fn.__name__, fn.__closure__),
            state,
            None,
            None,
            _set_function_state,
        )

    def _code(self, code: types.CodeType):
        ref = self.index.ref(code)
        if ref is not None:
            return (
                _resolve_code,
                (ref.file, ref.path, ref.qualname, ref.firstlineno, ref.freevars),
            )
        try:
            return (marshal.loads, (marshal.dumps(code),))
        except ValueError:
            raise Unsaveable(
                f"the code of {code.co_qualname} has no source file and cannot be saved"
            ) from None

    def _cell(self, cell: types.CellType):
        try:
            state = (True, cell.cell_contents)
        except ValueError:
            state = (False, None)
        return (_make_cell, (), state, None, None, _set_cell)

    def _class(self, cls: type):
        if _by_name(cls) or not (cls.__flags__ & _HEAPTYPE):
            return NotImplemented
        meta = type(cls)
        enum = sys.modules.get("enum")
        if enum is not None and isinstance(cls, enum.EnumMeta):
            raise Unsaveable(
                f"the Enum class {cls.__qualname__} of {cls.__module__} cannot be saved "
                "(Enums are saved by name: define it in a module the program imports)"
            )
        ns, slots = _class_namespace(cls)
        args = (meta, cls.__name__, cls.__bases__, cls.__module__, cls.__qualname__, slots)
        return (_make_class, args, ns, None, None, _set_class_state)

    def _ndarray(self, a):
        """A numpy view is saved as a view of its (saved) base, so that the
        two still share memory when resumed; other arrays as numpy pickles
        them (contiguous data out-of-band)."""
        base = a.base
        if base is None or type(base) is not type(a):
            return NotImplemented
        start = a.__array_interface__["data"][0]
        base_start = base.__array_interface__["data"][0]
        offset = start - base_start
        if offset < 0 or offset > base.nbytes:
            return NotImplemented
        return (_numpy_view, (base, offset, a.shape, a.strides, a.dtype, a.flags.writeable))

    def _lock(self, lock):
        if lock.locked():
            raise Unsaveable(
                "a lock that is held cannot be saved (a resumed program could not hold it again)"
            )
        return (_new_lock, ())

    def _rlock(self, lock):
        if repr(lock).startswith("<locked"):
            raise Unsaveable(
                "a reentrant lock that is held cannot be saved (a resumed program could not hold it again)"
            )
        return (_new_rlock, ())

    def _file(self, f: io.IOBase):
        kinds = (
            io.TextIOWrapper,
            io.BufferedReader,
            io.BufferedWriter,
            io.BufferedRandom,
            io.FileIO,
        )
        if not isinstance(f, kinds):
            return NotImplemented
        text = isinstance(f, io.TextIOWrapper)
        binary = f.buffer if text else f
        raw = binary if isinstance(binary, io.FileIO) else getattr(binary, "raw", None)
        name = getattr(raw, "name", None)
        mode = getattr(f, "mode", None) or getattr(raw, "mode", "r")
        if f.closed:
            return (_closed_file, (name, text))
        if not isinstance(name, str):
            raise Unsaveable(
                f"an open file without a path (file descriptor {name}) cannot be reopened"
            )
        path = os.path.abspath(name)
        st = os.fstat(raw.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise Unsaveable(
                f"{path} is open but is not a regular file: it cannot be reopened where it was"
            )
        if f.writable():
            f.flush()
        try:
            pos = f.tell()
        except OSError:
            if text:
                raise Unsaveable(
                    f"the text file {path}, read by a `for` loop: its position is unknown while it is "
                    "iterated, so it cannot be reopened there (loop over `iter(f.readline, '')` instead)"
                ) from None
            raise
        st = os.fstat(raw.fileno())
        info = {
            "path": path,
            "mode": mode,
            "pos": pos,
            "text": text,
            "encoding": getattr(f, "encoding", None),
            "errors": getattr(f, "errors", None),
            "line_buffering": getattr(f, "line_buffering", False),
            "write_through": getattr(f, "write_through", False),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
        }
        self.files.append(info)
        return (_reopen, (info,))


def _class_namespace(cls: type) -> tuple[dict[str, Any], tuple | None]:
    """What a class rebuilt by value is given after it is made: its
    namespace without what ``type`` makes itself."""
    ns = dict(cls.__dict__)
    slots = ns.get("__slots__")
    if isinstance(slots, str):
        slots = (slots,)
    for key in (
        "__dict__",
        "__weakref__",
        "__module__",
        "__qualname__",
        "_abc_impl",
        "__slotnames__",
        "__slots__",
    ):
        ns.pop(key, None)
    for name in slots or ():
        ns.pop(name, None)
    if "__doc__" in ns and ns["__doc__"] is None:
        ns.pop("__doc__")
    return ns, tuple(slots) if slots is not None else None


_HANDLERS = {
    types.GeneratorType: _refuse(
        lambda g: f"a generator ({_gen_name(g)}): generators cannot be saved"
    ),
    types.CoroutineType: _refuse(
        lambda g: f"a coroutine ({_gen_name(g)}): coroutines cannot be saved"
    ),
    types.AsyncGeneratorType: _refuse(
        lambda g: f"an async generator ({_gen_name(g)}): it cannot be saved"
    ),
    types.FrameType: _refuse("a frame object cannot be saved"),
    types.TracebackType: _refuse("a traceback object cannot be saved"),
    types.MappingProxyType: lambda self, obj: (_mappingproxy, (dict(obj),)),
    memoryview: _refuse("a memoryview cannot be saved (keep the object it views instead)"),
    _thread.LockType: StatePickler._lock,
    _thread.RLock: StatePickler._rlock,
}


def dump(
    root: Any, index: _source.SourceIndex
) -> tuple[memoryview, list[Blob], list[dict[str, Any]]]:
    """Pickle ``root``: the stream, the out-of-band parts, the files it holds."""
    out = io.BytesIO()
    blobs: list[Blob] = []
    p = StatePickler(out, index, blobs)
    with warnings.catch_warnings():
        # itertools objects pickle on 3.11-3.13; 3.12+ warn that 3.14 will not.
        warnings.simplefilter("ignore", DeprecationWarning)
        p.dump(root)
    return out.getbuffer(), blobs, p.files


class _Sink:
    def write(self, data) -> int:
        return len(data)


def _pickle_error(obj: Any, index: _source.SourceIndex) -> BaseException | None:
    """Why ``obj`` alone cannot be pickled, or ``None``."""
    p = StatePickler(_Sink(), index, None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            p.dump(obj)
    except RecursionError:
        return None
    except CheckpointError:
        raise
    except Exception as e:
        return e
    return None


def _parts(obj: Any) -> Iterable[tuple[str, Any]]:
    """The objects ``obj`` is made of, each with the expression suffix that reaches it."""
    if isinstance(obj, dict):
        for k, v in list(obj.items())[:10000]:
            yield f"[{k!r}]", v
        return
    if isinstance(obj, list | tuple):
        for i, v in enumerate(obj[:10000]):
            yield f"[{i}]", v
        return
    if isinstance(obj, set | frozenset):
        for v in list(obj)[:10000]:
            yield f" (an element {v!r:.40})", v
        return
    if isinstance(obj, types.FunctionType):
        for name, cell in zip(obj.__code__.co_freevars, obj.__closure__ or (), strict=False):
            try:
                yield f" (its variable {name})", cell.cell_contents
            except ValueError:
                pass
        for k, v in (obj.__defaults__ and enumerate(obj.__defaults__)) or ():
            yield f" (default {k})", v
        return
    if isinstance(obj, types.MethodType):
        yield ".__self__", obj.__self__
        return
    if isinstance(obj, type):
        for k, v in _class_namespace(obj)[0].items():
            yield f".{k}", v
        return
    d = getattr(obj, "__dict__", None)
    if isinstance(d, dict):
        for k, v in d.items():
            yield f".{k}", v
    for cls in type(obj).__mro__:
        for name in (
            getattr(cls, "__slots__", ())
            if not isinstance(getattr(cls, "__slots__", ()), str)
            else (cls.__slots__,)
        ):
            if hasattr(obj, name):
                yield f".{name}", getattr(obj, name)
    try:
        reduced = obj.__reduce_ex__(5)
    except Exception:
        return
    yield " (its class)", type(obj)
    if isinstance(reduced, tuple):
        for i, part in enumerate(reduced[1:3]):
            if part is not None and part is not d:
                yield f" (reduced {'state' if i else 'arguments'})", part


def locate(items: Iterable[tuple[str, str, Any]], index: _source.SourceIndex) -> str | None:
    """Name the first item that cannot be saved and, inside it, the object to
    blame: ``"<label> (`expr`): <reason>"``. ``items`` are ``(label, expr, value)``."""
    for label, expr, value in items:
        err = _pickle_error(value, index)
        if err is None:
            continue
        path = expr
        obj = value
        seen = {id(obj)}
        for _ in range(16):
            for suffix, part in _parts(obj):
                if id(part) in seen:
                    continue
                sub = _pickle_error(part, index)
                if sub is not None:
                    seen.add(id(part))
                    path, obj, err = path + suffix, part, sub
                    break
            else:
                break
        return f"{label}{f' (at `{path}`)' if path != expr else ''}: {_reason(err, obj)}"
    return None


def _reason(err: BaseException, obj: Any) -> str:
    if isinstance(err, Unsaveable):
        return str(err)
    return f"{type(obj).__module__}.{type(obj).__qualname__} cannot be saved ({err})"


# ---------------------------------------------------------------------------
# Unpickling


class StateUnpickler(pickle.Unpickler):
    """Resolves the persistent references of :class:`StatePickler`."""

    def __init__(self, stream, parts: list[Any], kinds: list[str]):
        buffers = [memoryview(p) for p, k in zip(parts, kinds, strict=True) if k == "buffer"]
        super().__init__(io.BytesIO(stream), buffers=buffers)
        self.parts = parts

    def persistent_load(self, pid):
        kind = pid[0]
        if kind == "blob":
            return self.parts[pid[1]]
        if kind == "globals":
            return _module(pid[1]).__dict__
        if kind == "module":
            return _module(pid[1])
        if kind == "stream":
            return getattr(sys, pid[1])
        if kind == "main_thread":
            return threading.main_thread()
        if kind == "attr":
            return getattr(_module(pid[1]), pid[2])
        raise pickle.UnpicklingError(f"unknown persistent reference {pid!r}")


def _module(name: str) -> types.ModuleType:
    m = sys.modules.get(name)
    if m is None:
        m = importlib.import_module(name)
    return m


def load(stream, parts: list[Any], kinds: list[str], resolver: _source.Resolver) -> Any:
    """Unpickle a checkpoint's root object, resolving code with ``resolver``."""
    global _resolver
    u = StateUnpickler(stream, parts, kinds)
    _resolver = resolver
    try:
        return u.load()
    finally:
        _resolver = None
