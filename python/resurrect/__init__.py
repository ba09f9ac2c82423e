"""resurrect: keep a running Python program's state alive through what
normally destroys it (uncaught exceptions, Ctrl-C, bug fixes, killed processes).

See INTERFACE.md for the contract; the names below are the public API.
"""

from __future__ import annotations

from . import engine
from .conditions import (
    ControlError,
    Restart,
    abort,
    cerror,
    compute_restarts,
    continue_,
    error,
    find_restart,
    handler_bind,
    handler_case,
    invoke_restart,
    muffle_warning,
    restart_case,
    signal,
    store_value,
    use_value,
    warn,
)
from .instrument import instrument_code, instrument_module, resumable
from .prompt import pause
from .skip import NoResumePointsError, SkippedError, skip_errors, skipping

__all__ = [
    "ControlError",
    "NoResumePointsError",
    "Restart",
    "SkippedError",
    "abort",
    "cerror",
    "checkpoint",
    "compute_restarts",
    "continue_",
    "error",
    "find_restart",
    "handler_bind",
    "handler_case",
    "install",
    "instrument_code",
    "instrument_module",
    "invoke_restart",
    "muffle_warning",
    "pause",
    "reload",
    "restart_case",
    "resumable",
    "signal",
    "skip_errors",
    "skipping",
    "store_value",
    "use_value",
    "warn",
]


def install(on_error: str = "pause", instrument=None) -> None:
    """Enable resurrect inside a running program: modules matching the globs in
    ``instrument`` get resume points (those imported later and those already
    loaded), and exceptions nothing would catch follow ``on_error``."""
    from . import instrument as _instrument

    if on_error not in ("pause", "checkpoint", "skip", "raise"):
        raise ValueError(f"on_error must be pause, checkpoint, skip or raise, not {on_error!r}")
    engine.config.on_error = on_error
    if on_error == "checkpoint":
        from . import checkpoint as _checkpoint  # registers the policy

        del _checkpoint
    engine.enable()
    if instrument:
        _instrument.add_globs([instrument] if isinstance(instrument, str) else instrument)


def __getattr__(name: str):
    # `resurrect.checkpoint(path)` and `resurrect.reload()` are modules that
    # are also callable; they load on first use so that `import resurrect`
    # stays cheap for programs that never checkpoint or reload.
    if name in ("checkpoint", "reload"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


del annotations
