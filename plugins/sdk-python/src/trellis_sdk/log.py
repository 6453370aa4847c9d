"""Structured logging into the host's tracing; the host attaches the
plugin's name and the request id. Needs the ``log`` capability (and
``import trellis:plugin/log@0.1.7`` in the world)::

    log.info("note created", id=7, title="groceries")
"""

from __future__ import annotations

from typing import Any

from . import _host

__all__ = ["trace", "debug", "info", "warn", "error"]


def _emit(level: str, message: str, fields: dict[str, Any]) -> None:
    host = _host.load("log")
    host.log(getattr(host.Level, level), message, [(k, str(v)) for k, v in fields.items()])


def trace(message: str, **fields: Any) -> None:
    """Logs at trace level; ``fields`` become the event's fields."""
    _emit("TRACE", message, fields)


def debug(message: str, **fields: Any) -> None:
    """Logs at debug level."""
    _emit("DEBUG", message, fields)


def info(message: str, **fields: Any) -> None:
    """Logs at info level."""
    _emit("INFO", message, fields)


def warn(message: str, **fields: Any) -> None:
    """Logs at warn level."""
    _emit("WARN", message, fields)


def error(message: str, **fields: Any) -> None:
    """Logs at error level."""
    _emit("ERROR", message, fields)
