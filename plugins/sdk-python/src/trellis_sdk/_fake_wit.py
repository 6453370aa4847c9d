"""Stand-ins for the modules componentize-py generates
(``componentize_py_types``, ``wit_world.imports.*``,
``wit_world.exports.*``), with the same names and shapes, for
:mod:`trellis_sdk.testing`. Every import function calls into the
:class:`~trellis_sdk.testing.Host` that is active.

Only the types live here; the behaviour is in ``testing``.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
import types
from typing import Any, Callable, Generic, TypeVar

E = TypeVar("E")


@dataclasses.dataclass
class Ok:
    """The success case of a WIT ``result``."""

    value: Any


@dataclasses.dataclass
class Some:
    """The present case of a nested WIT ``option``."""

    value: Any


@dataclasses.dataclass(frozen=True)
class Err(Generic[E], Exception):
    """The failure case of a WIT ``result``, raised."""

    value: E


def _record(name: str, *fields: str) -> type:
    return dataclasses.make_dataclass(name, [(f, Any) for f in fields])


def _variants(prefix: str, cases: dict[str, bool]) -> dict[str, type]:
    """``{prefix_Case: dataclass}``; a case with a payload has ``value``."""
    return {f"{prefix}_{case}": _record(f"{prefix}_{case}", *(["value"] if payload else []))
            for case, payload in cases.items()}


def _module(name: str, attrs: dict[str, Any]) -> types.ModuleType:
    module = types.ModuleType(name, "A trellis_sdk.testing stand-in for generated bindings.")
    module.__dict__.update(attrs)
    module.__trellis_fake__ = True
    return module


def modules(host: Callable[[], Any], resources: dict[str, type]) -> dict[str, types.ModuleType]:
    """The stand-in modules by name; ``host()`` is the active fake host,
    ``resources`` the resource classes (``sql.Transaction``, ...)."""
    out: dict[str, types.ModuleType] = {}
    out["componentize_py_types"] = _module("componentize_py_types",
                                           {"Ok": Ok, "Err": Err, "Some": Some})
    out["wit_world.imports.types"] = _module("wit_world.imports.types", {
        "Request": _record("Request", "route", "method", "path", "params", "query", "headers",
                           "body", "request_id"),
        "Response": _record("Response", "status", "headers", "body"),
    })
    out["wit_world.imports.sql"] = _module("wit_world.imports.sql", {
        **_variants("Value", {"Null": False, "Integer": True, "Real": True, "Text": True,
                              "Blob": True, "Boolean": True, "Json": True, "Timestamp": True}),
        **_variants("Error", {"ConstraintViolation": True, "Syntax": True,
                              "PermissionDenied": True, "Timeout": True, "Unavailable": True,
                              "Invalid": True, "TransactionClosed": False}),
        "Consistency": enum.Enum("Consistency", {"PRIMARY": 0, "REPLICA_OK": 1}),
        "Rows": _record("Rows", "columns", "rows"),
        "Transaction": resources["sql.Transaction"],
        "query": lambda statement, params, consistency: host().sql.query(statement, params),
        "query_cached": lambda statement, params, consistency, ttl_ms:
            host().sql.query(statement, params),
        "execute": lambda statement, params: host().sql.execute(statement, params),
        "begin": lambda: host().sql.begin(),
    })
    out["wit_world.imports.cache"] = _module("wit_world.imports.cache", {
        "EntryOptions": _record("EntryOptions", "ttl_ms", "tags"),
        **_variants("Error", {"TooLarge": True, "Invalid": True}),
        **_variants("Lookup", {"Hit": True, "Absent": False, "Load": True}),
        "Loader": resources["cache.Loader"],
        "get": lambda key: host().cache.get(key),
        "get_many": lambda keys: host().cache.get_many(keys),
        "set": lambda key, value, options: host().cache.set(key, value, options),
        "delete": lambda key: host().cache.delete(key),
        "invalidate_tag": lambda tag: host().cache.invalidate_tag(tag),
        "fetch": lambda key: host().cache.fetch(key),
    })
    out["wit_world.imports.lock"] = _module("wit_world.imports.lock", {
        **_variants("Error", {"Timeout": False, "Lost": False, "Unavailable": True,
                              "Invalid": True}),
        "Lease": resources["lock.Lease"],
        "acquire": lambda name, ttl_ms, wait_ms: host().locks.acquire(name, ttl_ms, wait_ms),
    })
    out["wit_world.imports.jobs"] = _module("wit_world.imports.jobs", {
        "EnqueueOptions": _record("EnqueueOptions", "delay_ms", "priority", "queue",
                                  "max_attempts", "idempotency_key"),
        **_variants("Error", {"UnknownKind": True, "TooLarge": True, "Invalid": True,
                              "Unavailable": True}),
        "enqueue": lambda kind, payload, options:
            host().jobs.enqueue(kind, payload, options, None),
        "enqueue_in": lambda tx, kind, payload, options:
            host().jobs.enqueue(kind, payload, options, tx),
    })
    out["wit_world.imports.log"] = _module("wit_world.imports.log", {
        "Level": enum.Enum("Level", {"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 3,
                                     "ERROR": 4}),
        "log": lambda level, message, fields: host().logs.append(
            (level.name.lower(), message, dict(fields))),
    })
    out["wit_world.imports.config"] = _module("wit_world.imports.config", {
        "get": lambda key: host().config.get(key),
        "get_all": lambda: list(host().config.items()),
    })
    out["wit_world.imports.trace"] = _module("wit_world.imports.trace", {
        "Span": resources["trace.Span"],
    })
    out["wit_world.imports.outbound_http"] = _module("wit_world.imports.outbound_http", {
        "Request": _record("Request", "method", "url", "headers", "body"),
        "Response": _record("Response", "status", "headers", "body"),
        **_variants("Error", {"Denied": True, "Invalid": True, "Connect": True,
                              "Timeout": False, "TooLarge": True, "Limited": False,
                              "Failed": True}),
        "fetch": lambda req: host().fetch(req),
    })
    out["wit_world.exports.manifest"] = _module("wit_world.exports.manifest", {
        "Route": _record("Route", "method", "path", "options"),
        "PluginManifest": _record("PluginManifest", "name", "version", "routes",
                                  "capabilities"),
    })
    out["wit_world.exports.migrations"] = _module("wit_world.exports.migrations", {
        "Migration": _record("Migration", "id", "name", "sqlite", "postgres"),
    })
    out["wit_world.exports.job_handler"] = _module("wit_world.exports.job_handler", {
        "JobKind": _record("JobKind", "name", "queue", "max_attempts", "timeout_ms",
                           "priority"),
        "Schedule": _record("Schedule", "name", "cron", "kind", "payload"),
        "Job": _record("Job", "id", "kind", "payload", "attempt", "max_attempts",
                       "idempotency_key", "enqueued_at"),
        "Retry": _record("Retry", "delay_ms", "message"),
        **_variants("JobError", {"Failed": True, "RetryIn": True, "Fatal": True,
                                 "Snooze": True}),
    })
    out["wit_world.imports"] = _module("wit_world.imports", {})
    out["wit_world.exports"] = _module("wit_world.exports", {})
    out["wit_world"] = _module("wit_world", {})
    for name, module in out.items():
        if "." in name:
            parent, _, child = name.rpartition(".")
            setattr(out[parent], child, module)
    for package in ("wit_world", "wit_world.imports", "wit_world.exports"):
        out[package].__path__ = []  # a package, so `import wit_world.imports.sql` works
    return out


def install(host: Callable[[], Any], resources: dict[str, type]) -> dict[str, types.ModuleType]:
    """Puts the stand-ins into ``sys.modules`` (once) and returns them.
    Refuses when real generated bindings are already imported."""
    existing = sys.modules.get("wit_world")
    if existing is not None:
        if not getattr(existing, "__trellis_fake__", False):
            raise RuntimeError("trellis_sdk.testing: real componentize-py bindings "
                               "(wit_world) are imported; run tests outside a component")
        return {name: sys.modules[name] for name in _NAMES}
    made = modules(host, resources)
    sys.modules.update(made)
    return made


_NAMES = ["componentize_py_types", "wit_world", "wit_world.imports", "wit_world.exports",
          "wit_world.imports.types", "wit_world.imports.sql", "wit_world.imports.cache",
          "wit_world.imports.lock", "wit_world.imports.jobs", "wit_world.imports.log",
          "wit_world.imports.config", "wit_world.imports.trace",
          "wit_world.imports.outbound_http", "wit_world.exports.manifest",
          "wit_world.exports.migrations", "wit_world.exports.job_handler"]

__all__ = ["Ok", "Err", "Some", "install", "modules"]
