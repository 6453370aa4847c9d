"""Access to the bindings componentize-py generates for the plugin's own
world (``wit_world.imports.sql``, ...), always imported lazily.

componentize-py generates a module only for the interfaces the plugin's
``wit/world.wit`` imports, and the runtime refuses a component that imports
a capability it was not granted; so nothing here is imported at the top of
a module. ``trellis_sdk.testing`` installs in-memory stand-ins under the
same module names.
"""

from __future__ import annotations

import datetime
import importlib
from typing import Any, Callable, TypeVar

from .errors import InternalError

T = TypeVar("T")

#: Capability (import) name -> the WIT interface and the grant it needs.
INTERFACES = {
    "log": ("log", "log"),
    "config": ("config", "config"),
    "sql": ("sql", "sql"),
    "trace": ("trace", None),
    "cache": ("cache", "cache"),
    "lock": ("lock", "lock"),
    "jobs": ("jobs", "jobs"),
    "outbound_http": ("outbound-http", "outbound-http"),
}

#: Set by trellis_sdk.testing: the imports a test's world has (None: all).
allowed: set[str] | None = None


class MissingImport(InternalError):
    """The plugin's world does not import the interface a helper needs."""

    def __init__(self, name: str):
        wit, grant = INTERFACES[name]
        how = f"add `import trellis:plugin/{wit}@0.1.7;` to the plugin's wit/world.wit"
        if grant:
            how += f" and `\"{grant}\"` to its grants and capabilities"
        super().__init__(
            f"this plugin's world does not import `trellis:plugin/{wit}`: {how} (in unit "
            "tests, call handlers through trellis_sdk.testing.Client)",
            code="capability_missing")


def load(name: str) -> Any:
    """The generated module of import ``name`` (``sql``, ``outbound_http``,
    ...), or a 500 ``capability_missing`` saying how to add it."""
    if allowed is not None and name not in allowed:
        raise MissingImport(name)
    try:
        return importlib.import_module(f"wit_world.imports.{name}")
    except ImportError:
        raise MissingImport(name) from None


def export_types(name: str) -> Any:
    """The generated module of export interface ``name`` (``manifest``,
    ``migrations``, ``job_handler``)."""
    return importlib.import_module(f"wit_world.exports.{name}")


def http_types() -> Any:
    """The generated ``types`` module (request and response records)."""
    return importlib.import_module("wit_world.imports.types")


def protocol(name: str) -> type:
    """The generated export protocol ``name`` (``Manifest``, ...) to
    subclass, or ``object`` outside a component build."""
    try:
        return getattr(importlib.import_module("wit_world.exports"), name)
    except (ImportError, AttributeError):
        return object


def preload() -> None:
    """Imports every generated module the world has, so that a component
    build (which runs the app module once and snapshots it) holds them."""
    for name in [*INTERFACES, "types"]:
        try:
            importlib.import_module(f"wit_world.imports.{name}")
        except ImportError:
            pass
    for name in ("manifest", "migrations", "job_handler"):
        try:
            importlib.import_module(f"wit_world.exports.{name}")
        except ImportError:
            pass


def call(convert: Callable[[Any], Exception], fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``; a WIT ``result`` error (``componentize_py_types.Err``)
    is raised as ``convert(err.value)``."""
    from componentize_py_types import Err

    try:
        return fn(*args)
    except Err as err:
        raise convert(err.value) from None


def release(resource: Any) -> None:
    """Drops a host resource now (a transaction rolls back, a lease is
    released), rather than when Python collects it."""
    resource.__exit__(None, None, None)


def millis(duration: float | int | datetime.timedelta, what: str, limit: int = 2**32 - 1) -> int:
    """A duration in seconds (or a ``timedelta``) as whole milliseconds, at
    most ``limit`` (``u32`` by default); a negative one is an error naming
    ``what``."""
    if isinstance(duration, datetime.timedelta):
        seconds = duration.total_seconds()
    elif isinstance(duration, (int, float)) and not isinstance(duration, bool):
        seconds = float(duration)
    else:
        raise TypeError(f"{what} is a number of seconds or a timedelta, not {duration!r}")
    if seconds < 0:
        raise ValueError(f"{what} is negative: {duration!r}")
    return min(round(seconds * 1000), limit)
