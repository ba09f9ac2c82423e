"""The checkpoint file: layout, integrity and trust.

Layout (all integers big-endian)::

    MAGIC                  16 bytes  b"\\x89RESURRECT-CKPT\\n"
    header length           4 bytes
    header                 JSON (UTF-8): format, Python and resurrect versions,
                           argv, cwd, the program, where it stopped, the
                           sources it depends on (path -> SHA-256), the sizes
                           of the body's parts
    body                   the pickle stream, then every out-of-band buffer
                           (numpy arrays, large bytes/bytearray) in order
    seal                   80 bytes: b"SEAL", checksum of the body (32),
                           key id (8), HMAC-SHA256 (32), b"END\\n"

The HMAC covers the magic, the header and the body's digest, so it
authenticates the whole file; it is keyed with a per-user key (32 random
bytes, created on first use with mode 0600 in ``$XDG_CONFIG_HOME/resurrect/key``
or ``~/.config/resurrect/key``; ``$RESURRECT_KEY_FILE`` overrides the path).
Nothing of the body is unpickled before the signature, the checksum and the
Python version were checked: unpickling runs code, so only checkpoints the
user wrote are ever loaded.

A checkpoint is written to a temporary file in the same directory (``.*.tmp``,
never matched as a checkpoint), flushed, ``fsync``-ed and renamed over its
final name, then the directory is ``fsync``-ed: a crash leaves either the
complete file or no file under the final name.

The body's checksum is a SHA-256 over the SHA-256 digests of its 8 MiB
chunks, computed by a pool of threads while the file is written (hashing and
writing both release the GIL), so writing costs about what the disk costs.
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import hashlib
import hmac
import json
import mmap
import os
import secrets
import stat
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

MAGIC = b"\x89RESURRECT-CKPT\n"
FORMAT_VERSION = 1
SUFFIX = ".ckpt"
_SEAL_HEAD = b"SEAL"
_SEAL_TAIL = b"END\n"
SEAL_SIZE = 4 + 32 + 8 + 32 + 4
_MAX_HEADER = 64 << 20
#: Size of the slices written and hashed at a time.
_CHUNK = 8 << 20


class CheckpointError(Exception):
    """A checkpoint cannot be written or used; the message is one line for the user."""


class RefusedCheckpoint(CheckpointError):
    """``resume`` refuses a checkpoint file (damaged, foreign, not ours)."""


# ---------------------------------------------------------------------------
# The per-user key


def key_path() -> str:
    override = os.environ.get("RESURRECT_KEY_FILE")
    if override:
        return override
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "resurrect", "key")


def _read_key(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
    try:
        st = os.fstat(fd)
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise CheckpointError(f"the key file {path} belongs to another user")
        if st.st_mode & 0o077:
            raise CheckpointError(
                f"the key file {path} can be read by other users "
                f"(mode {stat.S_IMODE(st.st_mode):04o}): run `chmod 600 {path}`"
            )
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    text = data.decode("ascii", "replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise CheckpointError(f"the key file {path} is damaged (expected 64 hex digits)")
    return key


def load_key(create: bool) -> bytes | None:
    """The user's signing key; created (mode 0600) when ``create`` and missing."""
    path = key_path()
    try:
        return _read_key(path)
    except FileNotFoundError:
        if not create:
            return None
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600
        )
    except FileExistsError:
        return _read_key(path)  # another process created it first
    try:
        os.write(fd, key.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"resurrect key id\0" + key).digest()[:8]


def _mac(key: bytes, signed: bytes, digest: bytes) -> bytes:
    m = hmac.new(key, digestmod="sha256")
    m.update(signed)
    m.update(digest)
    return m.digest()


# ---------------------------------------------------------------------------
# Header


def python_version() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def base_header() -> dict[str, Any]:
    """Fields every checkpoint carries about the interpreter that wrote it."""
    import importlib.util

    try:
        from importlib import metadata

        version = metadata.version("resurrect")
    except Exception:
        version = "unknown"
    return {
        "format": FORMAT_VERSION,
        "python": python_version(),
        "python_full": sys.version.split()[0],
        "implementation": sys.implementation.name,
        "bytecode_magic": importlib.util.MAGIC_NUMBER.hex(),
        "resurrect": version,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds"),
        "pid": os.getpid(),
    }


# ---------------------------------------------------------------------------
# Writing


@dataclass
class Blob:
    """One out-of-band part of the body: ``kind`` is how it is rebuilt
    (``bytes``, ``bytearray`` or ``buffer`` for a pickle-5 buffer)."""

    kind: str
    data: Any  # a buffer (bytes, bytearray, PickleBuffer, memoryview)

    def view(self) -> memoryview:
        data = self.data
        if hasattr(data, "raw"):
            return data.raw()
        return memoryview(data).cast("B")


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _chunks(view: memoryview) -> Iterable[memoryview]:
    for start in range(0, len(view), _CHUNK):
        yield view[start : start + _CHUNK]


def _sha256(view: memoryview) -> bytes:
    return hashlib.sha256(view).digest()


class _BodyDigest:
    """The body's checksum: SHA-256 over the SHA-256 digests of its chunks
    (each part of the body cut in ``_CHUNK``-byte chunks), so that the chunks
    are hashed by several threads while the file is written or read."""

    def __init__(self, pool: concurrent.futures.Executor):
        self.pool = pool
        self.parts: list[concurrent.futures.Future] = []

    def add(self, view: memoryview) -> None:
        self.parts.append(self.pool.submit(_sha256, view))

    def digest(self) -> bytes:
        h = hashlib.sha256(b"resurrect body\0")
        for f in self.parts:
            h.update(f.result())
        return h.digest()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(
        max(2, min(8, os.cpu_count() or 2)), thread_name_prefix="resurrect-hash"
    )


#: Bytes written between two requests to start writing them back to disk, so
#: that the final ``fsync`` does not wait for the whole file.
_WRITEBACK = 64 << 20


def write(path: str, header: dict[str, Any], stream: memoryview, blobs: Sequence[Blob]) -> int:
    """Write a checkpoint atomically to ``path``; returns its size in bytes."""
    key = load_key(create=True)
    assert key is not None
    views = [b.view() for b in blobs]
    header = dict(header)
    header["body"] = {
        "pickle": len(stream),
        "blobs": [[b.kind, len(v)] for b, v in zip(blobs, views, strict=True)],
    }
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(head) > _MAX_HEADER:
        raise CheckpointError("the checkpoint's header is too large")
    signed = MAGIC + struct.pack(">I", len(head)) + head

    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(
        directory, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    )
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    writeback = getattr(os, "posix_fadvise", None)
    try:
        with _pool() as pool:
            digest = _BodyDigest(pool)
            _write_all(fd, memoryview(signed))
            done = flushed = len(signed)
            for view in [stream, *views]:
                for chunk in _chunks(view):
                    # Hashing runs in other threads while this one writes:
                    # both release the GIL on large buffers.
                    digest.add(chunk)
                    _write_all(fd, chunk)
                    done += len(chunk)
                    if writeback is not None and done - flushed >= _WRITEBACK:
                        # POSIX_FADV_DONTNEED starts the write-back of dirty pages (Linux).
                        writeback(fd, flushed, done - flushed, os.POSIX_FADV_DONTNEED)
                        flushed = done
            body_digest = digest.digest()
        seal = _SEAL_HEAD + body_digest + key_id(key) + _mac(key, signed, body_digest) + _SEAL_TAIL
        _write_all(fd, memoryview(seal))
        os.fsync(fd)
        size = os.fstat(fd).st_size
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    _fsync_dir(directory)
    return size


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_dir(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# ---------------------------------------------------------------------------
# Reading


@dataclass
class CheckpointFile:
    """A checkpoint whose header was read and whose signature was checked
    (:func:`open_checkpoint`); :meth:`read_body` checks the content."""

    path: str
    header: dict[str, Any]
    size: int
    body_offset: int
    body_digest: bytes
    blob_sizes: list[tuple[str, int]] = field(default_factory=list)

    def read_body(self) -> tuple[bytes, list[Any]]:
        """The pickle stream and the out-of-band parts (``bytes`` for kind
        ``bytes``, ``bytearray`` otherwise: numpy arrays use them in place),
        after checking them against the signed digest."""
        n_pickle = int(self.header["body"]["pickle"])
        parts: list[Any] = []
        with open(self.path, "rb", buffering=0) as f, _pool() as pool:
            digest = _BodyDigest(pool)
            f.seek(self.body_offset)
            for kind, n in [("pickle", n_pickle), *self.blob_sizes]:
                if kind in ("pickle", "bytes"):
                    buf = _read_exactly(f, n, self.path)
                    for chunk in _chunks(memoryview(buf)):
                        digest.add(chunk)
                elif kind == "buffer" and n >= _MAPPED:
                    # Mapped copy-on-write from the file itself: no copy, no
                    # zero-filled memory; the pages are read as they are hashed.
                    buf = _map(f, f.tell(), n)
                    for chunk in _chunks(buf):
                        digest.add(chunk)
                    f.seek(n, os.SEEK_CUR)
                else:
                    buf = bytearray(n)
                    view = memoryview(buf)
                    for chunk in _chunks(view):
                        got = 0
                        while got < len(chunk):
                            k = f.readinto(chunk[got:])
                            if not k:
                                raise RefusedCheckpoint(
                                    f"{self.path}: truncated (the file ended early)"
                                )
                            got += k
                        digest.add(chunk)
                parts.append(buf)
            body_digest = digest.digest()
        if not hmac.compare_digest(body_digest, self.body_digest):
            raise RefusedCheckpoint(
                f"{self.path}: tampered with or damaged (its content does not match its signed checksum)"
            )
        return parts[0], parts[1:]


def _read_exactly(f, n: int, path: str) -> bytes:
    data = f.read(n)
    if len(data) == n:
        return data
    pieces = [data]
    got = len(data)
    while got < n:
        more = f.read(n - got)
        if not more:
            raise RefusedCheckpoint(f"{path}: truncated (the file ended early)")
        pieces.append(more)
        got += len(more)
    return b"".join(pieces)


#: Out-of-band buffers at least this large are mapped from the file.
_MAPPED = 1 << 20


def _map(f, offset: int, n: int) -> memoryview:
    """``n`` bytes of the file at ``offset``, mapped private (copy-on-write:
    writable, and writes never reach the file). Checkpoints are never
    changed in place (a new one is a new file renamed over the name), so the
    mapping keeps the content that is checked."""
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    m = mmap.mmap(f.fileno(), n + (offset - start), access=mmap.ACCESS_COPY, offset=start)
    return memoryview(m)[offset - start :]


def _truncated(path: str, have: int, want: int | None = None) -> RefusedCheckpoint:
    of = f" ({have} of {want} bytes)" if want is not None else f" ({have} bytes)"
    return RefusedCheckpoint(f"{path}: truncated{of}: not a complete checkpoint")


def read_header(path: str) -> tuple[dict[str, Any], int, bytes, int]:
    """``(header, size, signed prefix, body offset)`` after structural checks only."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise RefusedCheckpoint(f"{path}: no such checkpoint") from None
    except OSError as e:
        raise RefusedCheckpoint(f"{path}: cannot be read: {e.strerror}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        start = f.read(len(MAGIC) + 4)
        if len(start) < len(MAGIC):
            if MAGIC.startswith(start):
                raise _truncated(path, size)
            raise RefusedCheckpoint(f"{path}: not a resurrect checkpoint")
        if start[: len(MAGIC)] != MAGIC:
            raise RefusedCheckpoint(f"{path}: not a resurrect checkpoint")
        if len(start) < len(MAGIC) + 4:
            raise _truncated(path, size)
        (hlen,) = struct.unpack(">I", start[len(MAGIC) :])
        if hlen > _MAX_HEADER:
            raise RefusedCheckpoint(f"{path}: damaged (impossible header size)")
        head = f.read(hlen)
        if len(head) < hlen:
            raise _truncated(path, size)
    try:
        header = json.loads(head.decode("utf-8"))
        body = header["body"]
        n_pickle = int(body["pickle"])
        blobs = [(str(k), int(n)) for k, n in body["blobs"]]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise RefusedCheckpoint(f"{path}: damaged (its header cannot be read)") from None
    offset = len(MAGIC) + 4 + hlen
    want = offset + n_pickle + sum(n for _, n in blobs) + SEAL_SIZE
    if size < want:
        raise _truncated(path, size, want)
    if size > want:
        raise RefusedCheckpoint(f"{path}: damaged ({size - want} bytes more than its header says)")
    return header, size, start + head, offset


def open_checkpoint(path: str) -> CheckpointFile:
    """Check a checkpoint's structure, signature and Python version; the
    first failing check is raised as :class:`RefusedCheckpoint` with one line."""
    header, size, signed, offset = read_header(path)
    with open(path, "rb") as f:
        f.seek(size - SEAL_SIZE)
        seal = f.read(SEAL_SIZE)
    if len(seal) != SEAL_SIZE or seal[:4] != _SEAL_HEAD or seal[-4:] != _SEAL_TAIL:
        raise RefusedCheckpoint(f"{path}: damaged (its seal is missing)")
    body_digest, kid, mac = seal[4:36], seal[36:44], seal[44:76]
    if not any(mac) and not any(kid):
        raise RefusedCheckpoint(
            f"{path}: unsigned: resurrect only loads checkpoints signed with your key"
        )
    key = load_key(create=False)
    if key is None:
        raise RefusedCheckpoint(
            f"{path}: cannot be verified: there is no signing key at {key_path()} "
            "(checkpoints are signed with the key of the user who wrote them)"
        )
    if not hmac.compare_digest(kid, key_id(key)):
        raise RefusedCheckpoint(
            f"{path}: signed with another key (another user's, or from before {key_path()} was replaced)"
        )
    if not hmac.compare_digest(mac, _mac(key, signed, body_digest)):
        raise RefusedCheckpoint(f"{path}: tampered with (its signature does not match)")
    fmt = header.get("format")
    if fmt != FORMAT_VERSION:
        raise RefusedCheckpoint(
            f"{path}: written in checkpoint format {fmt}; this resurrect reads format {FORMAT_VERSION}"
        )
    if header.get("implementation") != sys.implementation.name:
        raise RefusedCheckpoint(
            f"{path}: written by {header.get('implementation')}; this is {sys.implementation.name}"
        )
    if header.get("python") != python_version():
        raise RefusedCheckpoint(
            f"{path}: written by Python {header.get('python')}; this is Python {python_version()} "
            f"(resume it with Python {header.get('python')})"
        )
    import importlib.util

    if header.get("bytecode_magic") != importlib.util.MAGIC_NUMBER.hex():
        raise RefusedCheckpoint(
            f"{path}: written by Python {header.get('python_full')} with another bytecode "
            f"(this is {sys.version.split()[0]})"
        )
    blobs = [(str(k), int(n)) for k, n in header["body"]["blobs"]]
    return CheckpointFile(path, header, size, offset, body_digest, blobs)


# ---------------------------------------------------------------------------
# Finding checkpoints


def is_checkpoint_name(name: str) -> bool:
    return name.endswith(SUFFIX) and not name.startswith(".")


def list_dir(directory: str) -> list[str]:
    """Paths of the checkpoints in ``directory`` (never temporary files), oldest first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    paths = [os.path.join(directory, n) for n in names if is_checkpoint_name(n)]
    paths = [p for p in paths if os.path.isfile(p)]

    def when(p: str) -> tuple[float, str]:
        try:
            return (os.stat(p).st_mtime, p)
        except OSError:
            return (0.0, p)

    return sorted(paths, key=when)


def remove_stale_temporaries(directory: str) -> None:
    """Delete temporary files left by writers that died (their pid is gone)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not (name.startswith(".") and name.endswith(".tmp") and SUFFIX in name):
            continue
        parts = name.split(".")
        try:
            pid = int(parts[-3])
        except (ValueError, IndexError):
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            _unlink_quietly(os.path.join(directory, name))
        except OSError:
            pass
