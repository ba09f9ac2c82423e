"""resurrect: keep a running Python program's state alive through what
normally destroys it (uncaught exceptions, Ctrl-C, bug fixes, killed processes).

See INTERFACE.md for the contract; the names below are the public API.
"""

from __future__ import annotations

from . import engine
from .instrument import instrument_code as instrument_code
from .instrument import instrument_module as instrument_module
from .instrument import resumable as resumable

# The rest of the API loads on first use, so that `resurrect run` of a
# program that never calls it does not pay for it at start-up.
_LAZY = {
    **dict.fromkeys(
        (
            "ControlError",
            "Restart",
            "abort",
            "cerror",
            "compute_restarts",
            "continue_",
            "error",
            "find_restart",
            "handler_bind",
            "handler_case",
            "invoke_restart",
            "muffle_warning",
            "restart_case",
            "signal",
            "store_value",
            "use_value",
            "warn",
        ),
        "conditions",
    ),
    **dict.fromkeys(("NoResumePointsError", "SkippedError", "skip_errors", "skipping"), "skip"),
    "pause": "prompt",
}

__all__ = sorted(
    [*_LAZY, "checkpoint", "install", "instrument_code", "instrument_module", "reload", "resumable"]
)


def install(on_error: str = "pause", instrument=None) -> None:
    """Enable resurrect inside a running program: modules matching the globs in
    ``instrument`` get resume points (those imported later and those already
    loaded), and exceptions nothing would catch follow ``on_error``."""
    from . import instrument as _instrument

    if on_error not in ("pause", "checkpoint", "skip", "raise"):
        raise ValueError(f"on_error must be pause, checkpoint, skip or raise, not {on_error!r}")
    engine.config.on_error = on_error
    if on_error in ("checkpoint", "pause"):
        import importlib

        # Importing registers the policy.
        importlib.import_module(f"{__name__}.{'prompt' if on_error == 'pause' else 'checkpoint'}")
    engine.enable()
    if instrument:
        _instrument.add_globs([instrument] if isinstance(instrument, str) else instrument)


def __getattr__(name: str):
    # `resurrect.checkpoint(path)` and `resurrect.reload()` are modules that
    # are also callable; they load on first use so that `import resurrect`
    # stays cheap for programs that never checkpoint or reload.
    import importlib

    if name in ("checkpoint", "reload"):
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


del annotations
